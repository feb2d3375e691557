"""The state of one running Trengo sandbox: data, rate limits, recording and the faults in force.

Not thread-safe: it is read and changed only on the event loop that serves the sandbox
(``RunningSandbox`` hops onto that loop for its reads and writes).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterable, Mapping

from devkit.sandbox._trengo_model import JSONObject, JSONValue, TrengoData
from devkit.sandbox._trengo_options import FaultKnobs, SandboxClock, SandboxOptions
from devkit.sandbox._trengo_profiles import ProfileBook
from devkit.sandbox._trengo_traffic import FixedWindowLimiter, RequestRecorder

_TRANSIENT_KNOBS = ("outage_seconds", "storm_429_requests", "hang")


class SandboxState:
    """Everything the sandbox holds; the aiohttp app keeps one under ``STATE_KEY``."""

    def __init__(self, options: SandboxOptions, clock: SandboxClock) -> None:
        self.options = options
        self.clock = clock
        self.data = TrengoData(options.channels, options.custom_fields, options.labels)
        self.profiles = ProfileBook()
        self.limiter = FixedWindowLimiter(clock.monotonic, clock.wall)
        self.recorder = RequestRecorder(options.max_recorded_requests)
        self.knobs = options.fault_knobs()
        self.rng = random.Random(options.seed)
        self.outage_until = -math.inf
        self.storm_remaining = 0
        self._hang_release = asyncio.Event()
        self._start_transient_faults(_TRANSIENT_KNOBS)

    def apply_faults(self, update: Mapping[str, object]) -> FaultKnobs:
        """Change the named knobs (validated; ``pydantic.ValidationError`` if wrong).

        Naming ``outage_seconds`` starts an outage of that length from now (0 ends one), naming
        ``storm_429_requests`` answers that many next requests with 429, ``hang: false`` releases
        the requests held by a hang.
        """
        self.knobs = FaultKnobs.model_validate(self.knobs.model_dump() | dict(update))
        self._start_transient_faults(update.keys())
        return self.knobs

    def reset(self, *, restore_config: bool = False) -> None:
        """Forget contacts, tickets, profiles, recording, rate windows and transient faults.

        The knobs stay as they are, unless ``restore_config`` puts back the start options
        (including their outage, 429 storm and hang). The error RNG is re-seeded.
        """
        self.data.clear()
        self.profiles.clear()
        self.limiter.clear()
        self.recorder.clear()
        self.rng.seed(self.options.seed)
        self.outage_until = -math.inf
        self.storm_remaining = 0
        if restore_config:
            self.knobs = self.options.fault_knobs()
            self._start_transient_faults(_TRANSIENT_KNOBS)

    def outage_active(self) -> bool:
        """True while an outage window is open."""
        return self.clock.monotonic() < self.outage_until

    def take_storm_request(self) -> bool:
        """True (and one less to go) while a 429 storm lasts."""
        if self.storm_remaining <= 0:
            return False
        self.storm_remaining -= 1
        return True

    async def wait_for_hang_release(self) -> None:
        """Hold a request until the hang is switched off or the sandbox shuts down."""
        await self._hang_release.wait()

    def release_hung_requests(self) -> None:
        """Let every held request go (they are answered 503)."""
        self._hang_release.set()
        self._hang_release = asyncio.Event()

    def snapshot(self) -> JSONObject:
        """The account, its records, counts and configuration as JSON (``GET /__admin/state``)."""
        data = self.data
        return {
            "channels": [channel.to_json() for channel in data.channels.values()],
            "custom_fields": [
                custom_field.to_json() for custom_field in data.custom_fields.values()
            ],
            "labels": [label.to_json() for label in data.labels.values()],
            "contacts": list[JSONValue](self.contacts_json()),
            "tickets": list[JSONValue](self.tickets_json()),
            "profiles": list[JSONValue](self.profiles_json()),
            "counts": {
                "contacts": len(data.contacts),
                "tickets": len(data.tickets),
                "messages": data.message_count,
                "profiles": len(self.profiles.by_id),
                "requests": self.recorder.total,
            },
            "request_counts": [
                {"method": method, "route": route, "status": status, "count": count}
                for (method, route, status), count in sorted(self.recorder.counts.items())
            ],
            "config": self.config_json(),
        }

    def contacts_json(self) -> list[JSONObject]:
        """Every contact in its detail view (with ``groups`` and field values)."""
        return [contact.to_json(with_details=True) for contact in self.data.contacts.values()]

    def tickets_json(self) -> list[JSONObject]:
        """Every ticket, with its ``labels`` and ``messages``."""
        return [ticket.to_json(with_messages=True) for ticket in self.data.tickets.values()]

    def profiles_json(self) -> list[JSONObject]:
        """Every profile, with its field values and ``contacts``."""
        return [profile.to_json() for profile in self.profiles.by_id.values()]

    def config_json(self) -> JSONObject:
        """The knobs in force, the transient faults still running, and the start-only options."""
        config: JSONObject = self.knobs.model_dump(mode="json")
        config["outage_remaining_seconds"] = max(0.0, self.outage_until - self.clock.monotonic())
        config["storm_429_remaining"] = self.storm_remaining
        config["seed"] = self.options.seed
        config["max_recorded_requests"] = self.options.max_recorded_requests
        return config

    def _start_transient_faults(self, named_knobs: Iterable[str]) -> None:
        named = set(named_knobs)
        if "outage_seconds" in named:
            self.outage_until = self.clock.monotonic() + self.knobs.outage_seconds
        if "storm_429_requests" in named:
            self.storm_remaining = self.knobs.storm_429_requests
        if "hang" in named and not self.knobs.hang:
            self.release_hung_requests()
