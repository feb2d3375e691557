"""Error classes: one table from HTTP status to class, reasons, Retry-After and reset parsing."""

from __future__ import annotations

import httpx
import pytest

from processor.trengo.errors import (
    DestinationDown,
    Forbidden,
    PermanentError,
    TransientError,
    TrengoError,
    classify,
    retry_after_seconds,
    transport_failure,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (201, None),
        (204, None),
        (301, PermanentError),
        (400, PermanentError),
        (401, DestinationDown),
        (403, Forbidden),
        (404, PermanentError),
        (405, PermanentError),
        (408, TransientError),
        (409, PermanentError),
        (422, PermanentError),
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (504, TransientError),
        (599, TransientError),
    ],
)
def test_status_to_class(status: int, expected: type[TrengoError] | None) -> None:
    error = classify(status, "", {}, "create_ticket")
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error is not None and error.status == status


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"message": "Too Many Attempts."}', "HTTP 429 Too Many Requests: Too Many Attempts."),
        (
            '{"message": "The name is invalid.", "errors": {"name": ["The name is invalid."],'
            ' "identifier": ["Required."]}}',
            "HTTP 422 Unprocessable Entity: The name is invalid.; name: The name is invalid.;"
            " identifier: Required.",
        ),
        (
            '{"error": "Request failed", "message": ["a", "b"]}',
            "HTTP 400 Bad Request: a; b; Request failed",
        ),
        ("<html>Not found</html>", "HTTP 404 Not Found"),
        ('["odd"]', "HTTP 500 Internal Server Error"),
        ("", "HTTP 503 Service Unavailable"),
        ('{"message": 5}', "HTTP 409 Conflict"),
    ],
)
def test_reason_carries_trengo_message(body: str, reason: str) -> None:
    status = int(reason.split()[1])
    error = classify(status, body, {}, "update_contact")
    assert error is not None
    assert error.reason == f"update_contact: {reason}"


def test_unknown_status_has_no_phrase() -> None:
    error = classify(499, "", {}, "search_contacts")
    assert error is not None and error.reason == "search_contacts: HTTP 499"


def test_long_messages_are_cut() -> None:
    error = classify(422, '{"message": "' + "x" * 5000 + '"}', {}, "create_contact")
    assert error is not None and len(error.reason) < 400


def test_token_is_redacted_from_reason_and_repr() -> None:
    body = '{"message": "Bearer s3cret is not valid"}'
    error = classify(401, body, {}, "search_contacts", redact="s3cret")
    assert error is not None
    assert "s3cret" not in error.reason
    assert "s3cret" not in repr(error) and "s3cret" not in str(error)
    assert "[redacted]" in error.reason


def test_retry_after_seconds_wins_over_reset() -> None:
    headers = {"Retry-After": "7", "X-RateLimit-Reset": str(int(NOW) + 30)}
    error = classify(429, "", headers, "create_ticket", wall_clock=lambda: NOW)
    assert isinstance(error, TransientError)
    assert error.retry_after == 7


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": "-3", "X-RateLimit-Reset": "4"}, 4.0),  # negative: ignored
        ({"X-RateLimit-Reset": str(int(NOW) + 42)}, 42.0),
        ({"x-ratelimit-reset": str(int(NOW) - 5)}, 0.0),
        ({"X-RateLimit-Reset": "17"}, 17.0),  # too small for a timestamp: seconds
        ({"Retry-After": "Tue, 14 Nov 2023 22:30:00 GMT"}, 1000.0),  # NOW + 1000 s
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT", "X-RateLimit-Reset": "9"}, 0.0),
        ({"Retry-After": "Wed, 99 Oct 2015 07:28:00 GMT", "X-RateLimit-Reset": "9"}, 9.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf", "X-RateLimit-Reset": "1e400"}, None),
        ({"Retry-After": "1e12"}, None),  # years: a broken header, not a plan
        ({"X-RateLimit-Reset": str(int(NOW) + 90_000)}, None),  # more than a day ahead
        ({"Retry-After": "86400"}, 86400.0),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, NOW) == seconds
    assert retry_after_seconds(httpx.Headers(headers), NOW) == seconds


def test_5xx_without_headers_has_no_retry_after() -> None:
    error = classify(503, "", {}, "create_ticket")
    assert isinstance(error, TransientError) and error.retry_after is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ReadTimeout("timed out"), "create_ticket: timeout (ReadTimeout: timed out)"),
        (TimeoutError(), "create_ticket: timeout (TimeoutError)"),
        (httpx.ConnectError("refused"), "create_ticket: connection (ConnectError: refused)"),
    ],
)
def test_transport_failures_are_transient(error: Exception, reason: str) -> None:
    failure = transport_failure("create_ticket", error)
    assert isinstance(failure, TransientError)
    assert failure.reason == reason
    assert failure.status is None and failure.retry_after is None


@pytest.mark.parametrize("offset", [0, 250, 290, 299, 305])
def test_a_token_echoed_near_the_cut_leaves_no_prefix(offset: int) -> None:
    token = "tok-" + "k" * 40 + "-end"
    body = '{"message": "' + "x" * offset + token + '"}'
    error = classify(422, body, {}, "create_contact", redact=token)
    assert error is not None
    assert "tok-kkkk" not in error.reason
    assert len(error.reason) < 400
