"""The Trengo REST client: rate-limited, measured, and raising one error class per failure.

Every call waits for the token's ``RateLimiter``, goes out on an httpx transport (in
production the aiohttp transport of ``httpx-aiohttp``: httpx's own pool collapses at a few
hundred calls in flight, see docs/architecture.md), feeds the response's rate-limit headers
back to the limiter, is counted in ``trengo_requests_total{operation,status}`` and timed in
``trengo_request_duration_seconds{operation}``. A failure is raised as the ``TrengoError``
subclass ``errors.classify`` picks; timeouts and connection errors are ``TransientError``.

It knows no endpoint: callers build a request with ``endpoints`` and read the answer
(``id_of``, ``created``). The client sends it (``send``), or pages a listing (``page``,
``every_page``, which follows ``links.next``).

Requests are built whole (shared headers, parsed URLs reused; headers and body assembled as
``httpx.Request(json=...)`` would make them, without its per-header checks) and handed straight
to the transport's ``handle_async_request``; the answer is read whole and its connection
released. That is all ``httpx.AsyncClient.send`` would do for this client, which follows no
redirects, keeps no cookies and has no auth flow or hooks: its bookkeeping around the call is
CPU spent for nothing (with both changes a call cost 313 instead of 447 µs, ``make bench``
throughput, bench/RESULTS.md). httpx's ``Request`` and ``Response`` stay the types; unit tests
pass an ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeAlias

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from prometheus_client import Counter, Histogram

from processor.engine.outcomes import SEND_ALLOWED
from processor.metrics import TRENGO_REQUEST_DURATION, TRENGO_REQUESTS
from processor.trengo import endpoints
from processor.trengo.endpoints import TrengoId, TrengoRequest
from processor.trengo.errors import CallWithdrawn, PermanentError, classify, transport_failure
from processor.trengo.ratelimit import Clock, RateLimiter, Sleep

JsonValue: TypeAlias = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None
JsonObject: TypeAlias = dict[str, JsonValue]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NO_ANSWER_ERRORS = (httpx.TransportError, aiohttp.ClientError, TimeoutError)
USER_AGENT = "trengo-processor"
# A bound on pagination (25 a page), so a server whose links.next never ends cannot loop us.
MAX_PAGES = 40


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list answer: its objects, and whether ``links.next`` names another."""

    items: list[JsonObject]
    has_next: bool


class TrengoClient:
    """Async client for the few Trengo calls the processor makes; one per API token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_seconds: float,
        requests_per_minute: int,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 256,
        max_wait_seconds: float = 300.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Clock = time.time,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._clock = clock
        self._wall_clock = wall_clock
        self.rate_limiter = RateLimiter(
            requests_per_minute,
            max_pause_seconds=max_wait_seconds,
            clock=clock,
            sleep=sleep,
            wall_clock=wall_clock,
        )
        self._transport = transport or _aiohttp_transport(max_connections)
        self._headers = _headers(token)
        self._extensions = {"timeout": httpx.Timeout(timeout_seconds).as_dict()}

    def __repr__(self) -> str:
        return f"TrengoClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """The API root every request path is appended to."""
        return self._base_url

    @property
    def token(self) -> str:
        """The API token calls are sent with."""
        return self._token

    def use_token(self, token: str) -> None:
        """Send the next calls with ``token`` (a rotated Secret)."""
        self._token = token
        self._headers = _headers(token)

    async def send(self, request: TrengoRequest) -> JsonValue:
        """Send one request after the rate limiter allows it; the decoded JSON body (or None).

        Raises ``TransientError``, ``PermanentError`` or ``DestinationDown``.
        """
        # Built before the limiter charges: a request that cannot be built is never sent.
        http_request = self._build(request)
        await self.rate_limiter.acquire()
        # Right before the call: a call of an event whose partition was revoked is never sent.
        if not SEND_ALLOWED.get()():
            raise CallWithdrawn(f"{request.operation}: not sent, the event is no longer ours")
        sent_at = self._clock()
        try:
            response = await self._exchange(http_request)
        except _NO_ANSWER_ERRORS as error:
            self._measure(request.operation, "error", sent_at)
            raise transport_failure(request.operation, error, redact=self._token) from None
        self._measure(request.operation, str(response.status_code), sent_at)
        self.rate_limiter.observe(response.headers, response.status_code, sent_at=sent_at)
        if response.is_success:
            return _json_body(response)
        failure = classify(
            response.status_code,
            response.text,
            response.headers,
            request.operation,
            redact=self._token,
            wall_clock=self._wall_clock,
        )
        assert failure is not None  # classify returns None only for a 2xx
        raise failure

    async def page(self, request: TrengoRequest) -> Page:
        """Send a list request; its ``data`` objects and whether a next page exists."""
        body = await self.send(request)
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(items, list):
            raise PermanentError(f"{request.operation}: unexpected response (no 'data' list)")
        links = body.get("links")
        next_url = links.get("next") if isinstance(links, dict) else None
        has_next = isinstance(next_url, str) and next_url != ""
        return Page([item for item in items if isinstance(item, dict)], has_next)

    async def every_page(self, request_for: Callable[[int], TrengoRequest]) -> list[JsonObject]:
        """The objects of every page of a listing, ``request_for(page)`` from page 1 until
        there is no next; PermanentError after ``MAX_PAGES`` pages."""
        objects: list[JsonObject] = []
        for number in range(1, MAX_PAGES + 1):
            page = await self.page(request_for(number))
            objects.extend(page.items)
            if not page.has_next or not page.items:
                return objects
        operation = request_for(1).operation
        raise PermanentError(f"{operation}: more than {MAX_PAGES} pages of results")

    async def aclose(self) -> None:
        """Close the connections."""
        await self._transport.aclose()

    async def __aenter__(self) -> TrengoClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _build(self, request: TrengoRequest) -> httpx.Request:
        """The whole HTTP request, body encoded: the headers and body ``httpx.Request(json=...)``
        would make, assembled directly (httpx would re-check every header of every request)."""
        url = _parsed_url(endpoints.url(self._base_url, request))
        host = (b"Host", url.netloc)
        if request.json is None:  # no body: httpx adds an empty one's length right after Host
            body = b""
            first = [host, (b"Content-Length", b"0")] if request.method in _BODY_METHODS else [host]
            headers = httpx.Headers([*first, *self._headers.raw])
        else:
            body = _json_bytes(request.json)
            length = (b"Content-Length", str(len(body)).encode())
            headers = httpx.Headers([host, *self._headers.raw, length])
        built = httpx.Request(
            request.method,
            url,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions=self._extensions,
        )
        built.read()
        return built

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        """The transport's answer, its body read and its connection released."""
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    def _measure(self, operation: str, status: str, sent_at: float) -> None:
        _requests_counter(operation, status).inc()
        _duration_histogram(operation).observe(max(0.0, self._clock() - sent_at))


# Most calls go to a few URLs (``/tickets``, a known contact): parsing one costs as much as
# building the rest of the request. httpx.URL is immutable, so parsed ones can be shared.
@functools.lru_cache(maxsize=4096)
def _parsed_url(text: str) -> httpx.URL:
    return httpx.URL(text)


# Labelled metric children, looked up once: ``labels()`` costs more than the update itself.
@functools.cache
def _requests_counter(operation: str, status: str) -> Counter:
    return TRENGO_REQUESTS.labels(operation=operation, status=status)


@functools.cache
def _duration_histogram(operation: str) -> Histogram:
    return TRENGO_REQUEST_DURATION.labels(operation=operation)


def id_of(answer: JsonValue) -> TrengoId | None:
    """The ``id`` of a contact, ticket, profile or label, if the answer has a usable one."""
    value = answer.get("id") if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return value


def created(answer: JsonValue, operation: str) -> tuple[TrengoId, JsonObject]:
    """The id and the object a create call answered with; PermanentError when it has no id."""
    created_id = id_of(answer)
    if created_id is None or not isinstance(answer, dict):
        raise PermanentError(f"{operation}: unexpected response (no id)")
    return created_id, answer


def _json_bytes(body: object) -> bytes:
    """A JSON body exactly as httpx encodes one: compact, UTF-8, no NaN or infinity."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _headers(token: str) -> httpx.Headers:
    return httpx.Headers(
        {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
    )


def _aiohttp_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    limits = httpx.Limits(max_connections=max_connections)
    transport: httpx.AsyncBaseTransport = AiohttpTransport(limits=limits)
    return transport


def _json_body(response: httpx.Response) -> JsonValue:
    if not response.content:
        return None
    try:
        body: JsonValue = response.json()
    except ValueError:
        return None
    return body
