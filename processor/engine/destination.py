"""The destination gate: halted while Trengo refuses the token (401/403), open otherwise.

While halted nothing is delivered, nothing is dead-lettered and the poll loop pauses every
partition. Every ``probe_seconds`` the gate re-reads the token source (a rotated Kubernetes
Secret, ``TRENGO_API_TOKEN``) and probes; once the probe gets through the gate reopens by
itself. A halt for too many dead letters (``halt_until_restart``) is different: Trengo accepts
the token but refuses the work, so only a fixed config and a restart help, and the gate stays
closed without probing. The gate counts how long it has been halted, so an event's retry
deadline (``delivery.retry_max_seconds``) does not run while nothing could be delivered.

``token_works`` answers the 403 question (docs/errors.md): a probe with the same token that
gets through means only the event's action is forbidden, not the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from processor import metrics
from processor.engine.clock import SYSTEM_CLOCK, Clock
from processor.engine.outcomes import DeliveryError, DestinationDown, TransientError

logger = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]
OnChange = Callable[[bool], None]
# Re-reads the token source; True when a different token is now in use.
ReloadToken = Callable[[], bool]


def _token_never_changes() -> bool:
    return False


class DestinationGate:
    """Open/halted state shared by the delivery workers, the poll thread and /readyz."""

    def __init__(
        self,
        probe: Probe,
        probe_seconds: float,
        on_change: OnChange,
        *,
        reload_token: ReloadToken = _token_never_changes,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._probe = probe
        self.reload_token = reload_token
        self._probe_seconds = probe_seconds
        self._on_change = on_change
        self._clock = clock
        self._halted_since: float | None = None
        self._halted_before = 0.0  # seconds spent halted in earlier halts
        self._open = asyncio.Event()
        self._open.set()
        self._probe_task: asyncio.Task[None] | None = None
        self._token_check: asyncio.Task[bool] | None = None
        self._token_checked_at = float("-inf")
        self.halt_reason: str | None = None

    @property
    def halted(self) -> bool:
        """True while deliveries are held back (safe to read from any thread)."""
        return self.halt_reason is not None

    def halted_seconds(self) -> float:
        """Seconds spent halted since the gate was made, the current halt included."""
        current = (
            0.0 if self._halted_since is None else self._clock.monotonic() - self._halted_since
        )
        return self._halted_before + current

    async def wait_open(self) -> None:
        """Return at once while open; otherwise wait until the token works again."""
        await self._open.wait()

    async def token_works(self) -> bool:
        """A probe with the token in use: False when Trengo refuses it (401/403).

        Raises ``TransientError`` when the probe got no usable answer (timeout, 429, 5xx).
        Concurrent callers share one probe, and a token that worked is believed for
        ``probe_seconds``: a forbidden channel must not cost a probe per event.
        """
        if not self._token_check_reusable():
            self._token_check = asyncio.create_task(self._check_token(), name="token-check")
            self._token_checked_at = self._clock.monotonic()
        assert self._token_check is not None
        return await asyncio.shield(self._token_check)

    def _token_check_reusable(self) -> bool:
        check = self._token_check
        if check is None:
            return False
        if not check.done():
            return True
        fresh = self._clock.monotonic() - self._token_checked_at < self._probe_seconds
        return fresh and not check.cancelled() and check.exception() is None and check.result()

    async def _check_token(self) -> bool:
        try:
            await self._probe()
        except DestinationDown:
            return False
        except TransientError:
            raise
        except DeliveryError:
            pass  # any other answer means Trengo took the token
        return True

    def halt(self, reason: str) -> None:
        """Close the gate (idempotent) and start probing."""
        if self._close(reason):
            logger.error("destination halted: %s; probing every %s s", reason, self._probe_seconds)
            self._probe_task = asyncio.create_task(
                self._probe_until_open(), name="destination-probe"
            )

    def halt_until_restart(self, reason: str) -> None:
        """Close the gate for good (idempotent): nothing but a restart reopens it."""
        if self._close(reason):
            logger.error("destination halted until restart: %s", reason)

    def _close(self, reason: str) -> bool:
        """Close the gate; False when it already was."""
        if self.halted:
            return False
        self.halt_reason = reason
        self._halted_since = self._clock.monotonic()
        self._open.clear()
        metrics.DESTINATION_UP.set(0)
        self._on_change(False)
        return True

    async def close(self) -> None:
        """Stop probing (shutdown)."""
        if self._probe_task is not None:
            self._probe_task.cancel()
            await asyncio.gather(self._probe_task, return_exceptions=True)

    async def _probe_until_open(self) -> None:
        while True:
            await asyncio.sleep(self._probe_seconds)
            try:
                self.reload_token()
                await self._probe()
            except DestinationDown as down:
                logger.warning("destination still down: %s", down.reason)
                continue
            except DeliveryError as other:
                # Anything but 401/403 proves the token is accepted again.
                logger.info("probe answered %s; token accepted", other.reason)
            except Exception:
                # A probe bug must not leave the destination halted for good: keep probing.
                logger.exception("destination probe failed")
                continue
            self._reopen()
            return

    def _reopen(self) -> None:
        logger.info("destination up again after: %s", self.halt_reason)
        self.halt_reason = None
        self._halted_before = self.halted_seconds()
        self._halted_since = None
        self._probe_task = None
        metrics.DESTINATION_UP.set(1)
        self._on_change(True)
        self._open.set()
