"""The destination gate: halted by a refused token, reopened by a probe that gets through."""

from __future__ import annotations

import asyncio

import pytest

from processor import metrics
from processor.engine.destination import DestinationGate
from processor.engine.outcomes import DestinationDown, Forbidden, PermanentError, TransientError
from tests.unit.engine.fakes import ManualClock


class ScriptedProbe:
    """Raises the scripted answers in turn (None: success), then succeeds."""

    def __init__(self, *answers: Exception | None) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


async def reopened(gate: DestinationGate) -> None:
    async with asyncio.timeout(2):
        await gate.wait_open()


async def test_a_halt_holds_everyone_until_a_probe_gets_through() -> None:
    probe = ScriptedProbe(DestinationDown("401", 401), DestinationDown("401", 401))
    changes: list[bool] = []
    gate = DestinationGate(probe, probe_seconds=0.01, on_change=changes.append)

    gate.halt("create_contact: HTTP 401 Unauthorized")

    assert gate.halted
    assert metrics.REGISTRY.get_sample_value("trengo_processor_destination_up") == 0
    waiting = asyncio.create_task(gate.wait_open())
    await asyncio.sleep(0)
    assert not waiting.done()
    await reopened(gate)
    await waiting
    assert (probe.calls, changes, gate.halted) == (3, [False, True], False)
    assert metrics.REGISTRY.get_sample_value("trengo_processor_destination_up") == 1


async def test_halting_twice_starts_one_probe() -> None:
    probe = ScriptedProbe()
    gate = DestinationGate(probe, probe_seconds=0.01, on_change=lambda _up: None)
    gate.halt("401")
    gate.halt("403")
    await reopened(gate)
    await asyncio.sleep(0.03)
    assert probe.calls == 1


async def test_any_answer_but_401_or_403_proves_the_token_works() -> None:
    gate = DestinationGate(
        ScriptedProbe(TransientError("503", 503)), probe_seconds=0.01, on_change=lambda _: None
    )
    gate.halt("401")
    await reopened(gate)


async def test_a_probe_bug_does_not_leave_the_destination_halted_for_good() -> None:
    probe = ScriptedProbe(RuntimeError("unexpected"))
    gate = DestinationGate(probe, probe_seconds=0.01, on_change=lambda _up: None)
    gate.halt("401")
    await reopened(gate)
    assert probe.calls == 2


async def test_counts_the_seconds_spent_halted_across_halts() -> None:
    clock = ManualClock()
    gate = DestinationGate(
        ScriptedProbe(), probe_seconds=0.01, on_change=lambda _up: None, clock=clock
    )
    assert gate.halted_seconds() == 0.0
    gate.halt("401")
    clock.advance(30)
    assert gate.halted_seconds() == 30.0  # the current halt counts while it lasts
    await reopened(gate)
    clock.advance(70)
    assert gate.halted_seconds() == 30.0  # open time does not
    gate.halt("401")
    clock.advance(5)
    await reopened(gate)
    assert gate.halted_seconds() == 35.0


async def test_every_probe_re_reads_the_token_source_first() -> None:
    events: list[str] = []
    rotated_after = 2  # the Secret holds a new token from the second re-read on

    def reload_token() -> bool:
        events.append("reload")
        return events.count("reload") == rotated_after

    async def probe() -> None:
        events.append("probe")
        if events.count("reload") < rotated_after:
            raise DestinationDown("search: HTTP 401", 401)

    gate = DestinationGate(
        probe, probe_seconds=0.01, on_change=lambda _up: None, reload_token=reload_token
    )
    gate.halt("create_ticket: HTTP 401 Unauthorized")
    await reopened(gate)

    assert events == ["reload", "probe", "reload", "probe"]


async def test_token_works_asks_one_probe_with_the_same_token() -> None:
    reloads: list[int] = []

    def reload_token() -> bool:
        reloads.append(1)
        return True

    gate = DestinationGate(
        ScriptedProbe(None, Forbidden("search: HTTP 403", 403), PermanentError("422", 422)),
        probe_seconds=0.0,  # no answer is believed for long: every call probes
        on_change=lambda _up: None,
        reload_token=reload_token,
    )
    assert [await gate.token_works() for _ in range(3)] == [True, False, True]
    assert reloads == [] and not gate.halted


async def test_concurrent_403s_share_one_probe_and_a_working_token_is_believed_a_while() -> None:
    clock = ManualClock()
    probe = ScriptedProbe()
    gate = DestinationGate(probe, probe_seconds=30, on_change=lambda _up: None, clock=clock)

    assert await asyncio.gather(*(gate.token_works() for _ in range(5))) == [True] * 5
    clock.advance(29)
    assert await gate.token_works()
    assert probe.calls == 1
    clock.advance(2)
    assert await gate.token_works()
    assert probe.calls == 2


async def test_a_refused_or_unanswered_token_check_is_not_reused() -> None:
    probe = ScriptedProbe(Forbidden("403", 403), TransientError("503", 503))
    gate = DestinationGate(probe, probe_seconds=30, on_change=lambda _up: None)

    assert await gate.token_works() is False
    with pytest.raises(TransientError):
        await gate.token_works()
    assert await gate.token_works() is True
    assert probe.calls == 3


async def test_a_halt_until_restart_never_probes() -> None:
    probes: list[None] = []
    changes: list[bool] = []

    async def probe() -> None:
        probes.append(None)

    gate = DestinationGate(probe, probe_seconds=0.01, on_change=changes.append)
    gate.halt_until_restart("too many dead letters")
    gate.halt("401")  # a later halt does not replace the reason nor start probing
    await asyncio.sleep(0.1)
    assert gate.halted and gate.halt_reason == "too many dead letters"
    assert probes == [] and changes == [False]
    await gate.close()
