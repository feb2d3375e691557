"""Profiles of a running flow: py-spy's samples, summarised as the top functions.

``PySpy`` attaches ``py-spy record`` to a process for the life of a ``with`` block, sampling
only the thread that holds the GIL (``--gil``): for a Python process bound by one core, where
its CPU time goes. py-spy writes "raw" collapsed stacks, one line per distinct stack:
``outer (file.py:12);inner (other.py:40) COUNT``; ``parse_collapsed`` reads them and
``top_functions`` ranks functions by self time (samples where the function was running) and
total time (samples where it was anywhere on the stack).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from bench.report import markdown_table

RATE_PER_SECOND = 100
_STOP_SECONDS = 30.0

Stack = tuple[str, ...]


class ProfilerMissingError(RuntimeError):
    """py-spy is not installed (``pip install py-spy``)."""


class PySpy:
    """``py-spy record --pid PID --gil`` into ``output`` while the block runs."""

    def __init__(self, pid: int, output: Path) -> None:
        executable = shutil.which("py-spy") or _beside_interpreter("py-spy")
        if executable is None:
            raise ProfilerMissingError("py-spy is not installed (pip install py-spy)")
        self._command = [
            executable,
            "record",
            "--pid",
            str(pid),
            "--gil",
            "--nolineno",
            "--rate",
            str(RATE_PER_SECOND),
            "--format",
            "raw",
            "--output",
            str(output),
        ]
        self._log_path = output.with_suffix(".log")
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            self._process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _beside_interpreter(name: str) -> str | None:
    import sys  # noqa: PLC0415 - only needed when py-spy is not on PATH

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.is_file() else None


def parse_collapsed(text: str) -> Counter[Stack]:
    """Samples per stack (outermost frame first) from py-spy's raw output."""
    stacks: Counter[Stack] = Counter()
    for line in text.splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


@dataclass(frozen=True, slots=True)
class FunctionCost:
    """One function's share of the samples: where it ran itself, and where it was on the stack."""

    function: str
    self_share: float
    total_share: float


def top_functions(stacks: Mapping[Stack, int], by: str, limit: int) -> list[FunctionCost]:
    """The ``limit`` functions with the largest ``by`` ("self" or "total") share."""
    samples = sum(stacks.values())
    if not samples:
        return []
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        self_counts[stack[-1]] += count
        for function in set(stack):  # recursion counts once per sample
            total_counts[function] += count
    ranking = self_counts if by == "self" else total_counts
    return [
        FunctionCost(function, self_counts[function] / samples, total_counts[function] / samples)
        for function, _ in ranking.most_common(limit)
    ]


def shares_by_area(
    stacks: Mapping[Stack, int], areas: Iterable[tuple[str, str]]
) -> list[tuple[str, float]]:
    """Self-time share by area, largest first: each sample goes to the area of its innermost
    frame, the first of ``areas`` whose marker its file name contains, else to "other"."""
    ordered = list(areas)
    samples = sum(stacks.values()) or 1
    counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        counts[_area(stack[-1], ordered)] += count
    return [(area, count / samples) for area, count in counts.most_common()]


def _area(frame: str, areas: list[tuple[str, str]]) -> str:
    return next((name for marker, name in areas if marker in frame), "other")


# Where a frame's code lives, by a marker in its file name; the first match wins.
AREAS = (
    ("httpx_aiohttp/", "HTTP: httpx-aiohttp transport"),
    ("httpx/", "HTTP: httpx"),
    ("aiohttp/", "HTTP: aiohttp"),
    ("yarl/", "HTTP: aiohttp"),
    ("multidict/", "HTTP: aiohttp"),
    ("asyncio/", "asyncio event loop"),
    ("selectors", "asyncio event loop"),
    ("json/", "JSON (stdlib)"),
    ("prometheus_client/", "metrics (prometheus_client)"),
    ("pydantic", "validation (pydantic)"),
    ("jinja2/", "templates (jinja2)"),
    ("<template>", "templates (jinja2)"),
    ("processor/engine/", "processor: engine"),
    ("processor/runner.py", "processor: engine"),
    ("processor/pipeline/", "processor: pipeline"),
    ("processor/trengo/", "processor: trengo client"),
    ("processor/", "processor: other"),
    ("confluent_kafka", "Kafka client"),
)
_TOP_SELF = 15
_TOP_PROCESSOR = 20


def profiled_run(output: Path, run: Callable[[Path], float], header: Callable[[float], str]) -> str:
    """``run`` a flow recording py-spy into ``output`` (it returns the run's events/s); the
    ``header`` for that rate and the flame summary, or why there is no profile."""
    try:
        events_per_second = run(output)
    except ProfilerMissingError as missing:
        return f"Profile: not taken ({missing})."
    if not output.exists():
        return f"Profile: py-spy wrote nothing; see {output.with_suffix('.log')}."
    return header(events_per_second) + "\n\n" + flame_summary(output.read_text(encoding="utf-8"))


def flame_summary(collapsed: str) -> str:
    """Markdown: self time by area, the top functions by self time, and the processor's own
    functions by total time."""
    stacks = parse_collapsed(collapsed)
    samples = sum(stacks.values())
    if not samples:
        return "(no samples)"
    areas = shares_by_area(stacks, AREAS)
    area_rows = [[area, f"{share:.1%}"] for area, share in areas]
    self_rows = [
        [f"`{cost.function}`", f"{cost.self_share:.1%}", f"{cost.total_share:.1%}"]
        for cost in top_functions(stacks, "self", _TOP_SELF)
    ]
    own = [
        cost
        for cost in top_functions(stacks, "total", len(stacks))
        if "processor/" in cost.function
    ]
    own_rows = [
        [f"`{cost.function}`", f"{cost.total_share:.1%}", f"{cost.self_share:.1%}"]
        for cost in own[:_TOP_PROCESSOR]
    ]
    return "\n\n".join(
        [
            f"Self time by area ({samples:,} samples):",
            markdown_table(["area", "self time"], area_rows),
            f"Top {_TOP_SELF} functions by self time:",
            markdown_table(["function", "self", "total"], self_rows),
            f"The processor's own functions by total time (the time spent in them and in "
            f"what they call), top {_TOP_PROCESSOR}:",
            markdown_table(["function", "total", "self"], own_rows),
        ]
    )
