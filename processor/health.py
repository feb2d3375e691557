"""Liveness, readiness and the Prometheus scrape, served over HTTP on ``server.port``.

``HealthState`` is the one place the engine reports what a probe needs to know; it is
thread-safe because the poll loop may run in a thread other than the server's event loop.
``HealthServer`` serves it inside the engine's asyncio loop:

* ``/healthz``: 200 while the poll loop has ticked within ``liveness_seconds`` and no partition
  is stalled (pending events, none attempted or finished for ``server.stall_seconds``). Only a
  stuck loop or partition fails it: Kubernetes restarts the pod, which is what fixes one.
* ``/readyz``: 200 only when the consumer has joined its group, the broker answered within
  ``broker_timeout_seconds`` and the destination is not halted. A halted destination fails
  readiness (not liveness): a restart would not fix a revoked token.
* ``/metrics``: the processor's registry in the format the scraper asks for.

Both probes answer with a small JSON body that says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from processor import metrics

Clock = Callable[[], float]
ProbeResult = tuple[bool, dict[str, object]]


class HealthState:
    """What the probes report, updated by the engine from any thread."""

    def __init__(
        self,
        *,
        liveness_seconds: float,
        broker_timeout_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._liveness_seconds = liveness_seconds
        self._broker_timeout_seconds = broker_timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # Starting counts as a tick: the pod gets one liveness window to reach its first poll.
        self._last_poll_at = clock()
        self._last_broker_answer_at: float | None = None
        self._joined_group = False
        self._destination_up = True
        self._destination_status: int | None = None
        self._stalled: list[str] = []

    def poll_ticked(self) -> None:
        """Record that the poll loop completed one iteration."""
        with self._lock:
            self._last_poll_at = self._clock()

    def set_assigned(self, joined: bool) -> None:
        """Record whether the consumer is in its group (True from the first assignment on)."""
        with self._lock:
            self._joined_group = joined

    def broker_answered(self) -> None:
        """Record that a poll or metadata call to the broker succeeded."""
        with self._lock:
            self._last_broker_answer_at = self._clock()

    def set_destination_up(self, up: bool, *, status: int | None = None) -> None:
        """Record whether Trengo accepts the token; ``status`` is the 401/403 that halted it."""
        with self._lock:
            self._destination_up = up
            self._destination_status = None if up else status
        metrics.DESTINATION_UP.set(1 if up else 0)

    def set_stalled(self, reasons: list[str]) -> None:
        """Record the partitions that hold work and make no progress (one reason each)."""
        with self._lock:
            self._stalled = list(reasons)

    def liveness(self) -> ProbeResult:
        """(alive, body): the poll loop ticked within ``liveness_seconds``, no partition stalled."""
        with self._lock:
            since_poll = self._clock() - self._last_poll_at
            stalled = list(self._stalled)
        reasons = stalled
        if since_poll > self._liveness_seconds:
            reasons = [f"poll loop silent for {since_poll:.1f}s", *stalled]
        alive = not reasons
        return alive, {
            "status": "alive" if alive else "stalled",
            "reasons": reasons,
            "seconds_since_poll": round(since_poll, 3),
        }

    def readiness(self) -> ProbeResult:
        """(ready, body): ready when joined, the broker answered recently and Trengo is up."""
        with self._lock:
            answered_at = self._last_broker_answer_at
            since_answer = None if answered_at is None else self._clock() - answered_at
            reasons = self._unready_reasons(since_answer)
            ready = not reasons
            return ready, {
                "status": "ready" if ready else "not ready",
                "reasons": reasons,
                "joined_group": self._joined_group,
                "seconds_since_broker_answer": since_answer and round(since_answer, 3),
                "destination_up": self._destination_up,
            }

    def _unready_reasons(self, since_answer: float | None) -> list[str]:
        reasons = []
        if not self._joined_group:
            reasons.append("consumer has not joined its group")
        if since_answer is None:
            reasons.append("broker has not answered yet")
        elif since_answer > self._broker_timeout_seconds:
            reasons.append(f"broker silent for {since_answer:.1f}s")
        if not self._destination_up:
            status = self._destination_status
            reasons.append("destination halted" + (f" ({status})" if status is not None else ""))
        return reasons


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on (host, port), inside the running loop."""

    def __init__(
        self,
        state: HealthState,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry = metrics.REGISTRY,
    ) -> None:
        self._state = state
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port listened on: the real one once started, even when 0 was asked for."""
        if self._runner is None or not self._runner.addresses:
            return self._requested_port
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Bind and start serving; returns once the socket listens."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._probe_handler(self._state.liveness))
        app.router.add_get("/readyz", self._probe_handler(self._state.readiness))
        # Probes and scrapes every few seconds would drown the useful log lines.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self._registry), headers={"Content-Type": content_type})

    @staticmethod
    def _probe_handler(
        probe: Callable[[], ProbeResult],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(_request: web.Request) -> web.Response:
            ok, body = probe()
            return web.json_response(body, status=200 if ok else 503)

        return handle
