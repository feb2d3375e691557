"""A small in-memory Trengo behind ``httpx.MockTransport``, for client and executor tests.

It searches fuzzily (a term hits any contact whose email, phone digits or name contains it),
finds-or-creates email contacts on ``POST /channels/{id}/contacts``, and answers 404 for
unknown contact ids. Tickets keep their messages and labels; profiles are searched by name or
custom field value (substring, case-insensitively; by name only when
``profile_term_matches_values`` is off) and keep their contacts; labels and profile searches
are paginated (``page_size``, ``links.next``). Field values are kept as Trengo answers them:
``custom_field_data`` keyed by the field's title plus ``custom_field_values`` (ids).
``fail_next`` queues error answers, ``failing`` answers a status to every call of one route
("POST /tickets", "POST /tickets/{id}/labels"); ``calls`` records what was sent.
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
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 25
    calls: list[Call] = field(default_factory=list)
    fail_next: list[httpx.Response] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)
    next_id: int = 5_000_000_001  # above 2**32, as in Trengo
    on_request: Callable[[], Any] | None = None
    profile_term_matches_values: bool = True
    channels: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": 1, "type": "EMAIL", "title": "Email"},
            {"id": 2, "type": "WA_BUSINESS", "title": "WhatsApp"},
        ]
    )
    custom_fields: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": 2001, "title": "External ID", "type": "PROFILE"},
            {"id": 999, "title": "Other", "type": "PROFILE"},
        ]
    )

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
            "custom_field_data": None,
            "custom_field_values": [],
        }
        return contact_id

    def add_label(self, name: str) -> int:
        label_id = 3001 + len(self.labels)
        self.labels.append({"id": label_id, "name": name, "color": "#fff", "sort_order": 0})
        return label_id

    def add_profile(self, name: str, key: dict[int, str] | None = None) -> int:
        profile_id = 9001 + len(self.profiles)
        profile: dict[str, Any] = {
            "id": profile_id,
            "name": name,
            "custom_field_data": None,
            "custom_field_values": [],
            "contacts": [],
        }
        for field_id, value in (key or {}).items():
            self.set_value(profile, field_id, value)
        self.profiles[profile_id] = profile
        return profile_id

    def title_of(self, field_id: int) -> str:
        titles = {f["id"]: f["title"] for f in self.custom_fields}
        return titles.get(field_id, f"Field {field_id}")

    def set_value(self, found: dict[str, Any], field_id: int, value: str) -> None:
        """Set a field value in both forms Trengo answers (title-keyed data, id-bearing list)."""
        found["custom_field_data"] = {
            **(found["custom_field_data"] or {}),
            self.title_of(field_id): value,
        }
        others = [v for v in found["custom_field_values"] if v["custom_field_id"] != field_id]
        entry = {"custom_field_id": field_id, "field_name": self.title_of(field_id), "value": value}
        found["custom_field_values"] = [*others, entry]

    def paths(self) -> list[str]:
        return [f"{call.method} {call.path}" for call in self.calls]

    def routes(self) -> list[str]:
        """The calls as route templates: ``POST /tickets/{id}/labels``."""
        return [re.sub(r"/\d+", "/{id}", path) for path in self.paths()]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v2")
        body = json.loads(request.content) if request.content else None
        self.calls.append(Call(request.method, path, dict(request.url.params), body))
        if self.on_request is not None:
            await self.on_request()
        if self.fail_next:
            return self.fail_next.pop(0)
        route = re.sub(r"/\d+", "/{id}", f"{request.method} {path}")
        status = self.failing.get(f"{request.method} {path}") or self.failing.get(route)
        if status is not None:
            return error(status)
        return self._answer(request.method, path, dict(request.url.params), body)

    def _answer(self, method: str, path: str, params: dict[str, str], body: Any) -> httpx.Response:
        term = params.get("term", "")
        routes = {
            "GET /contacts": lambda: _json(200, {"data": self._search(term), "links": {}}),
            "GET /labels": lambda: self._page(self.labels, params),
            "GET /channels": lambda: self._page(self.channels, params),
            "GET /custom_fields": lambda: self._page(self.custom_fields, params),
            "GET /profiles": lambda: self._page(self._search_profiles(term), params),
            "POST /tickets": lambda: self._ticket(body),
            "POST /profiles": lambda: _json(200, self.profiles[self.add_profile(body["name"])]),
        }
        if (answer := routes.get(f"{method} {path}")) is not None:
            return answer()
        if method == "POST" and (match := re.fullmatch(r"/channels/(\w+)/contacts", path)):
            return self._create(int(match[1]), body)
        if match := re.fullmatch(r"/(contacts|tickets|profiles)/(\d+)(/\w+)?", path):
            return self._on_object(method, match[1], int(match[2]), match[3] or "", body)
        return _json(404, {"message": "route not found"})

    def _on_object(
        self, method: str, kind: str, object_id: int, action: str, body: Any
    ) -> httpx.Response:
        objects = {"contacts": self.contacts, "tickets": self.tickets, "profiles": self.profiles}
        found = objects[kind].get(object_id)
        if found is None:
            return _json(404, {"message": f"No query results for model [{kind}]."})
        if method == "PUT" and action == "":
            found["name"] = body.get("name", found["name"])
        elif method == "POST" and action == "/custom_fields":
            self.set_value(found, int(body["custom_field_id"]), body["value"])
        elif method == "POST" and action == "/messages":
            found["messages"].append(body)
            return _json(200, {"id": len(found["messages"]), "ticket_id": object_id, **body})
        elif method == "POST" and action == "/labels":
            found["labels"].append(body["label_id"])
        elif method == "POST" and kind == "profiles" and action == "/contacts":
            if int(body["contact_id"]) not in self.contacts:
                return _json(404, {"message": "No query results for model [Contact]."})
            if body["contact_id"] not in [contact["id"] for contact in found["contacts"]]:
                found["contacts"].append({"id": body["contact_id"]})
        else:
            return _json(404, {"message": "route not found"})
        return _json(200, found)

    def _page(self, objects: list[dict[str, Any]], params: dict[str, str]) -> httpx.Response:
        page = int(params.get("page", "1"))
        start = (page - 1) * self.page_size
        more = len(objects) > start + self.page_size
        next_url = f"{BASE_URL}/list?page={page + 1}" if more else None
        data = objects[start : start + self.page_size]
        return _json(200, {"data": data, "links": {"next": next_url}, "meta": {}})

    def _search_profiles(self, term: str) -> list[dict[str, Any]]:
        needle = term.casefold()
        return [
            profile
            for profile in self.profiles.values()
            if needle in profile["name"].casefold()
            or (
                self.profile_term_matches_values
                and any(
                    needle in str(value).casefold()
                    for value in (profile["custom_field_data"] or {}).values()
                )
            )
        ]

    def _ticket(self, body: dict[str, Any]) -> httpx.Response:
        if int(body["contact_id"]) not in self.contacts:  # Laravel's `exists` rule, as Trengo
            invalid = "The selected contact id is invalid."
            return _json(422, {"message": invalid, "errors": {"contact_id": [invalid]}})
        ticket_id = 7_000_000_001 + len(self.calls)
        self.tickets[ticket_id] = {"id": ticket_id, **body, "messages": [], "labels": []}
        return _json(201, self.tickets[ticket_id])

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


def values_of(found: dict[str, Any]) -> dict[int, str]:
    """A contact's or profile's field values by field id (from ``custom_field_values``)."""
    return {entry["custom_field_id"]: entry["value"] for entry in found["custom_field_values"]}
