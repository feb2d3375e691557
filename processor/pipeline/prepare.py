"""Prepare stage: one Kafka record → the work the engine schedules (``Prepared``).

decode → filter → validate → map, one function call per record on the event loop (with a
transformation: decode → transform, then filter → validate → map for each event it returns).
Each record also gets its ordering key (``ordering_key``: one rule for every outcome, so a
user's dead letters stay in order with their delivered events) and a type label for metrics.

The filter runs before validate: most of a site's stream is page views that are skipped, and a
skip decided on the raw document costs no model. While skips are not logged one by one, a
skipped record shares one outcome per type and reason and builds no log fields.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from processor.config import Settings
from processor.engine.handler import KafkaRecord
from processor.engine.intake import Part, Prepared, skips_logged
from processor.logging import event_fields
from processor.pipeline.decode import decode
from processor.pipeline.filters import MESSAGE_TYPES, EventFilter
from processor.pipeline.map import plan_event
from processor.pipeline.plan import Plan, Rejection, Skip, TicketPlan
from processor.pipeline.templates import EventTemplates
from processor.pipeline.transform import SOURCE_ID_HEADER, Transformation
from processor.pipeline.validate import validate

logger = logging.getLogger(__name__)

UNKNOWN_TYPE = "unknown"
_MAX_ERROR_TEXT = 300
_NO_FIELDS: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RecordPreparer:
    """decode → filter → validate → map for one record (with a transformation: decode →
    transform, then filter → validate → map for each event it returns), plus its ordering key
    and type label.

    Never raises: an unexpected exception in any step (a bug, or input no check foresaw)
    becomes that record's rejection at the stage it happened in, with the reason
    ``internal error: <type>: <text>``, so the rest of the poll batch goes on.
    """

    settings: Settings
    templates: EventTemplates
    event_filter: EventFilter
    transformation: Transformation | None = None
    _quiet_skips: dict[tuple[str, str], Prepared] = dataclasses.field(
        default_factory=dict, init=False
    )

    def __call__(self, record: KafkaRecord) -> Prepared:
        progress = _Progress(record, self.settings.log.include_user_ids)
        try:
            return self._prepare(record, progress)
        except Exception as error:  # one record's failure is only that record's
            logger.error(
                "internal error in %s stage",
                progress.stage,
                exc_info=True,
                extra=progress.log_fields(),
            )
            return progress.prepared(Rejection(_internal_error(error), stage=progress.stage))

    def _prepare(self, record: KafkaRecord, progress: _Progress) -> Prepared:
        document = decode(record.value)
        if isinstance(document, Rejection):
            return progress.prepared(document)
        progress.type_label = _type_label(document.get("type"))
        skip = None if self.transformation else self._filter(document, progress)
        if skip is not None and not skips_logged():
            return self._quiet_skip(progress.type_label, skip)
        progress.stage = "decode"  # the log fields and the key are the decoded event's
        progress.fields = event_log_fields(record, document, self.settings.log.include_user_ids)
        progress.key = ordering_key(record, document)
        if self.transformation is not None:
            progress.stage = "transform"
            return self._transformed(self.transformation, record, document, progress)
        if skip is not None:
            return progress.prepared(skip)
        return progress.prepared(self._mapped(record, document, progress, progress.type_label))

    def _filter(self, document: dict[str, Any], progress: _Progress) -> Skip | None:
        progress.stage = "validate"  # the filter never dead-letters: its bugs count as validate's
        return self.event_filter(document)

    def _quiet_skip(self, type_label: str, skip: Skip) -> Prepared:
        """The skip, shared by every event of its type and reason: most of a stream is
        skipped, and when skips are not logged one by one they need no key or log fields."""
        cached = self._quiet_skips.get((type_label, skip.reason))
        if cached is None:
            cached = Prepared("", type_label, skip, _NO_FIELDS)
            self._quiet_skips[type_label, skip.reason] = cached
        return cached

    def _transformed(
        self,
        transformation: Transformation,
        record: KafkaRecord,
        document: dict[str, Any],
        progress: _Progress,
    ) -> Prepared:
        """The transformation's events, each filtered, validated and mapped, under one key."""
        events = transformation.run(document, _header(record, SOURCE_ID_HEADER))
        if isinstance(events, Rejection | Skip):
            return progress.prepared(events)
        fanned_out = len(events) > 1
        first, *more = (
            self._part(record, event, progress, part if fanned_out else None)
            for part, event in enumerate(events)
        )
        return Prepared(
            progress.ordering_key(),
            first.message_type,
            first.work,
            progress.log_fields(),
            tuple(more),
        )

    def _part(
        self,
        record: KafkaRecord,
        document: dict[str, Any],
        progress: _Progress,
        part: int | None = None,
    ) -> Part:
        """filter → validate → map for one event (``part`` of a fanned-out record)."""
        type_label = _type_label(document.get("type"))
        skip = self._filter(document, progress)
        if skip is not None:
            return Part(type_label, skip)
        return Part(type_label, self._mapped(record, document, progress, type_label, part))

    def _mapped(
        self,
        record: KafkaRecord,
        document: dict[str, Any],
        progress: _Progress,
        type_label: str,
        part: int | None = None,
    ) -> Plan | Rejection:
        """validate → map for one event the filter kept."""
        progress.stage = "validate"
        message = validate(document, accept_groups=self.settings.destination.enableProfiles)
        if isinstance(message, Rejection):
            return message
        progress.stage = "map"
        plan = plan_event(message, self.settings.destination, self.templates)
        return resumable_by_position(plan, record, part)


def resumable_by_position(
    plan: Plan | Rejection, record: KafkaRecord, part: int | None = None
) -> Plan | Rejection:
    """A ticket with follow-ups but no messageId is resumed by its position in the topic. Each
    ``part`` of a fanned-out record is resumed by its own key (``#part``: the parts often share
    the record's messageId) and as a part of a fan-out (see ``TicketPlan.fanned_out``)."""
    if not (isinstance(plan, TicketPlan) and (plan.message or plan.labels)):
        return plan
    key = plan.event_key or f"kafka:{record.topic}/{record.partition}/{record.offset}"
    if part is not None:
        return dataclasses.replace(plan, event_key=f"{key}#{part}", fanned_out=True)
    return plan if key == plan.event_key else dataclasses.replace(plan, event_key=key)


@dataclass(slots=True)
class _Progress:
    """How far one record got: what its outcome says if a step raises."""

    record: KafkaRecord
    include_user_ids: bool
    fields: dict[str, object] | None = None  # None: not decoded yet, the record's own fields
    key: str | None = None  # None: not decoded yet (see ordering_key)
    type_label: str = UNKNOWN_TYPE
    stage: Literal["decode", "validate", "transform", "map"] = "decode"

    def log_fields(self) -> dict[str, object]:
        if self.fields is None:
            self.fields = event_log_fields(self.record, {}, self.include_user_ids)
        return self.fields

    def ordering_key(self) -> str:
        return self.key if self.key is not None else ordering_key(self.record, None)

    def prepared(self, work: Plan | Rejection | Skip) -> Prepared:
        return Prepared(self.ordering_key(), self.type_label, work, self.log_fields())


def event_log_fields(
    record: KafkaRecord, document: dict[str, Any], include_user_ids: bool
) -> dict[str, object]:
    """The fields that identify an event in its log lines."""
    message_id, user_id = document.get("messageId"), document.get("userId")
    return event_fields(
        message_id=message_id if isinstance(message_id, str) else None,
        user_id=str(user_id) if isinstance(user_id, str | int) else None,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        include_user_ids=include_user_ids,
    )


def _internal_error(error: Exception) -> str:
    """``internal error: <type>: <text>``, as text any header or log line can carry."""
    text = f"{type(error).__name__}: {error}"[:_MAX_ERROR_TEXT]
    return "internal error: " + text.encode("utf-8", "backslashreplace").decode("utf-8")


def _header(record: KafkaRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def ordering_key(record: KafkaRecord, document: Mapping[str, Any] | None) -> str:
    """The key a record's events are ordered by, whatever becomes of them (delivered, skipped
    or dead-lettered): the record's key, which Kafka partitions by (RudderStack's Kafka
    destination sets the userId); without one, the event's ``userId``, else ``anonymousId``
    (text or a number); else the record's partition/offset, which orders it with nothing."""
    if record.key:
        return record.key.decode("utf-8", errors="replace")
    for field in ("userId", "anonymousId"):
        value = document.get(field) if document is not None else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)
    return f"{record.partition}/{record.offset}"


def _type_label(value: object) -> str:
    text = value.lower() if isinstance(value, str) else ""
    return text if text in MESSAGE_TYPES else UNKNOWN_TYPE
