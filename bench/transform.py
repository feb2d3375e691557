"""Benchmark ``transform``: the per-event cost of a user transformation, per engine.

Method, in-process (no broker, no HTTP: the transformation runs on the event loop before
delivery, so its cost adds to every event's CPU time):

* *call alone*: ``transformEvent`` returning its event unchanged, called on one ``Order
  Completed`` track (JSON in, JSON out, as the processor calls it): QuickJS through
  ``quickjs-ng`` (the engine the processor uses), V8 through ``mini-racer`` with the same
  runner script, and Python three ways: in a worker thread the time limit can interrupt (what
  the processor does), in the calling thread (no way to stop an endless loop), and in a
  subprocess worker behind a pipe (the alternative: killable, could take a memory limit).
* *no-call path*: the whole decode → transform → filter → validate → map step of the processor
  (``RecordPreparer``) on the same records, the work an event costs before any Trengo call,
  without a transformation and with the trivial one in each language, side by side.

Each figure is the best of 3 rounds of N events; events/s = N / seconds.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.report import markdown_table
from processor.config import Settings
from processor.engine.handler import KafkaRecord
from processor.pipeline._js_transform import _RUNNER
from processor.pipeline.filters import EventFilter
from processor.pipeline.prepare import RecordPreparer
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import (
    Limits,
    Transformation,
    load_python,
    load_transformation,
)

TITLE = "per-event cost of a user transformation, per engine"
ROUNDS = 3
TRIVIAL_JS = "export function transformEvent(event, metadata) { return event; }\n"
TRIVIAL_PY = "def transformEvent(event, metadata):\n    return event\n"
EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "bench-1",
    "userId": "user-1",
    "context": {"traits": {"email": "user-1@example.com", "name": "User One"}},
    "properties": {"order_id": "A-1", "total": 30, "currency": "EUR"},
    "timestamp": "2026-01-01T00:00:00.000Z",
}
METADATA = {"messageId": "bench-1", "destinationType": "TRENGO"}


def run(quick: bool) -> str:
    """Measure and return the Markdown section."""
    count = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as scratch:
        js_file, py_file = Path(scratch, "t.js"), Path(scratch, "t.py")
        js_file.write_text(TRIVIAL_JS, encoding="utf-8")
        py_file.write_text(TRIVIAL_PY, encoding="utf-8")
        calls = _call_rows(count, js_file, py_file)
        prepare = _prepare_rows(count, js_file, py_file)
    sizes = _install_sizes()
    lines = [
        f"## User transformations (`python -m bench transform`)\n\n"
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs,"
        f" {count:,} events per round, best of {ROUNDS}.\n",
        "Call alone (a trivial `transformEvent`):\n",
        markdown_table(["engine", "events/s", "µs per event", "installed size"], calls(sizes)),
        "\nThe no-call path (decode → transform → filter → validate → map: an event's work before"
        " any Trengo call), side by side:\n",
        markdown_table(["transformation", "events/s", "µs per event", "vs none"], prepare),
    ]
    return "\n".join(lines)


def _call_rows(
    count: int, js_file: Path, py_file: Path
) -> Callable[[dict[str, str]], list[list[str]]]:
    with _subprocess_call(py_file) as in_subprocess:
        measured: list[tuple[str, str, float | None]] = [
            ("QuickJS (`quickjs-ng`, used)", "quickjs-ng", _rate(count, _call(js_file))),
            ("V8 (`mini-racer`)", "mini-racer", _rate(count, _mini_racer_call())),
            ("Python, worker thread (used)", "-", _rate(count, _call(py_file))),
            ("Python, calling thread (cannot stop)", "-", _rate(count, _in_thread(py_file))),
            ("Python, subprocess worker", "-", _rate(count, in_subprocess)),
        ]

    def rows(sizes: dict[str, str]) -> list[list[str]]:
        return [
            [name, *_figures(rate), sizes.get(package, "-")] for name, package, rate in measured
        ]

    return rows


def _call(path: Path) -> Callable[[], object]:
    """The transformation as the processor loads it."""
    language = "javascript" if path.suffix == ".js" else "python"
    transformation = load_transformation(
        Settings(
            destination={"apiToken": "t", "channelId": "1"}, transformation={language: str(path)}
        ).transformation
    )
    assert transformation is not None
    return lambda: transformation.run(dict(EVENT))


def _in_thread(py_file: Path) -> Callable[[], object]:
    """The Python function called directly, as before the worker thread."""
    function = load_python(str(py_file))
    transformation = Transformation(
        lambda event, metadata: function(event, lambda _event=None: metadata),
        Limits(max_output_bytes=1_048_576, max_events=100),
        "Trengo",
    )
    return lambda: transformation.run(dict(EVENT))


@contextmanager
def _subprocess_call(py_file: Path) -> Iterator[Callable[[], object]]:
    """A worker process behind a pipe: the event goes over, the result comes back."""
    ours, theirs = multiprocessing.Pipe()
    worker = multiprocessing.get_context("spawn").Process(
        target=_serve_in_subprocess, args=(theirs, str(py_file)), daemon=True
    )
    worker.start()

    def call() -> object:
        ours.send((dict(EVENT), METADATA))
        if not ours.poll(1.0):  # where the time limit would kill the worker
            raise TimeoutError("the subprocess worker did not answer")
        return ours.recv()

    try:
        yield call
    finally:
        ours.send(None)
        worker.join(5)


def _serve_in_subprocess(connection: Connection, target: str) -> None:
    function = load_python(target)
    while (request := connection.recv()) is not None:
        event, metadata = request
        connection.send(function(event, lambda _event=None, known=metadata: known))


def _mini_racer_call() -> Callable[[], object] | None:
    try:
        mini_racer: Any = importlib.import_module("py_mini_racer")  # optional: measured if present
    except ImportError:
        return None
    context = mini_racer.MiniRacer()
    context.eval("var __rsCredentials = {};" + _RUNNER + TRIVIAL_JS.replace("export ", ""))
    event_json, metadata_json = json.dumps(EVENT), json.dumps(METADATA)

    def call() -> object:
        answer = context.call("__rsRun", event_json, metadata_json, timeout_sec=0.1)
        return json.loads(answer)

    return call


def _prepare_rows(count: int, js_file: Path, py_file: Path) -> list[list[str]]:
    records = [
        KafkaRecord("bench", 0, offset, None, json.dumps(EVENT).encode(), (), None)
        for offset in range(count)
    ]
    rates = []
    for name, transformation in [
        ("none", {}),
        ("trivial, Python", {"python": str(py_file)}),
        ("trivial, JavaScript (QuickJS)", {"javascript": str(js_file)}),
    ]:
        settings = Settings(
            destination={
                "apiToken": "t",
                "channelId": "1",
                "eventTemplateMap": [{"from": "Order Completed", "to": "Order {{order_id}}"}],
            },
            transformation=transformation,
        )
        preparer = RecordPreparer(
            settings,
            EventTemplates(settings.destination),
            EventFilter.from_settings(settings),
            load_transformation(settings.transformation),
        )
        rates.append((name, _rate(count, _each(preparer, records * ROUNDS))))
    baseline = rates[0][1]
    return [
        [name, *_figures(rate), f"{rate / baseline:.2f}" if rate and baseline else "-"]
        for name, rate in rates
    ]


def _each(preparer: RecordPreparer, records: list[KafkaRecord]) -> Callable[[], object]:
    iterator = iter(records)
    return lambda: preparer(next(iterator))


def _rate(count: int, call: Callable[[], object] | None) -> float | None:
    if call is None:
        return None
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, time.perf_counter() - started)
    return count / best


def _figures(rate: float | None) -> list[str]:
    if rate is None:
        return ["not installed", "-"]
    return [f"{rate:,.0f}", f"{1_000_000 / rate:,.1f}"]


def _install_sizes() -> dict[str, str]:
    """The installed size of each engine's files in this virtualenv."""
    site = Path(next(path for path in sys.path if path.endswith("site-packages")))
    patterns = {"quickjs-ng": ["_quickjs*", "quickjs"], "mini-racer": ["py_mini_racer"]}
    sizes = {}
    for package, globs in patterns.items():
        files = [f for pattern in globs for path in site.glob(pattern) for f in _files(path)]
        if files:
            sizes[package] = f"{sum(f.stat().st_size for f in files) / 1_048_576:.1f} MiB"
    return sizes


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
