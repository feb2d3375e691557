"""The stall watch: a partition that holds work and makes no progress is a bug; say so loudly.

Every ``interval`` the watch asks the offset tracker, per partition with pending events, how
long ago one of its events was last attempted or finished. Past ``stall_seconds`` (far above
any backoff, ``Retry-After`` or rate-limit pause, which are capped at
``delivery.retry_cap_seconds``) the partition is stalled: ``trengo_processor_partition_stalled``
is 1, the reason is logged, and ``/healthz`` fails so Kubernetes restarts the pod. While the
destination is halted nothing can progress, so every partition counts as active: a halt
suspends the stall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from processor import metrics
from processor.engine.offsets import OffsetTracker, PartitionKey

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 5.0


class StallReporter(Protocol):
    """Where stalls go: /healthz."""

    def set_stalled(self, reasons: list[str]) -> None: ...


class StallWatch:
    """Finds stalled partitions; exports, logs and reports them."""

    def __init__(
        self,
        tracker: OffsetTracker,
        stall_seconds: float,
        is_halted: Callable[[], bool],
        health: StallReporter,
    ) -> None:
        self._tracker = tracker
        self._stall_seconds = stall_seconds
        self._is_halted = is_halted
        self._health = health
        self._stalled: set[PartitionKey] = set()
        self._exported: set[PartitionKey] = set()

    async def run(self, interval_seconds: float = CHECK_INTERVAL_SECONDS) -> None:
        """Check until cancelled."""
        while True:
            self.check()
            await asyncio.sleep(interval_seconds)

    def check(self) -> None:
        """One look at every partition."""
        if self._is_halted():
            self._tracker.note_waiting_everywhere()
        stalled = {
            (topic, partition): (
                f"partition {topic}[{partition}] stalled: {pending} events pending, none "
                f"attempted or finished for {idle:.0f} s"
            )
            for (topic, partition), (pending, idle) in sorted(self._tracker.idle_seconds().items())
            if idle > self._stall_seconds
        }
        for tp, reason in stalled.items():
            if tp not in self._stalled:
                logger.error("%s; failing /healthz so the pod restarts", reason)
        self._stalled = set(stalled)
        self._export(self._stalled)
        self._health.set_stalled(list(stalled.values()))

    def _export(self, stalled: set[PartitionKey]) -> None:
        assigned = set(self._tracker.assigned())
        for _topic, partition in self._exported - assigned:
            with contextlib.suppress(KeyError):
                metrics.PARTITION_STALLED.remove(str(partition))
        for tp in assigned:
            metrics.PARTITION_STALLED.labels(partition=str(tp[1])).set(1 if tp in stalled else 0)
        self._exported = assigned
