"""``check-config --online``: read-only calls that prove a config works against the real account.

Before the first event: the token is accepted and Trengo sends its rate-limit headers
(``GET /channels``), ``channelId`` is a channel whose type fits ``channelIdentifier``, every
``customFieldMap[].fieldId`` is a CONTACT field and ``profileKeyFieldId`` a PROFILE field
(``GET /custom_fields``), every label of ``eventTemplateMap`` exists (``GET /labels``). Only
``GET`` calls, through ``TrengoClient`` (so each one is charged to the token's rate limiter and
the token is redacted from every error), every page of each listing, each listing read once.
A refused token or an account that does not answer on the first call stops the other checks;
every outcome is one line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from processor.config import DestinationConfig, Settings
from processor.trengo import (
    DestinationDown,
    JsonObject,
    TrengoClient,
    TrengoError,
    by_id,
    endpoints,
)

# Channel types a contact identified by ``channelIdentifier`` can live on (docs/trengo-api.md).
CHANNEL_TYPES_FOR = {
    "email": frozenset({"EMAIL"}),
    "phone": frozenset({"WA_BUSINESS", "SMS", "VOIP"}),
}


@dataclass(frozen=True, slots=True)
class CheckLine:
    """One check's outcome: passed or not, and why."""

    passed: bool
    text: str

    def render(self) -> str:
        """``✓ text`` or ``✗ text``."""
        return f"{'✓' if self.passed else '✗'} {self.text}"


async def check_account(settings: Settings, client: TrengoClient) -> list[CheckLine]:
    """Every online check of ``settings`` against the account ``client`` talks to."""
    destination = settings.destination
    channels = await _listing(client, endpoints.list_channels)
    if isinstance(channels, CheckLine):  # nothing else can work: say so once
        subject = "token" if channels.text.startswith("refused") else "account"
        failed = CheckLine(False, f"{subject}: {channels.text}")
        return [failed, CheckLine(False, "other checks skipped: the first call failed")]
    return [
        CheckLine(True, "token: accepted (GET /channels)"),
        _rate_limit_line(client),
        _channel_line(destination, channels),
        *await _custom_field_lines(destination, client),
        *await _label_lines(destination, client),
    ]


async def _listing(
    client: TrengoClient, request_for: Callable[[int], endpoints.TrengoRequest]
) -> list[JsonObject] | CheckLine:
    """Every page of one listing, or the ✗ line saying why it could not be read."""
    try:
        return await client.every_page(request_for)
    except DestinationDown as error:
        return CheckLine(False, f"refused: {error.reason}")
    except TrengoError as error:
        return CheckLine(False, f"no usable answer: {error.reason}")


def _rate_limit_line(client: TrengoClient) -> CheckLine:
    limit = client.rate_limiter.reported_limit
    if limit is None:
        return CheckLine(
            False,
            "rate limit: Trengo sent no x-ratelimit-limit header (the limiter paces by "
            "trengo.requests_per_minute alone)",
        )
    remaining = client.rate_limiter.remaining
    left = f", {remaining} left in this window" if remaining is not None else ""
    return CheckLine(True, f"rate limit: {limit} requests a minute (x-ratelimit-limit){left}")


def _channel_line(destination: DestinationConfig, channels: list[JsonObject]) -> CheckLine:
    channel_id, identifier = destination.channelId, destination.channelIdentifier
    channel = by_id(channels).get(channel_id)
    subject = f"channelId {channel_id}"
    if channel is None:
        return CheckLine(False, f"{subject}: no such channel (GET /channels lists {len(channels)})")
    channel_type = channel.get("type")
    fits = CHANNEL_TYPES_FOR[identifier]
    if channel_type not in fits:
        return CheckLine(
            False,
            f"{subject}: a {channel_type} channel, but channelIdentifier {identifier} needs "
            f"{' or '.join(sorted(fits))}",
        )
    return CheckLine(True, f"{subject}: {channel_type} channel {channel.get('title')!r}")


async def _custom_field_lines(
    destination: DestinationConfig, client: TrengoClient
) -> list[CheckLine]:
    wanted = [
        (mapping.fieldId, "CONTACT", f"customFieldMap fieldId {mapping.fieldId}")
        for mapping in destination.customFieldMap
    ]
    if destination.enableProfiles and destination.profileKeyFieldId is not None:
        key_field = destination.profileKeyFieldId
        wanted.append((key_field, "PROFILE", f"profileKeyFieldId {key_field}"))
    if not wanted:
        return []
    custom_fields = await _listing(client, endpoints.list_custom_fields)
    if isinstance(custom_fields, CheckLine):
        return [CheckLine(False, f"custom fields: {custom_fields.text}")]
    listed = by_id(custom_fields)
    return [
        _field_line(listed.get(str(field_id)), field_type, subject)
        for field_id, field_type, subject in wanted
    ]


def _field_line(custom_field: JsonObject | None, wanted_type: str, subject: str) -> CheckLine:
    if custom_field is None:
        return CheckLine(False, f"{subject}: no such custom field (GET /custom_fields)")
    field_type = custom_field.get("type")
    title = custom_field.get("title")
    if not isinstance(field_type, str) or field_type.upper() != wanted_type:
        return CheckLine(
            False, f"{subject}: {title!r} is a {field_type} field, not a {wanted_type} field"
        )
    return CheckLine(True, f"{subject}: {wanted_type} field {title!r}")


async def _label_lines(destination: DestinationConfig, client: TrengoClient) -> list[CheckLine]:
    wanted = dict.fromkeys(label for m in destination.eventTemplateMap for label in m.labels)
    if not wanted:
        return []
    labels = await _listing(client, endpoints.list_labels)
    if isinstance(labels, CheckLine):
        return [CheckLine(False, f"labels: {labels.text}")]
    known = {name.casefold() for label in labels if isinstance(name := label.get("name"), str)}
    missing = [label for label in wanted if label.casefold() not in known]
    if missing:
        listed = ", ".join(repr(label) for label in missing)
        return [CheckLine(False, f"labels: not in GET /labels: {listed}")]
    return [CheckLine(True, f"labels: all {len(wanted)} exist ({', '.join(wanted)})")]
