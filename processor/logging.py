"""Structured logging: one JSON object per line (or a compact console line for ``demo``).

Per-event lines carry ``messageId``, a hash of the ``userId`` (the raw id only when
``log.include_user_ids`` is on), topic/partition/offset, outcome and reason, passed as
``extra=`` fields built by :func:`event_fields`. A redaction filter on the handler replaces
every secret (the API token) with ``***`` in messages, arguments, extra fields, exception and
stack text, whichever logger the record came from. Unless ``log.include_user_ids`` is on, it
also masks email addresses (``<email>``) and phone numbers (``<phone>``) in WARNING and ERROR
lines, where dead-letter and retry reasons may quote them (the dead letter's header keeps them).

librdkafka, the C library under every Kafka client, would print its own ``%3|...|FAIL|...`` lines
straight to stderr; :func:`kafka_logger` is the ``logger`` setting every client gets instead, so
those lines arrive here, in the configured format, with a ``component`` field naming the client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from processor.config import LogConfig

REDACTED = "***"
HANDLER_NAME = "trengo-processor"
USER_ID_HASH_LENGTH = 16

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime"}
_OUTCOME_LEVELS = {"dead_lettered": logging.WARNING}
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# A + and 7 or more digits (separators allowed), or 8 or more digits in a row: a phone number
# cannot be told from a long id, so long ids are masked too.
_PHONE = re.compile(r"\+\d(?:[\s().-]{0,2}\d){6,}|(?<!\w)\d{8,}(?!\w)")
# Libraries that log every HTTP request at INFO; our per-event lines already say it.
_CHATTY_LOGGERS = ("httpx", "httpcore")
KAFKA_LOGGER_NAME = "librdkafka"


def configure_logging(config: LogConfig, *, secrets: Sequence[str] = ()) -> None:
    """Send all logging to stderr in the configured format, redacting ``secrets``.

    Idempotent: a second call replaces the handler installed by the first.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if config.format == "json" else ConsoleFormatter())
    handler.addFilter(RedactingFilter(secrets, mask_user_ids=not config.include_user_ids))
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
        previous.close()
    root.addHandler(handler)
    root.setLevel(config.level)
    chatty_level = logging.NOTSET if config.level == "DEBUG" else logging.WARNING
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty_level)


def kafka_logger(component: str) -> logging.LoggerAdapter[logging.Logger]:
    """The value of confluent-kafka's ``logger`` setting for one client, e.g. ``kafka.consumer``.

    librdkafka then hands its log lines to Python logging (when the client is polled) instead of
    writing them to stderr itself: a line after the last poll of a client is dropped, never
    printed raw.
    """
    return logging.LoggerAdapter(logging.getLogger(KAFKA_LOGGER_NAME), {"component": component})


def redact_from_now_on(secret: str) -> None:
    """Add ``secret`` to the redaction filter of the handler ``configure_logging`` installed."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == HANDLER_NAME:
            for log_filter in handler.filters:
                if isinstance(log_filter, RedactingFilter):
                    log_filter.add_secret(secret)


def event_fields(
    *,
    message_id: str | None,
    user_id: str | None,
    topic: str,
    partition: int,
    offset: int,
    include_user_ids: bool,
) -> dict[str, object]:
    """The ``extra=`` fields that identify one event in a log line (absent ids are left out)."""
    fields: dict[str, object] = {}
    if message_id is not None:
        fields["messageId"] = message_id
    if user_id is not None:
        if include_user_ids:
            fields["userId"] = user_id
        else:
            fields["userIdHash"] = user_id_hash(user_id)
    fields.update(topic=topic, partition=partition, offset=offset)
    return fields


def user_id_hash(user_id: str) -> str:
    """A short stable hash of a user id: correlates lines without printing the id."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:USER_ID_HASH_LENGTH]


def log_outcome(
    logger: logging.Logger, outcome: str, reason: str | None, fields: Mapping[str, object]
) -> None:
    """Log how one event finished (dead letters at WARNING, the rest at INFO)."""
    message = f"event {outcome}" if reason is None else f"event {outcome}: {reason}"
    level = _OUTCOME_LEVELS.get(outcome, logging.INFO)
    logger.log(level, message, extra={**fields, "outcome": outcome, "reason": reason})


def mask_user_ids(text: str) -> str:
    """``text`` with email addresses and phone numbers masked."""
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields a record received through ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


class RedactingFilter(logging.Filter):
    """Replaces every secret with ``***`` in the record, before any formatter sees it; with
    ``mask_user_ids``, masks emails and phone numbers in WARNING and ERROR records too."""

    def __init__(self, secrets: Sequence[str], *, mask_user_ids: bool = False) -> None:
        super().__init__()
        # Longest first, so a secret containing another one is hidden whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._mask_user_ids = mask_user_ids

    def add_secret(self, secret: str) -> None:
        """Redact ``secret`` too from now on (a token re-read from its source)."""
        if secret and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _redact_and_mask(self, text: str) -> str:
        return mask_user_ids(self.redact(text))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the message, extras, exception and stack text in place; never drops."""
        masks = self._mask_user_ids and record.levelno >= logging.WARNING
        clean = self._redact_and_mask if masks else self.redact
        record.msg = clean(_rendered_message(record))
        record.args = None
        for key, value in extra_fields(record).items():
            setattr(record, key, _cleaned_value(value, clean))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        return True


def _cleaned_value(value: object, clean: Callable[[str], str]) -> object:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _cleaned_value(v, clean) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned_value(item, clean) for item in value]
    return clean(str(value))


def _rendered_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        # Mismatched %-args: keep both so the caller's bug is visible, still redacted.
        return f"{record.msg} {record.args!r}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the extra fields, exc/stack text."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        exception_text = self._exception_text(record)
        if exception_text:
            line["exc"] = exception_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str, ensure_ascii=False)

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return record.exc_text


class ConsoleFormatter(logging.Formatter):
    """A compact human line: time, level, logger, message, then key=value extras."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - stdlib name
        """The base line followed by the extra fields."""
        line = super().formatMessage(record)
        extras = " ".join(f"{k}={v}" for k, v in extra_fields(record).items() if v is not None)
        return f"{line} {extras}" if extras else line


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
