"""Transform stage: the user's RudderStack transformation, ``transformEvent(event, metadata)``.

A transformation is loaded once at start (``load_transformation``) from Python
(``module:function`` or a file) or from a RudderStack JavaScript file (``_js_transform``). Per
event it returns the events to send (one, several: fan-out under the one offset), a skip
(``None`` or an empty list) or a dead letter (stage ``transform``) when user code raises,
exceeds its limits or returns something that is not a list of JSON objects.

Python runs in a worker thread that is interrupted past the time limit (``_py_transform``);
JavaScript runs in QuickJS with a per-call time limit and a memory limit. Either way an
endless loop fails that one event.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from processor.config import ConfigError, TransformationConfig
from processor.pipeline.plan import Rejection, Skip

DESTINATION_TYPE = "TRENGO"
SOURCE_ID_HEADER = "sourceId"
DROPPED_REASON = "dropped by the transformation"

Document = dict[str, Any]
Metadata = dict[str, Any]


class TransformationError(ConfigError):
    """The transformation cannot be loaded or fails on the sample event (a config mistake)."""


class EventFailedError(Exception):
    """User code failed on this event: the reason goes into its dead letter."""


class UserFunction(Protocol):
    """Runs ``transformEvent`` on one event; raises EventFailedError when user code fails."""

    def __call__(self, event: Document, metadata: Metadata) -> object: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_output_bytes: int
    max_events: int


def event_metadata(
    event: Mapping[str, Any], destination_name: str, source_id: str | None
) -> Metadata:
    """What RudderStack's ``metadata(event)`` returns, as far as this processor knows it."""
    metadata: Metadata = {
        "messageId": event.get("messageId"),
        "eventName": event.get("event"),
        "eventType": event.get("type"),
        "destinationType": DESTINATION_TYPE,
        "destinationName": destination_name,
    }
    if source_id is not None:
        metadata["sourceId"] = source_id
    return metadata


@dataclass(frozen=True, slots=True)
class Transformation:
    """A loaded transformation plus its limits: ``run`` is the stage."""

    function: UserFunction
    limits: Limits
    destination_name: str

    def run(
        self, event: Document, source_id: str | None = None
    ) -> list[Document] | Rejection | Skip:
        """The events to go on with, or a skip / dead letter of stage ``transform``."""
        metadata = event_metadata(event, self.destination_name, source_id)
        try:
            result = self.function(event, metadata)
        except EventFailedError as failure:
            return _fail(str(failure))
        return self._checked(result)

    def _checked(self, result: object) -> list[Document] | Rejection | Skip:
        if result is None:
            return _DROPPED
        events = result if isinstance(result, list) else [result]
        if not events:
            return _DROPPED
        if len(events) > self.limits.max_events:
            return _fail(
                f"transformEvent returned {len(events)} events, over the"
                f" {self.limits.max_events} allowed (transformation.max_events)"
            )
        for index, item in enumerate(events):
            if not isinstance(item, dict):
                where = f" at [{index}]" if isinstance(result, list) else ""
                return _fail(
                    f"transformEvent must return an object, a list of objects or nothing;"
                    f" got {type(item).__name__}{where}"
                )
        return _within_size(
            [item for item in events if isinstance(item, dict)], self.limits.max_output_bytes
        )


def _within_size(events: list[Document], max_bytes: int) -> list[Document] | Rejection:
    """Check the output is JSON, valid UTF-8 (no lone surrogates) and not too large."""
    try:
        size = len(json.dumps(events, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError:
        return _fail("transformEvent returned text that is not valid Unicode (a lone surrogate)")
    except (TypeError, ValueError) as error:
        return _fail(f"transformEvent returned something that is not JSON: {error}")
    if size > max_bytes:
        return _fail(
            f"transformEvent returned {size} bytes, over the {max_bytes} allowed"
            " (transformation.max_output_bytes)"
        )
    return events


_DROPPED = Skip(reason="transformation", detail=DROPPED_REASON)


def _fail(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="transform")


def load_transformation(config: TransformationConfig) -> Transformation | None:
    """The configured transformation, or None when off; TransformationError on a mistake."""
    if config.python is not None:
        from processor.pipeline._py_transform import PythonFunction  # noqa: PLC0415

        function: UserFunction = PythonFunction(
            load_python(config.python), timeout_ms=config.timeout_ms
        )
    elif config.javascript is not None:
        from processor.pipeline._js_transform import JavaScriptFunction  # noqa: PLC0415

        function = JavaScriptFunction(
            config.javascript,
            config.credentials,
            timeout_ms=config.timeout_ms,
            memory_limit_mb=config.memory_limit_mb,
        )
    else:
        return None
    limits = Limits(config.max_output_bytes, config.max_events)
    return Transformation(function, limits, config.destination_name)


def load_python(target: str) -> Callable[..., object]:
    """``package.module:function`` (importable) or ``path/to/file.py`` (``transformEvent``)."""
    if target.endswith(".py") or "/" in target:
        module = _module_from_file(Path(target))
        name = "transformEvent"
    else:
        module_name, _, name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise TransformationError(
                f"transformation.python: cannot import {module_name} ({error})"
            ) from None
        name = name or "transformEvent"
    if hasattr(module, "transformBatch") and not hasattr(module, "transformEvent"):
        raise TransformationError(_BATCH_HINT.format(key="transformation.python"))
    function: object = getattr(module, name, None)
    if not callable(function):
        raise TransformationError(f"transformation.python: {target} has no function {name}")
    return function


def _module_from_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"user_transformation_{path.stem}", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise TransformationError(f"transformation.python: cannot read {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise TransformationError(
            f"transformation.python: {path} fails to load ({type(error).__name__}: {error})"
        ) from None
    return module


_BATCH_HINT = (
    "{key}: transformBatch is not supported; write transformEvent(event, metadata), which runs"
    " once per event (return a list from it to send several events)"
)

SAMPLE_EVENT: Document = {
    "type": "track",
    "event": "Sample Event",
    "messageId": "check-config-sample",
    "userId": "sample-user",
    "anonymousId": "sample-anonymous",
    "properties": {"email": "sample@example.com", "plan": "pro"},
    "context": {"traits": {"email": "sample@example.com", "name": "Sample User"}},
    "timestamp": "2026-01-01T00:00:00.000Z",
}


def check_on_sample(transformation: Transformation) -> list[Document] | Rejection | Skip:
    """Run once on the built-in sample event; a dead letter becomes a TransformationError."""
    result = transformation.run(copy.deepcopy(SAMPLE_EVENT))
    if isinstance(result, Rejection):
        raise TransformationError(f"transformation fails on the sample event: {result.reason}")
    return result
