"""Which offsets may be committed: the highest contiguous done offset per partition.

The commit protocol, in order:

1. The poll thread registers every polled offset (``register``) before handing it to delivery.
   Offsets of one partition arrive in increasing order; gaps (compaction, transaction markers)
   are fine because only registered offsets are waited for.
2. An offset becomes done when its event was delivered, skipped by configuration, or its
   dead-letter record was acknowledged by the broker (``mark_done``).
3. ``commit_positions`` pops the done prefix of each partition and returns ``last done + 1``
   for partitions that advanced since the last commit; the poll thread stores and commits them.
4. On revoke the poll thread first calls ``begin_revoke`` (no new work starts for the
   partition, but finishing work still counts), commits what is done, then ``drop``s it. Every
   assignment of a partition gets a new epoch, and ``mark_done`` with an old epoch is ignored:
   work that finishes after a revoke can never commit into the next owner's range.

The tracker also knows when each partition last made progress (an event attempted or
finished), which the stall watch (``engine/stall.py``) reads.

All methods are thread-safe: the poll thread and the delivery loop share one tracker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetTicket:
    """Identifies one polled message within one assignment of its partition."""

    topic: str
    partition: int
    offset: int
    epoch: int


@dataclass(slots=True)
class _PartitionOffsets:
    epoch: int
    active_at: float  # last time an event of it was attempted or finished (or work arrived)
    in_order: deque[int] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)  # record bytes, parallel to in_order
    buffered_bytes: int = 0
    done: set[int] = field(default_factory=set)
    commit_position: int | None = None  # next offset to consume after the done prefix
    committed_position: int | None = None
    revoking: bool = False


class OffsetTracker:
    """Per-partition registry of polled offsets and which of them are done."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[TopicPartition, _PartitionOffsets] = {}
        self._next_epoch = 0

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Start tracking newly assigned partitions, each with a fresh epoch."""
        with self._lock:
            for tp in partitions:
                self._next_epoch += 1
                self._partitions[tp] = _PartitionOffsets(self._next_epoch, self._clock())

    def begin_revoke(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop starting work for these partitions; completions still count until ``drop``."""
        with self._lock:
            for tp in partitions:
                state = self._partitions.get(tp)
                if state is not None:
                    state.revoking = True

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget revoked or lost partitions; late completions for them are ignored."""
        with self._lock:
            for tp in partitions:
                self._partitions.pop(tp, None)

    def register(
        self, topic: str, partition: int, offset: int, size: int = 0
    ) -> OffsetTicket | None:
        """Record a polled offset of ``size`` bytes; None when the partition is not assigned."""
        with self._lock:
            state = self._partitions.get((topic, partition))
            if state is None:
                return None
            if not state.in_order:  # idle until now: the stall clock starts with this work
                state.active_at = self._clock()
            state.in_order.append(offset)
            state.sizes.append(size)
            state.buffered_bytes += size
            return OffsetTicket(topic, partition, offset, state.epoch)

    def mark_done(self, ticket: OffsetTicket) -> bool:
        """Mark one offset done; False when its assignment is gone (stale epoch)."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            if state is None or state.epoch != ticket.epoch:
                return False
            state.done.add(ticket.offset)
            state.active_at = self._clock()
            while state.in_order and state.in_order[0] in state.done:
                finished = state.in_order.popleft()
                state.buffered_bytes -= state.sizes.popleft()
                state.done.discard(finished)
                state.commit_position = finished + 1
            return True

    def note_attempt(self, ticket: OffsetTicket) -> None:
        """An event of the ticket's partition is being worked on: the partition is not stalled."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            if state is not None and state.epoch == ticket.epoch:
                state.active_at = self._clock()

    def note_waiting_everywhere(self) -> None:
        """Nothing can be worked on (the destination is halted): no partition is stalled."""
        with self._lock:
            now = self._clock()
            for state in self._partitions.values():
                state.active_at = now

    def idle_seconds(self) -> dict[TopicPartition, tuple[int, float]]:
        """Per partition holding pending work: (pending events, seconds since its last activity)."""
        with self._lock:
            now = self._clock()
            return {
                tp: (len(state.in_order), now - state.active_at)
                for tp, state in self._partitions.items()
                if state.in_order
            }

    def is_current(self, ticket: OffsetTicket) -> bool:
        """True while work for the ticket may start: its assignment is ours and not revoking."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            return state is not None and state.epoch == ticket.epoch and not state.revoking

    def commit_positions(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Positions to commit now: partitions whose done prefix advanced since last time."""
        with self._lock:
            chosen = self._partitions if partitions is None else partitions
            positions = {}
            for tp in chosen:
                state = self._partitions.get(tp)
                if state is None or state.commit_position is None:
                    continue
                if state.commit_position != state.committed_position:
                    positions[tp] = state.commit_position
            return positions

    def committed(self, positions: dict[TopicPartition, int]) -> None:
        """Record that these positions were committed by the broker."""
        with self._lock:
            for tp, position in positions.items():
                state = self._partitions.get(tp)
                if state is not None:
                    state.committed_position = max(state.committed_position or 0, position)

    def committed_position(self, tp: TopicPartition) -> int | None:
        """The last position this consumer committed for a partition (None if none yet)."""
        with self._lock:
            state = self._partitions.get(tp)
            return None if state is None else state.committed_position

    def pending_count(self) -> int:
        """Offsets polled and not yet committable (the buffered, in-flight events)."""
        with self._lock:
            return sum(len(state.in_order) for state in self._partitions.values())

    def pending_counts(self) -> dict[TopicPartition, int]:
        """``pending_count`` per tracked partition."""
        with self._lock:
            return {tp: len(state.in_order) for tp, state in self._partitions.items()}

    def pending_bytes(self) -> dict[TopicPartition, int]:
        """Record bytes (key, value, headers) of the pending offsets, per tracked partition."""
        with self._lock:
            return {tp: state.buffered_bytes for tp, state in self._partitions.items()}

    def assigned(self) -> list[TopicPartition]:
        """Partitions currently tracked."""
        with self._lock:
            return list(self._partitions)
