"""``python -m bench [--quick] [NAME ...]``: run benchmarks (all by default), print their sections.

A full run stores each section in ``bench/results/<name>.md`` and re-assembles
``bench/RESULTS.md``; ``--quick`` runs smaller workloads and only prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from bench.report import assemble, write_section

# Benchmark modules of this package, in the order of RESULTS.md.
BENCHMARKS = (
    "budget",
    "throughput",
    "sitestream",
    "latency",
    "memory",
    "scaling",
    "features",
    "commits",
    "transform",
)


class Benchmark(Protocol):
    """What a benchmark module provides."""

    TITLE: str

    def run(self, quick: bool) -> str:
        """Run the benchmark; its Markdown section."""
        ...


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks; 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller workloads; only print")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    for name in args.names or BENCHMARKS:
        benchmark = cast(Benchmark, importlib.import_module(f"bench.{name}"))
        print(f"running benchmark {name!r}: {benchmark.TITLE}", flush=True)
        section = benchmark.run(args.quick)
        print(section, flush=True)
        if not args.quick:
            print(f"wrote {write_section(name, section)}", flush=True)
    if not args.quick:
        print(f"wrote {assemble(BENCHMARKS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
