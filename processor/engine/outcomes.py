"""The engine's vocabulary: how delivering an event can fail, and what the engine does about it.

A destination (the Trengo client, ``processor/trengo/``) raises these; the engine
(``handler.py``, ``destination.py``) acts on the class alone:

* ``TransientError``: the same call may succeed later (timeouts, connection errors, 408, 429,
  5xx). Retried with backoff, honouring ``retry_after`` when the destination gave one, until
  ``delivery.retry_max_seconds``; then dead-lettered.
* ``PermanentError``: retrying cannot help (other 4xx, a contact that cannot be resolved).
  Dead-lettered at once.
* ``DestinationDown``: the destination refuses the credentials (401). The gate halts every
  delivery and probes; nothing is dead-lettered.
* ``Forbidden`` (a ``DestinationDown``): 403. Either the credentials are refused (halt) or only
  this action is forbidden (dead-letter the event); a probe with the same credentials tells
  which.
* ``CallWithdrawn``: not a failure: a call was not sent because its event is no longer this
  process's (its partition was revoked). The event is neither done nor dead-lettered; the
  partition's next owner delivers it.

``SEND_ALLOWED`` is how the engine says "still ours": it sets a check per event, and a
destination asks it right before each call goes out (after any rate-limiter wait).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal

# What became of an event, as logs and ``trengo_processor_events_total{outcome}`` say it.
Outcome = Literal["delivered", "dead_lettered"]

SEND_ALLOWED: ContextVar[Callable[[], bool]] = ContextVar("SEND_ALLOWED", default=lambda: True)


class DeliveryError(Exception):
    """Any failure of a delivery: a reason for humans, the destination's status if it answered."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, status={self.status})"


class TransientError(DeliveryError):
    """Worth retrying: the same call may succeed later."""

    def __init__(
        self, reason: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason, status)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help: dead-letter the event."""


class DestinationDown(DeliveryError):  # noqa: N818 - the outcome's name, not an error kind
    """The destination refuses the credentials: halt every delivery."""


class Forbidden(DestinationDown):
    """403: the credentials are refused, or only this action is forbidden; a probe tells which."""


class CallWithdrawn(Exception):  # noqa: N818 - not an error: the caller gave the work up
    """A call was not sent: its event no longer belongs to this process (partition revoked)."""
