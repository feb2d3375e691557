"""Python transformations over their limits: the event fails, the worker is replaced, the
process and the next events go on."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from processor.config import TransformationConfig
from processor.metrics import REGISTRY
from processor.pipeline._py_transform import STOP_GRACE_SECONDS
from processor.pipeline.plan import Rejection
from processor.pipeline.transform import Transformation, load_transformation

TIMEOUT_MS = 50
OVER_TIME = f"transformEvent ran over the {TIMEOUT_MS} ms limit (transformation.timeout_ms)"
ABANDONED = "it did not stop when interrupted and its thread was abandoned"
ABANDONED_METRIC = "trengo_processor_transformation_threads_abandoned_total"

# One file, one behaviour per event name; ``seen`` is module state that must survive a
# replaced worker (the module is loaded once, not per worker).
SOURCE = """
import time

seen = 0


def _recurse(depth):
    return _recurse(depth + 1) + 1


def transformEvent(event, metadata):
    global seen
    name = event["event"]
    if name == "loop":
        while True:
            pass
    if name == "recursion":
        return _recurse(0)
    if name == "allocation":
        return {"blob": bytearray(1 << 50)}
    if name == "nap":
        time.sleep(0.07)
    if name == "long sleep":
        time.sleep(STOP_GRACE + 1)
    if name == "catches once":
        try:
            while True:
                pass
        except BaseException:
            while True:
                pass
    if name == "raises":
        raise ValueError("bad plan")
    if name == "exits":
        raise SystemExit(3)
    seen += 1
    return {**event, "seen": seen}
"""


@pytest.fixture
def transformation(tmp_path: Path) -> Transformation:
    path = tmp_path / "limits.py"
    path.write_text(SOURCE.replace("STOP_GRACE", repr(STOP_GRACE_SECONDS)), encoding="utf-8")
    loaded = load_transformation(TransformationConfig(python=str(path), timeout_ms=TIMEOUT_MS))
    assert loaded is not None
    return loaded


def _track(name: str) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": "m-1", "userId": "u-1"}


def _abandoned() -> float:
    return REGISTRY.get_sample_value(ABANDONED_METRIC) or 0.0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("loop", OVER_TIME),
        ("catches once", OVER_TIME),  # the interrupt is raised again until the call stops
        ("nap", OVER_TIME),  # blocked in C past the limit, but back within the grace
        ("recursion", "transformEvent raised RecursionError: maximum recursion depth exceeded"),
        ("allocation", "transformEvent raised MemoryError"),
        ("raises", "transformEvent raised ValueError: bad plan"),
        ("exits", "transformEvent raised SystemExit: 3"),  # not the processor's exit
    ],
)
def test_a_failing_call_fails_only_its_event(
    transformation: Transformation, name: str, reason: str
) -> None:
    before = _abandoned()
    assert transformation.run(_track("first")) == [{**_track("first"), "seen": 1}]
    result = transformation.run(_track(name))
    assert isinstance(result, Rejection)
    assert result.stage == "transform"
    assert result.reason.startswith(reason)
    assert ABANDONED not in result.reason
    # The next events run in a working worker, with the module's state intact.
    assert [transformation.run(_track("next")) for _ in range(3)] == [
        [{**_track("next"), "seen": seen}] for seen in (2, 3, 4)
    ]
    assert _abandoned() == before


def test_a_call_blocked_past_the_grace_is_abandoned(transformation: Transformation) -> None:
    before = _abandoned()
    result = transformation.run(_track("long sleep"))
    assert isinstance(result, Rejection)
    assert result.reason == f"{OVER_TIME}; {ABANDONED}"
    assert _abandoned() == before + 1
    assert transformation.run(_track("next")) == [{**_track("next"), "seen": 1}]


def test_timed_out_workers_end(transformation: Transformation) -> None:
    """A worker whose call was interrupted ends: timeouts do not pile up threads."""
    before = _workers()
    for _ in range(5):
        assert isinstance(transformation.run(_track("loop")), Rejection)
    assert transformation.run(_track("next")) == [{**_track("next"), "seen": 1}]
    deadline = time.monotonic() + 5
    while len(_workers() - before) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_workers() - before) == 1  # the one serving the next event


def _workers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "transformation"}
