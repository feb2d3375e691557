"""Configuration of the Trengo sandbox: start options, runtime fault knobs, and its clock.

``FaultKnobs`` are the settings that can change while the sandbox runs (``POST /__admin/faults``);
``SandboxOptions`` adds what is fixed at start (channels, custom fields, labels, RNG seed,
recording size).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from devkit.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    DEFAULT_LABELS,
    SandboxChannel,
    SandboxCustomField,
)

DEFAULT_TOKEN = "sandbox-token"


class FaultKnobs(BaseModel):
    """Authentication, rate limit and fault injection settings, changeable at runtime.

    ``forbidden_channels``: channels the tokens' user may not use (a private channel, a role
    without the permission): creating a contact or a ticket on one answers 403.

    ``outage_seconds``, ``storm_429_requests`` and ``hang`` start a transient fault when they are
    set (at start, or in an admin update that names them).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: tuple[str, ...] = (DEFAULT_TOKEN,)
    denied_tokens: tuple[str, ...] = ()
    forbidden_channels: tuple[int, ...] = ()
    requests_per_minute: int | None = Field(default=120, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    outage_seconds: float = Field(default=0.0, ge=0)
    storm_429_requests: int = Field(default=0, ge=0)
    storm_retry_after_seconds: int = Field(default=30, ge=1)
    hang: bool = False
    # 503 for every request whose query or body contains one of these texts (one stuck key).
    unavailable_for: tuple[str, ...] = ()

    @property
    def rate_limit(self) -> int | None:
        """Requests per minute per token, or None when the limit is off (0 or None)."""
        return self.requests_per_minute or None


class SandboxOptions(FaultKnobs):
    """Everything the sandbox starts with; the fault knobs can be changed later at runtime."""

    seed: int = 0
    channels: tuple[SandboxChannel, ...] = DEFAULT_CHANNELS
    custom_fields: tuple[SandboxCustomField, ...] = DEFAULT_CUSTOM_FIELDS
    labels: tuple[str, ...] = DEFAULT_LABELS
    max_recorded_requests: int = Field(default=1_000_000, ge=1)

    @field_validator("channels")
    @classmethod
    def _unique_channel_ids(
        cls, channels: tuple[SandboxChannel, ...]
    ) -> tuple[SandboxChannel, ...]:
        if not channels or not _all_different([channel.id for channel in channels]):
            raise ValueError("need at least one channel, and channel ids must be unique")
        return channels

    @field_validator("custom_fields")
    @classmethod
    def _unique_custom_field_ids(
        cls, custom_fields: tuple[SandboxCustomField, ...]
    ) -> tuple[SandboxCustomField, ...]:
        if not _all_different([custom_field.id for custom_field in custom_fields]):
            raise ValueError("custom field ids must be unique")
        return custom_fields

    @field_validator("labels")
    @classmethod
    def _distinct_label_names(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        # Label names are matched case-insensitively, so "VIP" and "vip" would be ambiguous.
        if not all(name.strip() for name in labels):
            raise ValueError("label names must not be empty")
        if not _all_different([name.strip().lower() for name in labels]):
            raise ValueError("label names must be unique, ignoring case")
        return labels

    def fault_knobs(self) -> FaultKnobs:
        """The runtime-changeable part of these options."""
        return FaultKnobs.model_validate(self.model_dump(include=set(FaultKnobs.model_fields)))


def _all_different(values: Sequence[object]) -> bool:
    return len(set(values)) == len(values)


@dataclass(frozen=True, slots=True)
class SandboxClock:
    """Time as the sandbox sees it: monotonic seconds (windows), Unix seconds, and sleeping."""

    monotonic: Callable[[], float]
    wall: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]]


SYSTEM_CLOCK = SandboxClock(monotonic=time.monotonic, wall=time.time, sleep=asyncio.sleep)


class ManualClock:
    """A clock that moves only when told to, so tests step through rate-limit windows.

    Its ``sleep`` advances the clock by the delay instead of waiting.
    """

    def __init__(self, monotonic: float = 1_000.0, wall: float = 1_700_000_000.0) -> None:
        self.monotonic = monotonic
        self.wall = wall

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.monotonic += seconds
        self.wall += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` and yield once to the event loop."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def as_sandbox_clock(self) -> SandboxClock:
        """This clock in the shape ``create_app`` takes."""
        return SandboxClock(lambda: self.monotonic, lambda: self.wall, self.sleep)
