"""Transform stage: the ported RudderStack samples in both languages, limits and hostile output."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest

from processor.config import TransformationConfig
from processor.pipeline.plan import Rejection, Skip
from processor.pipeline.transform import (
    DROPPED_REASON,
    SAMPLE_EVENT,
    Transformation,
    TransformationError,
    check_on_sample,
    load_transformation,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "transformations"


def _load(path: Path, **options: Any) -> Transformation:
    key = "javascript" if path.suffix == ".js" else "python"
    transformation = load_transformation(TransformationConfig(**{key: str(path)}, **options))
    assert transformation is not None
    return transformation


def _track(name: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": name, "messageId": "m-1", "userId": "u-1", **fields}


SKIP = Skip(reason="transformation", detail=DROPPED_REASON)
MASK_IN = _track(
    "Signed Up",
    context={"traits": {"phone": "+31612345678", "ssn": "123", "name": "Ann"}},
    properties={"ssn": "123", "plan": "pro"},
)
MASK_OUT = _track(
    "Signed Up",
    context={"traits": {"phone": "+31*********", "name": "Ann"}},
    properties={"plan": "pro"},
)
AUTH_IN = _track("ide-authentication", properties={"email": "a@example.com"})
AUTH_OUT = {**AUTH_IN, "type": "identify", "context": {"traits": {"email": "a@example.com"}}}

SAMPLES = [
    ("event_filter", _track("game_load_time"), SKIP),
    ("event_filter", _track("lobby_fps"), SKIP),
    ("event_filter", _track("Order Completed"), [_track("Order Completed")]),
    ("pii_mask", MASK_IN, [MASK_OUT]),
    ("pii_mask", _track("No Traits"), [_track("No Traits")]),
    ("event_type", AUTH_IN, [AUTH_OUT]),
    ("event_type", _track("ide-authentication"), [_track("ide-authentication")]),
    (
        "event_type",
        _track("Other", properties={"email": "a@example.com"}),
        [_track("Other", properties={"email": "a@example.com"})],
    ),
]


@pytest.mark.parametrize("language", ["py", "js"])
@pytest.mark.parametrize(("sample", "event", "expected"), SAMPLES)
def test_ported_rudderstack_samples_give_the_same_output_in_both_languages(
    language: str, sample: str, event: dict[str, Any], expected: object
) -> None:
    transformation = _load(FIXTURES / f"{sample}.{language}")
    assert transformation.run(copy.deepcopy(event)) == expected


HOSTILE = FIXTURES / "hostile.js"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("number", "must return an object, a list of objects or nothing; got int"),
        ("junk list", "got str at [1]"),
        ("huge", "over the 1048576 allowed (transformation.max_output_bytes)"),
        ("throws", "transformEvent threw Error: boom"),
        ("loop", "ran over the 100 ms limit (transformation.timeout_ms)"),
        ("memory", "ran out of memory (transformation.memory_limit_mb)"),
        ("surrogate", "not valid Unicode (a lone surrogate)"),
        ("async throws", "transformEvent threw Error: later"),
        ("async loop", "ran over the 100 ms limit (transformation.timeout_ms)"),
    ],
)
def test_hostile_javascript_fails_only_that_event(name: str, reason: str) -> None:
    transformation = _load(HOSTILE, memory_limit_mb=16)
    result = transformation.run(_track(name))
    assert isinstance(result, Rejection)
    assert result.stage == "transform"
    assert reason in result.reason
    # The engine survives: the next event goes through.
    assert transformation.run(_track("fine")) == [_track("fine")]


def test_javascript_async_transform_event_is_awaited() -> None:
    transformation = _load(HOSTILE)
    assert transformation.run(_track("async")) == [_track("awaited")]
    # An interrupted endless async call leaves nothing behind that delays the next one.
    assert isinstance(transformation.run(_track("async loop")), Rejection)
    assert transformation.run(_track("async")) == [_track("awaited")]


def test_javascript_state_is_kept_between_events(tmp_path: Path) -> None:
    source = "let seen = 0;\nexport function transformEvent(e) { seen += 1; return {...e, seen}; }"
    transformation = _load(_write(tmp_path, "t.js", source))
    assert [transformation.run(_track("x")) for _ in range(2)] == [
        [_track("x", seen=1)],
        [_track("x", seen=2)],
    ]


def test_repeated_memory_and_time_failures_leave_the_process_up() -> None:
    """The older ``quickjs`` binding crashed the process (segfault) on this sequence."""
    kept = []
    for _round in range(8):
        transformation = _load(HOSTILE, memory_limit_mb=16)
        kept.append(transformation)
        for name in ("memory", "huge", "loop", "memory", "fine"):
            transformation.run(_track(name))
    assert all(t.run(_track("fine")) == [_track("fine")] for t in kept)


def test_javascript_fan_out_keeps_the_order() -> None:
    result = _load(HOSTILE).run(_track("fan out"))
    assert result == [_track("first"), _track("second")]


def test_javascript_gets_credentials_and_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    transformation = _load(HOSTILE, credentials={"API_KEY": "k-1"}, destination_name="Support")
    result = transformation.run(_track("secret"), source_id="src-9")
    assert isinstance(result, list)
    assert result[0]["properties"] == {
        "key": "k-1",
        "none": None,
        "meta": {
            "messageId": "m-1",
            "eventName": "secret",
            "eventType": "track",
            "destinationType": "TRENGO",
            "destinationName": "Support",
            "sourceId": "src-9",
        },
    }


def test_javascript_log_goes_to_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        _load(FIXTURES / "pii_mask.js").run(_track("x"))
    assert "transformation: masked m-1" in caplog.text


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'import { hash } from "@rs/hash/v1";\nexport function transformEvent(e) { return e; }',
            "imports @rs/hash/v1: libraries (@rs/...) are not supported",
        ),
        (
            "export async function transformEvent(e) { await fetch('http://x'); return e; }",
            "calls fetch: network calls",
        ),
        (
            "export async function transformEvent(e) { await fetchV2('http://x'); return e; }",
            "calls fetchV2: network calls",
        ),
        (
            "export function transformBatch(events, metadata) { return events; }",
            "transformBatch is not supported; write transformEvent",
        ),
        ("export function other(e) { return e; }", "defines no transformEvent"),
        ("export function transformEvent(e) { return e; ", "fails to load: SyntaxError"),
    ],
)
def test_javascript_refused_at_load(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(TransformationError, match=r"^transformation\.javascript: ") as raised:
        _load(_write(tmp_path, "t.js", source))
    assert message in str(raised.value)


def test_python_exception_is_the_events_dead_letter(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "t.py", "def transformEvent(event, metadata):\n    raise KeyError('email')\n"
    )
    result = _load(path).run(_track("x"))
    assert result == Rejection(reason="transformEvent raised KeyError: 'email'", stage="transform")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("return 'text'", "got str"),
        ("return [event, 3]", "got int at [1]"),
        ("return {'event': '\\ud800'}", "lone surrogate"),
        ("return {'when': object()}", "is not JSON"),
        ("return [event] * 101", "returned 101 events, over the 100 allowed"),
        ("import time; time.sleep(0.02); return event", "over the 10 ms limit"),
    ],
)
def test_python_hostile_output(tmp_path: Path, body: str, reason: str) -> None:
    path = _write(tmp_path, "t.py", f"def transformEvent(event, metadata):\n    {body}\n")
    result = _load(path, timeout_ms=10).run(_track("x"))
    assert isinstance(result, Rejection)
    assert reason in result.reason


def test_python_module_function_and_metadata() -> None:
    config = TransformationConfig(python="tests.unit.pipeline.test_transform:_tag_event")
    transformation = load_transformation(config)
    assert transformation is not None
    assert transformation.run(_track("x")) == [_track("x", properties={"destination": "TRENGO"})]
    assert transformation.run(_track("drop")) == SKIP


def _tag_event(event: dict[str, Any], metadata: Any) -> object:
    if event["event"] == "drop":
        return []
    return {**event, "properties": {"destination": metadata(event)["destinationType"]}}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_x:f", "cannot import no_such_module_x"),
        ("tests.unit.pipeline.test_transform:missing", "has no function missing"),
        ("/nonexistent/t.py", "cannot read /nonexistent/t.py"),
    ],
)
def test_python_refused_at_load(target: str, message: str) -> None:
    with pytest.raises(TransformationError, match=message):
        load_transformation(TransformationConfig(python=target))


def test_python_transform_batch_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.py", "def transformBatch(events, metadata):\n    return events\n")
    with pytest.raises(TransformationError, match="transformBatch is not supported"):
        load_transformation(TransformationConfig(python=str(path)))


def test_off_unless_set() -> None:
    assert load_transformation(TransformationConfig()) is None


def test_check_on_sample_reports_a_failing_transformation(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.js", "export function transformEvent(e) { return e.nope.deeper; }")
    with pytest.raises(
        TransformationError, match="fails on the sample event: transformEvent threw TypeError"
    ):
        check_on_sample(_load(path))
    assert check_on_sample(_load(FIXTURES / "event_filter.js")) == [SAMPLE_EVENT]
