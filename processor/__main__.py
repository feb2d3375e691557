"""``python -m processor`` is the ``trengo-processor`` command."""

import sys

from processor.cli import main

sys.exit(main())
