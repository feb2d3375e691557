"""Which offsets may be committed: the highest contiguous done offset per partition.

The commit protocol, in order:

1. The poll thread registers every polled offset (``register``) before handing it to delivery.
   Offsets of one partition arrive in increasing order; gaps (compaction, transaction markers)
   are fine because only registered offsets are waited for.
2. An offset becomes done when its event was delivered, skipped by configuration, or its
   dead-letter record was acknowledged by the broker (``mark_done``).
3. ``commit_points`` returns, for partitions whose done offsets changed since the last commit,
   ``last done of the prefix + 1`` and the done offsets above it (they travel in the commit's
   metadata, ``offsetmap``); the poll thread stores and commits them, once per commit interval
   or sooner when ``uncommitted_prefix`` (done prefix offsets not yet committed, what a crash
   would redeliver) grows large. Offsets the previous
   owner's metadata says are done (``assign(..., finished=...)``) are done on registration and
   never delivered.
4. On revoke (and on shutdown) the poll thread first calls ``begin_revoke``: from then on only
   events below the highest offset already started may start (they fill the gaps, so the done
   prefix reaches everything delivered), commits what is done, then ``drop``s the partition.
   Every assignment of a partition gets a new epoch, and ``mark_done`` with an old epoch is
   ignored: work that finishes after a revoke can never commit into the next owner's range.

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
from typing import NamedTuple

PartitionKey = tuple[str, int]


class OffsetTicket(NamedTuple):
    """Identifies one polled message within one assignment of its partition (a named tuple:
    one is made per polled record, and a tuple is the cheapest object to make)."""

    topic: str
    partition: int
    offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class CommitPoint:
    """What to commit for one partition: the position and the done offsets above it."""

    position: int
    done_above: frozenset[int]


@dataclass(slots=True)
class _PartitionOffsets:
    epoch: int
    active_at: float  # last time an event of it was attempted or finished (or work arrived)
    finished: frozenset[int] = frozenset()  # done by the previous owner (commit metadata)
    in_order: deque[int] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)  # record bytes, parallel to in_order
    buffered_bytes: int = 0
    done: set[int] = field(default_factory=set)
    commit_position: int | None = None  # next offset to consume after the done prefix
    committed: CommitPoint | None = None
    highest_started: int = -1
    parts_left: dict[int, int] = field(default_factory=dict)  # fanned-out offsets: parts to go
    revoking: bool = False
    uncommitted_prefix: int = 0  # offsets that joined the done prefix since the last commit
    prefix_in_point: int = 0  # ``uncommitted_prefix`` when the last commit point was taken

    def advance(self) -> None:
        while self.in_order and self.in_order[0] in self.done:
            finished = self.in_order.popleft()
            self.buffered_bytes -= self.sizes.popleft()
            self.done.discard(finished)
            self.commit_position = finished + 1
            self.uncommitted_prefix += 1

    def finish(self, offset: int) -> bool:
        """One part of the offset finished; True when it was the last (the offset is done)."""
        left = self.parts_left.pop(offset, 1) - 1 if self.parts_left else 0
        if left > 0:
            self.parts_left[offset] = left
            return False
        self.done.add(offset)
        return True

    def may_run(self, offset: int) -> bool:
        return not self.revoking or offset <= self.highest_started

    def commit_point(self) -> CommitPoint | None:
        position = self.commit_position
        if self.done and position is None:
            position = self.in_order[0]
        if position is None:
            return None
        return CommitPoint(position, frozenset(self.done))


class OffsetTracker:
    """Per-partition registry of polled offsets and which of them are done."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._partitions: dict[PartitionKey, _PartitionOffsets] = {}
        self._next_epoch = 0

    def assign(
        self,
        partitions: Iterable[PartitionKey],
        finished: dict[PartitionKey, frozenset[int]] | None = None,
    ) -> None:
        """Start tracking newly assigned partitions, each with a fresh epoch; ``finished``
        holds offsets the previous owner already completed (never delivered again)."""
        with self._lock:
            for tp in partitions:
                self._next_epoch += 1
                self._partitions[tp] = _PartitionOffsets(
                    self._next_epoch,
                    self._clock(),
                    finished=(finished or {}).get(tp, frozenset()),
                )

    def begin_revoke(self, partitions: Iterable[PartitionKey]) -> None:
        """From now on only events below the highest started offset may start (they close
        the gaps in the done offsets); completions still count until ``drop``."""
        with self._lock:
            for tp in partitions:
                state = self._partitions.get(tp)
                if state is not None:
                    state.revoking = True

    def drop(self, partitions: Iterable[PartitionKey]) -> None:
        """Forget revoked or lost partitions; late completions for them are ignored."""
        with self._lock:
            for tp in partitions:
                self._partitions.pop(tp, None)

    def register(
        self, topic: str, partition: int, offset: int, size: int = 0
    ) -> OffsetTicket | None:
        """Record a polled offset of ``size`` bytes; None when it must not be delivered: the
        partition is not (or no longer) assigned, or the previous owner already finished it."""
        with self._lock:
            state = self._partitions.get((topic, partition))
            if state is None:
                return None
            if not state.in_order:  # idle until now: the stall clock starts with this work
                state.active_at = self._clock()
            state.in_order.append(offset)
            state.sizes.append(size)
            state.buffered_bytes += size
            if offset in state.finished:
                state.done.add(offset)
                state.advance()
                return None
            return OffsetTicket(topic, partition, offset, state.epoch)

    def mark_done(self, ticket: OffsetTicket) -> bool:
        """Mark one offset done; False when its assignment is gone (stale epoch)."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            if state is None or state.epoch != ticket.epoch:
                return False
            if state.finish(ticket.offset):
                state.active_at = self._clock()
                state.advance()
            return True

    def mark_all_done(self, tickets: Iterable[OffsetTicket]) -> None:
        """``mark_done`` for many offsets under one lock, each partition advanced once: a
        poll batch's skipped events (stale tickets are ignored, as by ``mark_done``)."""
        with self._lock:
            touched: dict[PartitionKey, _PartitionOffsets] = {}
            for ticket in tickets:
                tp = (ticket.topic, ticket.partition)
                state = touched.get(tp) or self._partitions.get(tp)
                if state is None or state.epoch != ticket.epoch:
                    continue
                if state.finish(ticket.offset):
                    touched[tp] = state
            now = self._clock() if touched else 0.0
            for state in touched.values():
                state.active_at = now
                state.advance()

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

    def idle_seconds(self) -> dict[PartitionKey, tuple[int, float]]:
        """Per partition holding pending work: (pending events, seconds since its last activity)."""
        with self._lock:
            now = self._clock()
            return {
                tp: (len(state.in_order), now - state.active_at)
                for tp, state in self._partitions.items()
                if state.in_order
            }

    def expect_parts(self, ticket: OffsetTicket, count: int) -> None:
        """The offset is done after ``count`` calls of ``mark_done`` (a fanned-out event)."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            if state is not None and state.epoch == ticket.epoch:
                state.parts_left[ticket.offset] = count

    def is_current(self, ticket: OffsetTicket) -> bool:
        """True while work for the ticket may go on: its assignment is ours and, once the
        partition is being revoked, the ticket lies at or below the highest started offset."""
        with self._lock:
            state = self._partitions.get((ticket.topic, ticket.partition))
            return (
                state is not None and state.epoch == ticket.epoch and state.may_run(ticket.offset)
            )

    def start(self, first: OffsetTicket, last: OffsetTicket) -> bool:
        """Note that the events ``first``..``last`` (one delivery) start; False when they may
        not (``is_current`` of ``first`` is false)."""
        with self._lock:
            state = self._partitions.get((first.topic, first.partition))
            if state is None or state.epoch != first.epoch or not state.may_run(first.offset):
                return False
            state.highest_started = max(state.highest_started, last.offset)
            return True

    def commit_points(
        self, partitions: Iterable[PartitionKey] | None = None
    ) -> dict[PartitionKey, CommitPoint]:
        """What to commit now: partitions whose done offsets changed since the last commit."""
        with self._lock:
            chosen = self._partitions if partitions is None else partitions
            points = {}
            for tp in chosen:
                state = self._partitions.get(tp)
                point = None if state is None else state.commit_point()
                if state is not None and point is not None and point != state.committed:
                    points[tp] = point
                    state.prefix_in_point = state.uncommitted_prefix
            return points

    def committed(self, points: dict[PartitionKey, CommitPoint]) -> None:
        """Record that these points were committed by the broker."""
        with self._lock:
            for tp, point in points.items():
                state = self._partitions.get(tp)
                if state is not None:
                    state.committed = point
                    state.uncommitted_prefix -= state.prefix_in_point
                    state.prefix_in_point = 0

    def uncommitted_prefix(self) -> int:
        """Offsets done in order since the last commit, all partitions: what a crash would
        redeliver besides the done offsets above the gaps."""
        with self._lock:
            return sum(state.uncommitted_prefix for state in self._partitions.values())

    def committed_position(self, tp: PartitionKey) -> int | None:
        """The last position this consumer committed for a partition (None if none yet)."""
        with self._lock:
            state = self._partitions.get(tp)
            return None if state is None or state.committed is None else state.committed.position

    def first_pending(self, tp: PartitionKey) -> int | None:
        """The lowest offset polled and not yet done (None when nothing is pending)."""
        with self._lock:
            state = self._partitions.get(tp)
            return state.in_order[0] if state is not None and state.in_order else None

    def pending_count(self) -> int:
        """Offsets polled and not yet committable (the buffered, in-flight events)."""
        with self._lock:
            return sum(len(state.in_order) for state in self._partitions.values())

    def pending_counts(self) -> dict[PartitionKey, int]:
        """``pending_count`` per tracked partition."""
        with self._lock:
            return {tp: len(state.in_order) for tp, state in self._partitions.items()}

    def pending_bytes(self) -> dict[PartitionKey, int]:
        """Record bytes (key, value, headers) of the pending offsets, per tracked partition."""
        with self._lock:
            return {tp: state.buffered_bytes for tp, state in self._partitions.items()}

    def assigned(self) -> list[PartitionKey]:
        """Partitions currently tracked."""
        with self._lock:
            return list(self._partitions)
