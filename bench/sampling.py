"""Reads processes' CPU time and resident memory on a background thread, at a fixed interval.

CPU time is user + system of every thread of the process (``psutil``); resident memory is RSS.
A sampler belongs to one ``with`` block; ``samples(pid)`` returns what it read so far.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import psutil

from bench.stats import Sample


class ProcessSampler:
    """Samples the given processes every ``interval_seconds`` until its block ends."""

    def __init__(self, pids: Iterable[int], interval_seconds: float) -> None:
        self._processes = {pid: psutil.Process(pid) for pid in pids}
        self._interval = interval_seconds
        self._samples: dict[int, list[Sample]] = {pid: [] for pid in self._processes}
        self._lock = threading.Lock()  # the sampling thread and samples() both read
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._sample_all()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join()

    def samples(self, pid: int) -> list[Sample]:
        """The samples of one process so far, oldest first (a copy)."""
        self._sample_all()
        with self._lock:
            return list(self._samples[pid])

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._sample_all()

    def _sample_all(self) -> None:
        with self._lock:
            for pid, process in self._processes.items():
                self._sample(pid, process)

    def _sample(self, pid: int, process: psutil.Process) -> None:
        try:
            with process.oneshot():
                cpu = process.cpu_times()
                rss = process.memory_info().rss
        except psutil.NoSuchProcess:
            return
        self._samples[pid].append(Sample(time.time(), cpu.user + cpu.system, rss))
