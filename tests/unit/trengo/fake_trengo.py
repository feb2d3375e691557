"""A small in-memory Trengo behind ``httpx.MockTransport``, for client and executor tests.

It searches fuzzily (a term hits any contact whose email, phone digits or name contains it),
finds-or-creates email contacts on ``POST /channels/{id}/contacts``, and answers 404 for
unknown contact ids. ``fail_next`` queues error answers, ``failing`` answers a status to every
call of one kind ("POST /tickets"); ``calls`` records what was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from processor.trengo.client import TrengoClient

TOKEN = "s3cret-token-value"
BASE_URL = "https://trengo.test/api/v2"


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any  # the decoded JSON body, None without one


@dataclass
class FakeTrengo:
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail_next: list[httpx.Response] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)
    next_id: int = 5_000_000_001  # above 2**32, as in Trengo
    on_request: Callable[[], Any] | None = None

    def add(
        self,
        email: str | None = None,
        phone: str | None = None,
        name: str | None = None,
        channel_id: int = 1,
    ) -> int:
        contact_id = self.next_id
        self.next_id += 1
        self.contacts[contact_id] = {
            "id": contact_id,
            "name": name,
            "email": email,
            "phone": phone,
            "identifier": email or phone,
            "channels": [{"id": channel_id, "type": "EMAIL" if email else "SMS"}],
        }
        return contact_id

    def paths(self) -> list[str]:
        return [f"{call.method} {call.path}" for call in self.calls]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        body = json.loads(request.content) if request.content else None
        self.calls.append(Call(request.method, path, dict(request.url.params), body))
        if self.on_request is not None:
            await self.on_request()
        if self.fail_next:
            return self.fail_next.pop(0)
        if (status := self.failing.get(f"{request.method} {path}")) is not None:
            return error(status)
        return self._answer(request.method, path, dict(request.url.params), body)

    def _answer(self, method: str, path: str, params: dict[str, str], body: Any) -> httpx.Response:
        if method == "GET" and path == "/contacts":
            return _json(200, {"data": self._search(params.get("term", "")), "links": {}})
        if method == "POST" and (match := re.fullmatch(r"/channels/(\w+)/contacts", path)):
            return self._create(int(match[1]), body)
        if method == "PUT" and (match := re.fullmatch(r"/contacts/(\d+)", path)):
            return self._update(int(match[1]), body)
        if method == "POST" and path == "/tickets":
            return self._ticket(body)
        return _json(404, {"message": "route not found"})

    def _update(self, contact_id: int, body: dict[str, Any]) -> httpx.Response:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return _json(404, {"message": "No query results for model [Contact]."})
        contact["name"] = body.get("name", contact["name"])
        return _json(200, contact)

    def _ticket(self, body: dict[str, Any]) -> httpx.Response:
        if int(body["contact_id"]) not in self.contacts:
            return _json(404, {"message": "No query results for model [Contact]."})
        return _json(201, {"id": 7_000_000_001 + len(self.calls), **body})

    def _search(self, term: str) -> list[dict[str, Any]]:
        needle = term.casefold()
        digits = re.sub(r"\D", "", term)
        return [
            contact
            for contact in self.contacts.values()
            if needle in (contact["email"] or "").casefold()
            or needle in (contact["name"] or "").casefold()
            or (digits and digits in re.sub(r"\D", "", contact["phone"] or ""))
        ]

    def _create(self, channel_id: int, body: dict[str, Any]) -> httpx.Response:
        identifier = str(body["identifier"])
        if "@" in identifier:
            for contact in self.contacts.values():
                if (contact["email"] or "").casefold() == identifier.casefold():
                    return _json(200, contact)  # find-or-create for emails
            contact_id = self.add(email=identifier, name=body.get("name"), channel_id=channel_id)
        else:
            contact_id = self.add(
                phone=f"+{identifier.lstrip('+')}", name=body.get("name"), channel_id=channel_id
            )
        return _json(201, self.contacts[contact_id])


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An error answer (the default body is Laravel's shape)."""
    return _json(status, body if body is not None else {"message": "failed"}, headers)


def make_client(
    handler: Callable[[httpx.Request], Any], requests_per_minute: int = 6000
) -> TrengoClient:
    """A client on the MockTransport, whose limiter runs on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return TrengoClient(
        BASE_URL,
        TOKEN,
        timeout_seconds=5,
        requests_per_minute=requests_per_minute,
        transport=httpx.MockTransport(handler),
        clock=loop.time,
        sleep=asyncio.sleep,
        wall_clock=lambda: 1_700_000_000.0 + loop.time(),
    )
