"""Trengo failures, sorted into the classes the engine acts on (``engine/outcomes.py``,
docs/errors.md).

* ``TransientError``: 408, 429, 5xx, timeouts, connection errors. Retry later, honouring
  ``retry_after`` when Trengo gave one.
* ``PermanentError``: any other 4xx, and contacts that cannot be resolved (none, or several).
  Dead-letter at once.
* ``DestinationDown``: 401. The token does not work: halt, dead-letter nothing.
* ``Forbidden`` (a ``DestinationDown``): 403. Either the token is refused (halt) or only this
  action is forbidden (a private channel, a role without the permission: dead-letter the
  event); the engine asks a probe with the same token which.

``classify`` is the one function that maps an HTTP answer to a class. Reasons are short human
text ("create_ticket: HTTP 422 Unprocessable Entity: The contact id field is required.") and
never contain the API token.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from http import HTTPStatus

import httpx

from processor.engine.outcomes import (
    CallWithdrawn,
    DeliveryError,
    DestinationDown,
    Forbidden,
    PermanentError,
    TransientError,
)

_MAX_MESSAGE_CHARS = 300
# X-RateLimit-Reset values below this are durations in seconds, not Unix timestamps.
_SMALLEST_TIMESTAMP = 1_000_000_000
# A wait asked for beyond this is a broken header, not a plan: ignored (backoff decides).
_LONGEST_BELIEVABLE_WAIT = 86_400.0


# Trengo's failures are the engine's classes: the engine acts on them without knowing Trengo.
TrengoError = DeliveryError  # any failure of a Trengo call or of resolving a contact

__all__ = [
    "CallWithdrawn",
    "DestinationDown",
    "Forbidden",
    "PermanentError",
    "TransientError",
    "TrengoError",
    "classify",
    "retry_after_seconds",
    "transport_failure",
]


def classify(
    status: int,
    body_text: str,
    headers: Mapping[str, str],
    operation: str,
    *,
    redact: str = "",
    wall_clock: Callable[[], float] = time.time,
) -> TrengoError | None:
    """The error an HTTP answer stands for, or None for a 2xx.

    ``redact`` is removed from the reason (pass the API token); ``wall_clock`` is the Unix
    time used to turn ``X-RateLimit-Reset`` into a delay.
    """
    if 200 <= status < 300:
        return None
    reason = _reason(status, body_text, operation, redact)
    if status == 401:
        return DestinationDown(reason, status)
    if status == 403:
        return Forbidden(reason, status)
    if status in (408, 429) or status >= 500:
        return TransientError(reason, status, retry_after_seconds(headers, wall_clock()))
    return PermanentError(reason, status)


def transport_failure(operation: str, error: Exception, *, redact: str = "") -> TransientError:
    """A call that got no HTTP answer (timeout, refused or reset connection)."""
    kind = "timeout" if isinstance(error, httpx.TimeoutException | TimeoutError) else "connection"
    detail = _scrub(str(error), redact)
    reason = f"{operation}: {kind} ({type(error).__name__}{': ' + detail if detail else ''})"
    return TransientError(reason)


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from ``Retry-After``, else from ``X-RateLimit-Reset``.

    ``now`` is Unix time. Each header may hold seconds, a Unix timestamp (a number too large
    to be seconds) or an HTTP date. A value that is not finite, negative seconds, or a wait
    longer than a day is ignored as broken; a moment already past means no wait. None when
    neither header is usable. Callers cap the wait (``delivery.retry_cap_seconds``).
    """
    lookup = _case_insensitive(headers)
    for name in ("retry-after", "x-ratelimit-reset"):
        delay = _wait_from(lookup.get(name), now)
        if delay is not None:
            return delay
    return None


def _wait_from(text: str | None, now: float) -> float | None:
    if text is None:
        return None
    number = _number(text)
    if number is None:
        moment = _http_date(text)
        if moment is None:
            return None
        delay = max(moment - now, 0.0)
    elif number >= _SMALLEST_TIMESTAMP:
        delay = max(number - now, 0.0)
    elif number >= 0:
        delay = number
    else:
        return None
    return delay if delay <= _LONGEST_BELIEVABLE_WAIT else None


def _case_insensitive(headers: Mapping[str, str]) -> Mapping[str, str]:
    return headers if isinstance(headers, httpx.Headers) else httpx.Headers(dict(headers))


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _http_date(text: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _reason(status: int, body_text: str, operation: str, redact: str) -> str:
    reason = f"{operation}: HTTP {status}"
    phrase = _phrase(status)
    if phrase:
        reason += f" {phrase}"
    # Redact before cutting: a cut through the token would leave a prefix no scrub finds.
    message = _scrub(_message(body_text), redact)[:_MAX_MESSAGE_CHARS]
    return f"{reason}: {message}" if message else reason


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _message(body_text: str) -> str:
    """Trengo's own error text, read defensively from ``message``, ``errors`` or ``error``."""
    try:
        body = json.loads(body_text)
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [_flatten(body.get(key)) for key in ("message", "errors", "error")]
    return "; ".join(dict.fromkeys(part for part in parts if part))


def _flatten(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "; ".join(filter(None, (_flatten(item) for item in value)))
    if isinstance(value, dict):
        return "; ".join(
            f"{key}: {text}" for key, item in value.items() if (text := _flatten(item))
        )
    return ""


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text
