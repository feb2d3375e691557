"""Benchmarks of trengo-processor, run by ``make bench`` (``python -m bench``).

Each benchmark is a module of this package with a ``TITLE`` and a ``run(quick) -> str`` that
runs it and returns its Markdown section; ``python -m bench`` stores the section in
``bench/results/<name>.md`` and assembles ``bench/RESULTS.md`` from every section. A new
benchmark adds its module and its name to ``BENCHMARKS`` in ``bench/__main__.py``.
"""
