"""RudderStack JavaScript transformations in QuickJS (the ``quickjs-ng`` package).

The file runs as written, less its ``export`` keywords. QuickJS cannot call into Python while
a time limit is set, so ``log(...)`` collects lines inside the engine and they are logged after
the call; an async ``transformEvent`` is settled by running the engine's pending jobs;
``getCredential(key)`` reads a map copied in at load. ``fetch``/``fetchV2`` and library imports
are refused at load: no network calls from a transformation in this version.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import quickjs  # type: ignore[import-untyped]

from processor.pipeline.transform import (
    _BATCH_HINT,
    Document,
    EventFailedError,
    Metadata,
    TransformationError,
)

logger = logging.getLogger(__name__)

KEY = "transformation.javascript"
_EXHAUSTED = "transformEvent ran"  # how a time or memory failure's reason starts
_EXPORT = re.compile(
    r"^(\s*)export\s+(default\s+)?(?=(async\s+)?function|const|let|var|class)", re.M
)
_IMPORT = re.compile(r"^\s*import\s[^;\n]*?from\s+['\"]([^'\"]+)['\"]", re.M)
_FETCH = re.compile(r"\b(fetchV2|fetch)\s*\(")
_DEFINES = re.compile(r"\b(?:function\s+|(?:const|let|var)\s+){name}\b")

# Runs transformEvent on a JSON event and hands back JSON: the output and the log lines.
_RUNNER = """
var __rsLogs = [];
function log() {
  __rsLogs.push(Array.prototype.map.call(arguments, function (part) {
    return typeof part === "string" ? part : JSON.stringify(part);
  }).join(" "));
}
function getCredential(key) {
  return Object.prototype.hasOwnProperty.call(__rsCredentials, key) ? __rsCredentials[key] : null;
}
var __rsCall = 0;
var __rsSettled = null;
function __rsFinish(output) {
  return JSON.stringify({ output: output === undefined ? null : output, logs: __rsLogs });
}
function __rsRun(eventJson, metadataJson) {
  __rsLogs = [];
  var metadataValue = JSON.parse(metadataJson);
  var output = transformEvent(JSON.parse(eventJson), function () { return metadataValue; });
  if (!(output && typeof output.then === "function")) {
    return __rsFinish(output);
  }
  // An async transformEvent: Python runs the pending jobs, then asks __rsResult. Jobs left
  // over from an interrupted call must not settle a later call's result.
  var call = ++__rsCall;
  __rsSettled = null;
  output.then(
    function (value) { if (call === __rsCall) { __rsSettled = { value: __rsFinish(value) }; } },
    function (error) { if (call === __rsCall) { __rsSettled = { error: error }; } }
  );
  return null;
}
function __rsResult() {
  if (__rsSettled === null) {
    throw new Error("transformEvent's Promise never settled");
  }
  if ("error" in __rsSettled) {
    throw __rsSettled.error;
  }
  return __rsSettled.value;
}
"""


class JavaScriptFunction:
    """``transformEvent`` from one file in one QuickJS context with time and memory limits."""

    def __init__(
        self,
        path: Path,
        credentials: Mapping[str, str],
        *,
        timeout_ms: int,
        memory_limit_mb: int,
    ) -> None:
        self._path = path
        self._setup = f"var __rsCredentials = {json.dumps(dict(credentials))};{_RUNNER}"
        self._source = _read_source(path)
        self._timeout_ms = timeout_ms
        self._memory_limit_mb = memory_limit_mb
        self._load()

    def _load(self) -> None:
        """A fresh context with the file loaded: at start, and after a call ran out of time or
        memory (an interrupted async call may leave jobs queued; a heap that hit its limit may
        be left in any state)."""
        self._context = quickjs.Context()
        self._context.set_memory_limit(self._memory_limit_mb * 1024 * 1024)
        try:
            self._context.eval(self._setup)
            self._context.eval(self._source)
        except quickjs.JSException as error:
            raise TransformationError(
                f"{KEY}: {self._path} fails to load: {_first_line(error)}"
            ) from None
        self._run = self._context.get("__rsRun")
        self._result = self._context.get("__rsResult")
        # Set last: loading a large file may take longer than one event may.
        self._context.set_time_limit(self._timeout_ms / 1000)

    def __call__(self, event: Document, metadata: Metadata) -> object:
        started = time.monotonic()
        try:
            answer = self._run(json.dumps(event), json.dumps(metadata))
            if answer is None:
                answer = self._settle(started)
        except quickjs.JSException as error:
            reason = self._describe(error)
            if reason.startswith(_EXHAUSTED):
                self._load()
            raise EventFailedError(reason) from None
        except EventFailedError:
            self._load()
            raise
        decoded: dict[str, Any] = json.loads(answer)
        for line in decoded["logs"]:
            logger.debug("transformation: %s", line)
        return decoded["output"]

    def _settle(self, started: float) -> str:
        """Run the jobs of an async transformEvent until they are done or its time is up."""
        while self._context.execute_pending_job():
            if (time.monotonic() - started) * 1000 > self._timeout_ms:
                raise EventFailedError(self._over_time())
        answer: str = self._result()
        return answer

    def _over_time(self) -> str:
        return f"{_EXHAUSTED} over the {self._timeout_ms} ms limit (transformation.timeout_ms)"

    def _describe(self, error: quickjs.JSException) -> str:
        text = _first_line(error)
        if text == "InternalError: interrupted":
            return self._over_time()
        if "out of memory" in text or text == "null":
            # QuickJS may fail to allocate the error itself and throw null instead.
            return f"{_EXHAUSTED} out of memory (transformation.memory_limit_mb) or threw null"
        return f"transformEvent threw {text}"


def _read_source(path: Path) -> str:
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TransformationError(f"{KEY}: cannot read {path} ({error})") from None
    imports = _IMPORT.findall(source)
    if imports:
        raise TransformationError(
            f"{KEY}: {path} imports {', '.join(imports)}: libraries (@rs/...) are not supported;"
            " paste the code you need into the file"
        )
    calls = sorted(set(_FETCH.findall(source)))
    if calls:
        raise TransformationError(
            f"{KEY}: {path} calls {'/'.join(calls)}: network calls from a transformation are not"
            " supported"
        )
    if _defines(source, "transformBatch"):
        raise TransformationError(_BATCH_HINT.format(key=KEY))
    if not _defines(source, "transformEvent"):
        raise TransformationError(f"{KEY}: {path} defines no transformEvent(event, metadata)")
    return _EXPORT.sub(r"\1", source)


def _defines(source: str, name: str) -> bool:
    return re.search(_DEFINES.pattern.format(name=name), source) is not None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
