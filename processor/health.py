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

The port is reachable from the pod network, so the server must not be starved by clients that
connect and say nothing, or send half a request: every connection that has no complete request
to answer is closed after ``IDLE_SECONDS`` (aiohttp's keep-alive timer runs from the moment a
connection opens, so it bounds the header read as well as the keep-alive wait), and at most
``MAX_CONNECTIONS`` are open at once: a new one closes the oldest, so a probe always gets in and
the process keeps file descriptors for Kafka and Trengo (a small listen backlog bounds how many
a burst holds before the cap applies). Malformed requests are the client's
mistake: logged at DEBUG, never an ERROR traceback.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from processor import metrics

Clock = Callable[[], float]
ProbeResult = tuple[bool, dict[str, object]]
Route = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

# Probes and scrapes send their request at once; anything slower is a broken or hostile client.
IDLE_SECONDS = 5.0
# Kubelet probes and a few scrapers need a handful; the cap keeps the fd budget for Kafka/Trengo.
MAX_CONNECTIONS = 64
# Connections accepted per loop turn, before any is counted against the cap (asyncio accepts up
# to the listen backlog at once): small, so a burst cannot hold many descriptors even briefly.
ACCEPT_BACKLOG = 32
# Probes and scrapes are GETs; a request body is never read, so a large one is refused early.
_READ_METHODS = frozenset({"GET", "HEAD"})


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


class _ClientMistakesAtDebug(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with requests it could not parse logged at DEBUG, untraced."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(error, HttpProcessingError):
            self.debug(f"{msg}: %s", *args, error)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


class _BoundedServer(web.Server):
    """aiohttp's low-level server with at most ``max_connections`` open: the oldest goes first."""

    def __init__(self, handler: Route, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._max_connections = max_connections

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        open_connections = self.connections
        for oldest in open_connections[: max(len(open_connections) - self._max_connections, 0)]:
            oldest.force_close()


class HealthServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on (host, port), inside the running loop."""

    def __init__(
        self,
        state: HealthState,
        *,
        host: str,
        port: int,
        registry: CollectorRegistry = metrics.REGISTRY,
        idle_seconds: float = IDLE_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._state = state
        self._host = host
        self._requested_port = port
        self._registry = registry
        self._idle_seconds = idle_seconds
        self._max_connections = max_connections
        self._runner: web.ServerRunner | None = None
        self._routes: dict[str, Route] = {
            "/metrics": self._metrics,
            "/healthz": self._probe_handler(state.liveness),
            "/readyz": self._probe_handler(state.readiness),
        }

    @property
    def port(self) -> int:
        """The port listened on: the real one once started, even when 0 was asked for."""
        if self._runner is None or not self._runner.addresses:
            return self._requested_port
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Bind and start serving; returns once the socket listens."""
        server = _BoundedServer(
            self._dispatch,
            max_connections=self._max_connections,
            keepalive_timeout=self._idle_seconds,
            # Probes and scrapes every few seconds would drown the useful log lines.
            access_log=None,
            logger=cast(
                logging.Logger, _ClientMistakesAtDebug(logging.getLogger("aiohttp.server"))
            ),
        )
        runner = web.ServerRunner(server)
        await runner.setup()
        try:
            await web.TCPSite(
                runner, self._host, self._requested_port, backlog=ACCEPT_BACKLOG
            ).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self._routes.get(request.path)
        if route is None:
            return web.Response(status=404, text="404: Not Found")
        if request.method not in _READ_METHODS:
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        return await route(request)

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self._registry), headers={"Content-Type": content_type})

    @staticmethod
    def _probe_handler(
        probe: Callable[[], ProbeResult],
    ) -> Route:
        async def handle(_request: web.BaseRequest) -> web.StreamResponse:
            ok, body = probe()
            return web.json_response(body, status=200 if ok else 503)

        return handle
