"""Tests for processor/health.py: probe state transitions and the HTTP endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client.metrics import MetricWrapperBase

from processor import metrics
from processor.health import HealthServer, HealthState
from tests.promtool import exposed_series_names, run_promtool

LIVENESS_SECONDS = 30.0
BROKER_TIMEOUT_SECONDS = 20.0
SAMPLE_LABEL_VALUE = "sample"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
SERIES_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.MULTILINE)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> Iterator[HealthState]:
    yield HealthState(
        liveness_seconds=LIVENESS_SECONDS,
        broker_timeout_seconds=BROKER_TIMEOUT_SECONDS,
        clock=clock,
    )
    metrics.DESTINATION_UP.set(1)


Step = Callable[[HealthState, FakeClock], None]


def tick(seconds: float) -> Step:
    def step(state: HealthState, clock: FakeClock) -> None:
        clock.advance(seconds)
        state.poll_ticked()

    return step


def wait(seconds: float) -> Step:
    return lambda state, clock: clock.advance(seconds)


def answered() -> Step:
    return lambda state, clock: state.broker_answered()


def joined(value: bool) -> Step:
    return lambda state, clock: state.set_assigned(value)


def destination(up: bool, status: int | None = None) -> Step:
    return lambda state, clock: state.set_destination_up(up, status=status)


@dataclass(frozen=True)
class Case:
    name: str
    steps: tuple[Step, ...]
    expected_ok: bool
    expected_reasons: tuple[str, ...] = ()


LIVENESS_CASES = [
    Case("fresh start counts as a tick", (), True),
    Case("start grace ends", (wait(LIVENESS_SECONDS + 1),), False, ("poll loop silent for 31.0s",)),
    Case("exactly at the limit", (tick(5), wait(LIVENESS_SECONDS)), True),
    Case("tick just in time", (wait(LIVENESS_SECONDS - 1), tick(0), wait(LIVENESS_SECONDS)), True),
    Case(
        "stalled after ticks", (tick(1), tick(1), wait(45)), False, ("poll loop silent for 45.0s",)
    ),
    Case("recovers on the next tick", (wait(100), tick(0)), True),
]

READINESS_CASES = [
    Case(
        "nothing yet",
        (),
        False,
        ("consumer has not joined its group", "broker has not answered yet"),
    ),
    Case(
        "joined but broker never answered", (joined(True),), False, ("broker has not answered yet",)
    ),
    Case("answered but not joined", (answered(),), False, ("consumer has not joined its group",)),
    Case("joined and answered", (joined(True), answered()), True),
    Case(
        "broker answer within timeout",
        (joined(True), answered(), wait(BROKER_TIMEOUT_SECONDS)),
        True,
    ),
    Case(
        "broker silent too long",
        (joined(True), answered(), wait(BROKER_TIMEOUT_SECONDS + 5)),
        False,
        ("broker silent for 25.0s",),
    ),
    Case("broker answers again", (joined(True), answered(), wait(100), answered()), True),
    Case(
        "left the group",
        (joined(True), answered(), joined(False)),
        False,
        ("consumer has not joined its group",),
    ),
    Case(
        "destination halted with status",
        (joined(True), answered(), destination(False, 401)),
        False,
        ("destination halted (401)",),
    ),
    Case(
        "destination halted without status",
        (joined(True), answered(), destination(False)),
        False,
        ("destination halted",),
    ),
    Case(
        "destination resumed",
        (joined(True), answered(), destination(False, 403), destination(True)),
        True,
    ),
    Case(
        "every reason at once",
        (answered(), wait(60), destination(False, 403)),
        False,
        (
            "consumer has not joined its group",
            "broker silent for 60.0s",
            "destination halted (403)",
        ),
    ),
]


def run_steps(case: Case, state: HealthState, clock: FakeClock) -> None:
    for step in case.steps:
        step(state, clock)


@pytest.mark.parametrize("case", LIVENESS_CASES, ids=lambda case: case.name)
def test_liveness(case: Case, state: HealthState, clock: FakeClock) -> None:
    run_steps(case, state, clock)

    alive, body = state.liveness()

    assert alive is case.expected_ok
    assert body["status"] == ("alive" if case.expected_ok else "stalled")
    assert body["reasons"] == list(case.expected_reasons)


@pytest.mark.parametrize("case", READINESS_CASES, ids=lambda case: case.name)
def test_readiness(case: Case, state: HealthState, clock: FakeClock) -> None:
    run_steps(case, state, clock)

    ready, body = state.readiness()

    assert ready is case.expected_ok
    assert body["status"] == ("ready" if case.expected_ok else "not ready")
    assert body["reasons"] == list(case.expected_reasons)


def test_readiness_body_details(state: HealthState, clock: FakeClock) -> None:
    assert state.readiness()[1]["seconds_since_broker_answer"] is None

    for step in (joined(True), answered(), wait(5), destination(False, 401)):
        step(state, clock)

    body = state.readiness()[1]
    assert body["joined_group"] is True
    assert body["seconds_since_broker_answer"] == 5.0
    assert body["destination_up"] is False


def test_liveness_ignores_readiness(state: HealthState) -> None:
    state.set_destination_up(False, status=401)

    assert state.liveness()[0] is True


@pytest.mark.parametrize(("up", "gauge"), [(False, 0.0), (True, 1.0)])
def test_destination_up_sets_the_gauge(state: HealthState, up: bool, gauge: float) -> None:
    metrics.DESTINATION_UP.set(1 - gauge)

    state.set_destination_up(up, status=None if up else 403)

    assert metrics.REGISTRY.get_sample_value("trengo_processor_destination_up") == gauge


@contextmanager
def every_series_present() -> Iterator[None]:
    """Create one child per labelled metric so the scrape shows every series, then remove it."""
    labelled = []
    for metric in vars(metrics).values():
        # Label names are only reachable privately; the test owns this coupling.
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            values = [SAMPLE_LABEL_VALUE] * len(metric._labelnames)
            metric.labels(*values)
            labelled.append((metric, values))
    try:
        yield
    finally:
        for metric, values in labelled:
            metric.remove(*values)


async def fetch(server: HealthServer, path: str, **headers: str) -> tuple[int, str, str]:
    """(status, content type header, body) of a GET over loopback."""
    url = f"http://127.0.0.1:{server.port}{path}"
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


def serve(state: HealthState, scenario: Callable[[HealthServer], Awaitable[None]]) -> None:
    """Run ``scenario`` against a started server on an ephemeral loopback port."""

    async def main() -> None:
        server = HealthServer(state, host="127.0.0.1", port=0)
        await server.start()
        try:
            await scenario(server)
        finally:
            await server.stop()

    asyncio.run(main())


def test_probe_endpoints_follow_the_state(state: HealthState, clock: FakeClock) -> None:
    async def scenario(server: HealthServer) -> None:
        assert server.port > 0
        status, content_type, body = await fetch(server, "/readyz")
        assert (status, content_type) == (503, "application/json; charset=utf-8")
        assert json.loads(body)["reasons"] == [
            "consumer has not joined its group",
            "broker has not answered yet",
        ]

        state.set_assigned(True)
        state.broker_answered()
        status, _, body = await fetch(server, "/readyz")
        assert (status, json.loads(body)["status"]) == (200, "ready")

        status, _, body = await fetch(server, "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "alive")
        clock.advance(LIVENESS_SECONDS + 1)
        status, _, body = await fetch(server, "/healthz")
        assert (status, json.loads(body)["status"]) == (503, "stalled")

    serve(state, scenario)


def test_metrics_scrape_passes_promtool(state: HealthState) -> None:
    state.set_destination_up(False, status=401)
    scrape: dict[str, str] = {}

    async def scenario(server: HealthServer) -> None:
        status, content_type, scrape["text"] = await fetch(server, "/metrics")
        assert status == 200
        assert content_type.startswith("text/plain; version=0.0.4")

    with every_series_present():
        serve(state, scenario)

    assert "trengo_processor_destination_up 0.0" in scrape["text"]
    assert exposed_series_names() <= set(SERIES_NAME.findall(scrape["text"]))
    checked = run_promtool("check", "metrics", stdin=scrape["text"])
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_metrics_speaks_openmetrics_when_asked(state: HealthState) -> None:
    async def scenario(server: HealthServer) -> None:
        accept = "application/openmetrics-text; version=1.0.0"
        status, content_type, body = await fetch(server, "/metrics", Accept=accept)
        assert status == 200
        assert content_type.startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n")

    serve(state, scenario)


def test_stop_closes_the_port(state: HealthState) -> None:
    async def main() -> None:
        server = HealthServer(state, host="127.0.0.1", port=0)
        await server.start()
        port = server.port
        await server.stop()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(main())


HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Slow: "
MALFORMED_REQUESTS = {
    "bad header line": b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "bad version": b"GET /healthz HTTP/9.Z\r\nHost: x\r\n\r\n",
    "tls hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "huge header": b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
}


def serve_bounded(
    state: HealthState,
    scenario: Callable[[HealthServer], Awaitable[None]],
    *,
    idle_seconds: float = 0.3,
    max_connections: int = 8,
) -> None:
    async def main() -> None:
        server = HealthServer(
            state,
            host="127.0.0.1",
            port=0,
            idle_seconds=idle_seconds,
            max_connections=max_connections,
        )
        await server.start()
        try:
            await scenario(server)
        finally:
            await server.stop()

    asyncio.run(main())


async def open_half_sent(server: HealthServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(HALF_REQUEST)
    await writer.drain()
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server closed the connection (EOF or reset) within a few seconds."""
    try:
        return await asyncio.wait_for(reader.read(), timeout=5) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("request_bytes", MALFORMED_REQUESTS.values(), ids=MALFORMED_REQUESTS)
def test_malformed_requests_are_logged_at_debug_only(
    state: HealthState, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    async def scenario(server: HealthServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_bytes)
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(), timeout=5)
        except ConnectionResetError:
            answer = b""  # refused before it was all read
        writer.close()
        assert re.match(rb"HTTP/1\.[01] 400 ", answer) or answer == b""
        status, _, _ = await fetch(server, "/healthz")
        assert status == 200

    with caplog.at_level(logging.DEBUG):
        serve_bounded(state, scenario)

    loud = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert loud == []
    assert [r.levelno for r in caplog.records if r.name == "aiohttp.server"] == [logging.DEBUG]


@pytest.mark.parametrize("sent", [b"", HALF_REQUEST], ids=["idle", "half-sent"])
def test_a_silent_or_half_sent_connection_is_closed(state: HealthState, sent: bytes) -> None:
    async def scenario(server: HealthServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        await writer.drain()
        assert await closed_by_server(reader)
        writer.close()

    serve_bounded(state, scenario)


def test_a_flood_of_half_sent_connections_cannot_keep_a_probe_out(state: HealthState) -> None:
    async def scenario(server: HealthServer) -> None:
        flood = [await open_half_sent(server) for _ in range(200)]
        status, _, _ = await fetch(server, "/healthz")
        assert status == 200
        closed = await asyncio.gather(*(closed_by_server(reader) for reader, _ in flood))
        for _, writer in flood:
            writer.close()
        # All were closed: most at once to make room, the rest after the idle timeout.
        assert all(closed)

    serve_bounded(state, scenario, idle_seconds=3.0, max_connections=8)


def test_only_get_and_head_on_known_paths(state: HealthState) -> None:
    async def scenario(server: HealthServer) -> None:
        url = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
            async with session.post(f"{url}/healthz", data=b"x") as response:
                assert response.status == 405
            async with session.get(f"{url}/secret") as response:
                assert response.status == 404
            async with session.head(f"{url}/readyz") as response:
                assert response.status == 503

    serve_bounded(state, scenario)
