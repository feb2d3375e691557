"""The developer kit: what ``make run``, the tests and the benchmarks need, and production does not.

* ``devkit.sandbox.trengo``: a fake Trengo REST API v2 (with unauthenticated ``/__admin``
  endpoints, which is why it must never ship in the image);
* ``devkit.sandbox.broker``: picks a Kafka for tests and the demo, or starts the embedded one;
* ``devkit.sandbox.samples``: sample RudderStack events;
* ``devkit.demo`` and ``devkit.progress``: ``trengo-processor demo`` and its progress line.

It is its own distribution (``devkit/pyproject.toml``, ``trengo-processor-devkit``), installed
by ``make venv``; the ``trengo-processor`` distribution and the container image hold only
``processor/``. The ``demo`` and ``sandbox`` commands import it on demand; ``run`` never does.
"""
