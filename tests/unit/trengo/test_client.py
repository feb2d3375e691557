"""The Trengo client on httpx.MockTransport: headers, URLs, error classes, metrics, limiter,
paging; and reading what a create call answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from processor.metrics import RATE_LIMIT_REMAINING, TRENGO_REQUESTS
from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    PostMessage,
    SetCustomField,
    UpdateContact,
)
from processor.trengo.client import MAX_PAGES, JsonObject, Page, TrengoClient, created, id_of
from processor.trengo.endpoints import (
    TrengoRequest,
    attach_contact_to_profile,
    attach_label,
    create_contact,
    create_profile,
    create_ticket,
    list_labels,
    post_message,
    rename_profile,
    search_contacts,
    search_profiles,
    set_contact_custom_field,
    set_profile_custom_field,
    update_contact,
)
from processor.trengo.errors import DestinationDown, PermanentError, TransientError, TrengoError
from tests.unit.trengo.fake_trengo import TOKEN, make_client
from tests.unit.trengo.simulated_time import run_simulated

Handler = Callable[[httpx.Request], httpx.Response]


def requests_counted(operation: str, status: str) -> float:
    return float(TRENGO_REQUESTS.labels(operation=operation, status=status)._value.get())


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handler


async def send_search(handler: Any, term: str = "jane@example.com") -> Any:
    async with make_client(handler) as client:
        return await client.send(search_contacts(term))


def test_sends_auth_and_json_headers_and_an_encoded_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": []})

    assert run_simulated(send_search(handler, "jane+news@example.com")) == {"data": []}
    request = seen[0]
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "trengo-processor"
    assert request.extensions["timeout"] == {"connect": 5, "read": 5, "write": 5, "pool": 5}
    assert str(request.url) == (
        "https://trengo.test/api/v2/contacts?page=1&term=jane%2Bnews@example.com"
    )
    assert request.url.params["term"] == "jane+news@example.com"


def test_keeps_no_cookies_between_calls() -> None:
    cookies_sent: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cookies_sent.append(request.headers.get("Cookie"))
        return httpx.Response(200, json={"data": []}, headers={"Set-Cookie": "session=abc; Path=/"})

    async def two_searches() -> None:
        async with make_client(handler) as client:
            await client.send(search_contacts("a@example.com"))
            await client.send(search_contacts("b@example.com"))

    run_simulated(two_searches())
    assert cookies_sent == [None, None]


def test_write_calls_send_their_json_bodies() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(201, json={"id": 90002431001, "name": "Jane"})

    async def main() -> tuple[Any, ...]:
        async with make_client(handler) as client:
            contact = await client.send(create_contact(CreateContact("7", "jane@x.com", "Jane")))
            await client.send(update_contact(90002431001, UpdateContact("Jane D")))
            ticket = await client.send(create_ticket(90002431001, CreateTicket("7", "")))
            return contact, ticket

    contact, ticket = run_simulated(main())
    assert contact == {"id": 90002431001, "name": "Jane"}
    assert ticket == {"id": 90002431001, "name": "Jane"}
    assert seen == [
        (
            "POST",
            "/api/v2/channels/7/contacts",
            {"name": "Jane", "identifier": "jane@x.com", "channel_id": "7"},
        ),
        ("PUT", "/api/v2/contacts/90002431001", {"name": "Jane D"}),
        ("POST", "/api/v2/tickets", {"contact_id": 90002431001, "channel_id": "7", "subject": ""}),
    ]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, PermanentError),
        (401, DestinationDown),
        (403, DestinationDown),
        (404, PermanentError),
        (408, TransientError),
        (422, PermanentError),
        (429, TransientError),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
    ],
)
def test_error_statuses_raise_their_class_and_are_counted(
    status: int, error_class: type[TrengoError]
) -> None:
    before = requests_counted("search_contacts", str(status))
    with pytest.raises(error_class) as raised:
        run_simulated(send_search(answer(status, {"message": "nope"})))
    assert raised.value.status == status
    assert raised.value.reason.startswith(f"search_contacts: HTTP {status}")
    assert raised.value.reason.endswith(": nope")
    assert requests_counted("search_contacts", str(status)) - before == 1


def test_a_429_carries_retry_after_and_pauses_the_limiter() -> None:
    handler = answer(429, {"message": "Too Many Attempts."}, {"Retry-After": "30"})

    async def main() -> tuple[float | None, float]:
        async with make_client(handler) as client:
            with pytest.raises(TransientError) as raised:
                await client.send(search_contacts("x"))
            return raised.value.retry_after, client.rate_limiter.paused_until

    retry_after, paused_until = run_simulated(main())
    assert retry_after == 30
    assert paused_until == pytest.approx(1030)  # the simulated loop starts at 1000


def test_a_429_with_only_a_reset_timestamp() -> None:
    reset = str(1_700_000_000 + 1000 + 25)  # the fake wall clock is loop time + 1.7e9
    with pytest.raises(TransientError) as raised:
        run_simulated(send_search(answer(429, None, {"X-RateLimit-Reset": reset})))
    assert raised.value.retry_after == pytest.approx(25)


def test_rate_limit_headers_feed_the_limiter_and_gauge() -> None:
    handler = answer(200, {"data": []}, {"x-ratelimit-limit": "120", "x-ratelimit-remaining": "87"})

    async def main() -> int | None:
        async with make_client(handler) as client:
            await client.send(search_contacts("x"))
            return client.rate_limiter.remaining

    assert run_simulated(main()) == 87
    assert RATE_LIMIT_REMAINING._value.get() == 87


@pytest.mark.parametrize(
    ("refusal_headers", "pause"),
    [
        ({"Retry-After": "7", "X-RateLimit-Reset": str(1_700_000_000 + 1000 + 40)}, 7),
        ({"X-RateLimit-Reset": str(1_700_000_000 + 1000 + 12)}, 12),  # a Unix timestamp
        ({"X-RateLimit-Reset": "9"}, 9),  # too small for a timestamp: seconds
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 60),  # unusable: a whole window
        ({}, 60),  # no rate-limit headers at all: a whole window
    ],
)
def test_after_a_429_the_next_call_waits_as_long_as_trengo_said(
    refusal_headers: dict[str, str], pause: float
) -> None:
    answers = [httpx.Response(429, json={"message": "Too Many Attempts."}, headers=refusal_headers)]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(200, json={"data": []})

    async def main() -> float:
        loop = asyncio.get_running_loop()
        async with make_client(handler) as client:
            with pytest.raises(TransientError):
                await client.send(search_contacts("x"))
            refused_at = loop.time()
            await client.send(search_contacts("x"))
            return loop.time() - refused_at

    assert run_simulated(main()) == pytest.approx(pause)


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectTimeout("connect timed out"), "timeout"),
        (httpx.ConnectError("connection refused"), "connection"),
        (httpx.RemoteProtocolError("server disconnected"), "connection"),
    ],
)
def test_no_answer_is_transient(raised: Exception, kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    before = requests_counted("search_contacts", "error")
    with pytest.raises(TransientError) as error:
        run_simulated(send_search(handler))
    assert error.value.status is None
    assert error.value.reason.startswith(f"search_contacts: {kind} (")
    assert requests_counted("search_contacts", "error") - before == 1


def test_the_token_never_shows_in_reasons_or_reprs() -> None:
    body = {"message": f"token {TOKEN} is not valid", "errors": {"auth": [f"Bearer {TOKEN}"]}}

    async def main() -> tuple[str, str]:
        client = make_client(answer(401, body))
        try:
            await client.send(search_contacts("x"))
        except DestinationDown as error:
            return repr(error) + str(error) + error.reason, repr(client)
        finally:
            await client.aclose()
        raise AssertionError("no error raised")

    texts, client_repr = run_simulated(main())
    assert TOKEN not in texts and TOKEN not in client_repr
    assert "[redacted]" in texts


def test_empty_and_non_json_bodies_decode_to_none() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            return httpx.Response(204)
        return httpx.Response(200, text="<html>ok</html>")

    async def main() -> tuple[Any, Any]:
        async with make_client(handler) as client:
            update = await client.send(update_contact(1, UpdateContact("x")))
            page = await client.send(search_contacts("x"))
            return update, page

    assert run_simulated(main()) == (None, None)


@pytest.mark.parametrize(
    "body",
    [{"links": {}}, {"data": "nope"}, ["a"], None],
)
def test_a_search_answer_without_a_data_list_is_permanent(body: Any) -> None:
    async def main() -> None:
        async with make_client(answer(200, body)) as client:
            await client.page(search_contacts("x"))

    with pytest.raises(PermanentError, match="no 'data' list"):
        run_simulated(main())


def test_a_search_page_holds_the_contact_objects() -> None:
    body = {"data": [{"id": 1, "email": "a@x.com"}, "junk", {"id": 2}]}

    async def main() -> Page:
        async with make_client(answer(200, body)) as client:
            return await client.page(search_contacts("x"))

    assert run_simulated(main()) == Page([{"id": 1, "email": "a@x.com"}, {"id": 2}], False)


@pytest.mark.parametrize("answer_id", [90002431001, "abc"])
def test_created_reads_the_id_and_the_object(answer_id: int | str) -> None:
    answer: JsonObject = {"id": answer_id, "name": "Acme"}
    assert created(answer, "create_profile") == (answer_id, answer)


@pytest.mark.parametrize("operation", ["create_contact", "create_profile"])
@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"id": None},
        {"id": ""},
        {"id": True},
        {"id": 1.5},
        [],
        [{"id": 1}],
        "1",
        None,
    ],
)
def test_a_created_answer_without_an_id_is_permanent_naming_the_operation(
    body: Any, operation: str
) -> None:
    with pytest.raises(PermanentError, match=f"^{operation}: unexpected response \\(no id\\)$"):
        created(body, operation)


@pytest.mark.parametrize("answer", [[{"id": 1}], "1", 1, None, True])
def test_id_of_a_value_that_is_not_an_object_is_none(answer: Any) -> None:
    assert id_of(answer) is None


def test_follow_up_calls_send_their_json_bodies() -> None:
    seen: list[tuple[str, str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"id": 9001, "name": "Acme"})

    async def main() -> Any:
        async with make_client(handler) as client:
            await client.send(set_contact_custom_field(5, SetCustomField(1001, "pro")))
            await client.send(post_message(77, PostMessage("Hello", internal_note=True)))
            await client.send(attach_label(77, 3001))
            profile = await client.send(create_profile("Acme"))
            await client.send(rename_profile(9001, "Acme Inc"))
            await client.send(set_profile_custom_field(9001, 2001, "acme-1"))
            await client.send(attach_contact_to_profile(9001, 5, "EMAIL"))
            return profile

    assert run_simulated(main()) == {"id": 9001, "name": "Acme"}
    assert seen == [
        ("POST", "/api/v2/contacts/5/custom_fields", {"custom_field_id": 1001, "value": "pro"}),
        ("POST", "/api/v2/tickets/77/messages", {"message": "Hello", "internal_note": True}),
        ("POST", "/api/v2/tickets/77/labels", {"label_id": 3001}),
        ("POST", "/api/v2/profiles", {"name": "Acme"}),
        ("PUT", "/api/v2/profiles/9001", {"name": "Acme Inc"}),
        (
            "POST",
            "/api/v2/profiles/9001/custom_fields",
            {"custom_field_id": 2001, "value": "acme-1"},
        ),
        ("POST", "/api/v2/profiles/9001/contacts", {"contact_id": 5, "type": "EMAIL"}),
    ]


@pytest.mark.parametrize(
    ("links", "has_next"),
    [
        ({"next": "https://app.trengo.com/api/v2/labels?page=2"}, True),
        ({"next": None}, False),
        ({"next": ""}, False),
        ({}, False),
        (None, False),
    ],
)
def test_a_list_page_says_whether_another_follows(links: Any, has_next: bool) -> None:
    body = {"data": [{"id": 3001, "name": "vip"}, "junk"], "links": links}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=body)

    async def main() -> tuple[Page, Page]:
        async with make_client(handler) as client:
            return await client.page(list_labels(2)), await client.page(search_profiles("acme", 3))

    labels, profiles = run_simulated(main())
    assert labels == profiles == Page([{"id": 3001, "name": "vip"}], has_next)
    assert seen == [
        "https://trengo.test/api/v2/labels?page=2",
        "https://trengo.test/api/v2/profiles?page=3&term=acme",
    ]


@pytest.mark.parametrize("listing", [list_labels(1), search_profiles("x", 1)])
def test_a_list_answer_without_a_data_list_is_permanent(listing: TrengoRequest) -> None:
    async def main() -> None:
        async with make_client(answer(200, {"links": {}})) as client:
            await client.page(listing)

    with pytest.raises(PermanentError, match=f"^{listing.operation}: unexpected response"):
        run_simulated(main())


def pages_until(last: int | None, asked: list[int]) -> Handler:
    """Pages of one label each; ``links.next`` until page ``last`` (None: never ends). Each
    page asked for is recorded in ``asked``."""

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        asked.append(page)
        more = last is None or page < last
        links = {"next": f"/labels?page={page + 1}" if more else None}
        return httpx.Response(200, json={"data": [{"id": page}], "links": links})

    return handler


def every_label(handler: Handler) -> list[JsonObject]:
    """Every label ``handler`` lists, read with ``every_page``."""

    async def main() -> list[JsonObject]:
        async with make_client(handler) as client:
            return await client.every_page(list_labels)

    return run_simulated(main())


def test_every_page_follows_links_next() -> None:
    asked: list[int] = []
    assert every_label(pages_until(3, asked)) == [{"id": 1}, {"id": 2}, {"id": 3}]
    assert asked == [1, 2, 3]


def test_a_listing_that_never_ends_is_cut_off_naming_the_operation() -> None:
    asked: list[int] = []
    with pytest.raises(PermanentError, match=f"^list_labels: more than {MAX_PAGES} pages"):
        every_label(pages_until(None, asked))
    assert asked == list(range(1, MAX_PAGES + 1))


def test_an_empty_page_ends_the_listing() -> None:
    asked: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(int(request.url.params["page"]))
        return httpx.Response(200, json={"data": [], "links": {"next": "/labels?page=2"}})

    assert every_label(handler) == []
    assert asked == [1]


def test_every_call_waits_for_the_limiter() -> None:
    sent_at: list[float] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()

        def handler(request: httpx.Request) -> httpx.Response:
            sent_at.append(loop.time() - start)
            return httpx.Response(200, json={"data": []})

        async with make_client(handler, requests_per_minute=60) as client:
            for _ in range(3):
                await client.send(search_contacts("x"))
            return loop.time() - start

    elapsed = run_simulated(main())
    assert sent_at == pytest.approx([0, 1, 2])
    assert elapsed == pytest.approx(2)  # 60/min: one call per second


def test_production_transport_is_aiohttp_with_enough_connections() -> None:
    async def main() -> Any:
        client = TrengoClient(
            "https://x.test/api/v2/",
            TOKEN,
            timeout_seconds=3,
            requests_per_minute=120,
            max_connections=300,
        )
        transport = client._transport
        await client.aclose()
        return transport, client.base_url

    transport, base_url = run_simulated(main())
    assert type(transport).__name__ == "AiohttpTransport"
    assert transport.limits.max_connections == 300
    assert base_url == "https://x.test/api/v2"


@pytest.mark.parametrize(
    "name",
    [pytest.param("Jane \ud800", id="lone-surrogate"), pytest.param(float("nan"), id="nan")],
)
def test_a_request_that_cannot_be_built_is_not_sent_and_costs_no_budget(name: object) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    async def main() -> float:
        loop = asyncio.get_running_loop()
        async with make_client(handler, requests_per_minute=60) as client:
            with pytest.raises((UnicodeEncodeError, ValueError)):
                await client.send(update_contact(5, UpdateContact(name)))  # type: ignore[arg-type]
            start = loop.time()
            await client.send(update_contact(5, UpdateContact("Jane")))
            return loop.time() - start

    waited = run_simulated(main())
    assert [request.content for request in sent] == [b'{"name":"Jane"}']
    assert waited == 0  # the token the unsent request would have spent is still there


def test_a_redirect_is_not_followed_with_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(301, headers={"Location": "http://elsewhere.test/api/v2/contacts"})

    with pytest.raises(PermanentError, match="HTTP 301"):
        run_simulated(send_search(handler))
    assert [request.url.host for request in seen] == ["trengo.test"]


class RecordingStream(httpx.AsyncByteStream):
    """A response body that can fail half-way, and says whether it was closed."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = False

    async def __aiter__(self) -> Any:
        for number, chunk in enumerate(self.chunks):
            if number == self.fail_after:
                raise httpx.ReadError("connection reset while reading the body")
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("fail_after", [None, 1], ids=["whole-body", "body-cut-off"])
def test_every_answer_is_read_whole_and_its_connection_released(fail_after: int | None) -> None:
    stream = RecordingStream([b'{"data": ', b"[]}"], fail_after)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream)

    async def search() -> Any:
        async with make_client(handler) as client:
            try:
                return await client.send(search_contacts("a@example.com"))
            except TrengoError as error:
                return error

    outcome = run_simulated(search())

    assert stream.closed
    if fail_after is None:
        assert outcome == {"data": []}
    else:
        assert isinstance(outcome, TransientError)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(search_contacts("jane+news@example.com"), id="get-with-query"),
        pytest.param(create_ticket(7, CreateTicket("42", "Bestelling 1 — €5 ✓")), id="post-utf8"),
        pytest.param(update_contact(7, UpdateContact("Zoë")), id="put"),
        pytest.param(
            TrengoRequest("empty_post", "POST", "/tickets/1/close", {}, None), id="no-body"
        ),
    ],
)
def test_requests_go_out_as_httpx_would_build_them(request_: TrengoRequest) -> None:
    """The client assembles headers and body itself: byte for byte what ``httpx.Request``
    with ``json=`` makes (Host first, Content-Length last, compact UTF-8 JSON)."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": []})

    async def send_one() -> None:
        async with make_client(handler) as client:
            await client.send(request_)

    run_simulated(send_one())
    expected = httpx.Request(
        request_.method,
        sent[0].url,
        headers=httpx.Headers(
            {
                "Authorization": f"Bearer {TOKEN}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": "trengo-processor",
            }
        ),
        json=request_.json,
    )
    assert sent[0].method == expected.method
    assert sent[0].headers.raw == expected.headers.raw
    assert sent[0].content == expected.content
