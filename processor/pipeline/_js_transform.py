"""RudderStack JavaScript transformations in QuickJS (the ``quickjs`` package).

The file runs as written, less its ``export`` keywords. QuickJS cannot call into Python while
a time limit is set, so ``log(...)`` collects lines inside the engine and they are logged after
the call; ``getCredential(key)`` reads a map copied in at load. ``fetch``/``fetchV2`` and
library imports are refused at load: no network calls from a transformation in this version.
"""

from __future__ import annotations

import json
import logging
import re
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
function __rsRun(eventJson, metadataJson) {
  __rsLogs = [];
  var metadataValue = JSON.parse(metadataJson);
  var output = transformEvent(JSON.parse(eventJson), function () { return metadataValue; });
  if (output && typeof output.then === "function") {
    throw new Error("transformEvent returned a Promise: async transformations are not supported");
  }
  return JSON.stringify({ output: output === undefined ? null : output, logs: __rsLogs });
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
        source = _read_source(path)
        self._context = quickjs.Context()
        self._context.set_memory_limit(memory_limit_mb * 1024 * 1024)
        try:
            self._context.eval(f"var __rsCredentials = {json.dumps(dict(credentials))};")
            self._context.eval(_RUNNER)
            self._context.eval(source)
        except quickjs.JSException as error:
            raise TransformationError(
                f"{KEY}: {path} fails to load: {_first_line(error)}"
            ) from None
        self._run = self._context.get("__rsRun")
        # Set last: loading a large file may take longer than one event may.
        self._context.set_time_limit(timeout_ms / 1000)
        self._timeout_ms = timeout_ms

    def __call__(self, event: Document, metadata: Metadata) -> object:
        try:
            answer = self._run(json.dumps(event), json.dumps(metadata))
        except quickjs.JSException as error:
            raise EventFailedError(self._describe(error)) from None
        decoded: dict[str, Any] = json.loads(answer)
        for line in decoded["logs"]:
            logger.debug("transformation: %s", line)
        return decoded["output"]

    def _describe(self, error: quickjs.JSException) -> str:
        text = _first_line(error)
        if text == "InternalError: interrupted":
            limit = f"{self._timeout_ms} ms"
            return f"transformEvent ran over the {limit} limit (transformation.timeout_ms)"
        if "out of memory" in text or text == "null":
            # QuickJS may fail to allocate the error itself and throw null instead.
            return "transformEvent ran out of memory (transformation.memory_limit_mb) or threw null"
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
