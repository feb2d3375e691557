"""The sandbox's public entry points: RunningSandbox's lifecycle, ``serve`` and the CLI flags."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pydantic
import pytest

from devkit.sandbox.trengo import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    DEFAULT_LABELS,
    DEFAULT_PORT,
    DEFAULT_TOKEN,
    FIRST_LABEL_ID,
    RunningSandbox,
    SandboxChannel,
    SandboxClock,
    SandboxCustomField,
    SandboxOptions,
    add_sandbox_arguments,
    options_from_args,
)

TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05
SERVE_SCRIPT = """
import sys
from devkit.sandbox.trengo import SandboxOptions, serve
serve(SandboxOptions(), "127.0.0.1", int(sys.argv[1]))
"""


def test_running_sandbox_serves_on_a_free_loopback_port() -> None:
    with RunningSandbox() as sandbox:
        health = httpx.get(f"{sandbox.admin_url}/health", timeout=TIMEOUT_SECONDS)
        contacts = httpx.get(
            f"{sandbox.base_url}/contacts",
            headers={"Authorization": f"Bearer {sandbox.token}"},
            timeout=TIMEOUT_SECONDS,
        )

    assert sandbox.port > 0
    assert sandbox.base_url == f"http://127.0.0.1:{sandbox.port}/api/v2"
    assert (health.status_code, contacts.status_code, sandbox.token) == (200, 200, DEFAULT_TOKEN)


def test_accessors_list_contacts_tickets_and_profiles() -> None:
    with (
        RunningSandbox() as sandbox,
        httpx.Client(
            base_url=sandbox.base_url,
            headers={"Authorization": f"Bearer {sandbox.token}"},
            timeout=TIMEOUT_SECONDS,
        ) as api,
    ):
        channel_id = DEFAULT_CHANNELS[0].id
        contact = api.post(f"/channels/{channel_id}/contacts", json={"identifier": "a@b.c"})
        contact_id = contact.json()["id"]
        ticket = api.post("/tickets", json={"channel_id": channel_id, "contact_id": contact_id})
        api.post(f"/tickets/{ticket.json()['id']}/labels", json={"label_id": FIRST_LABEL_ID})
        profile = api.post("/profiles", json={"name": "Acme"})
        api.post(
            f"/profiles/{profile.json()['id']}/contacts",
            json={"contact_id": contact_id, "type": "EMAIL"},
        )
        snapshot = sandbox.snapshot()

        contacts, tickets, profiles = sandbox.contacts(), sandbox.tickets(), sandbox.profiles()

    assert (contacts, tickets, profiles) == (
        snapshot["contacts"],
        snapshot["tickets"],
        snapshot["profiles"],
    )
    assert [c["id"] for c in contacts] == [contact_id]
    assert tickets[0]["labels"] == [
        {"id": FIRST_LABEL_ID, "name": "lead", "color": "#4caf50", "sort_order": 1}
    ]
    assert profiles[0]["contacts"] == [{"id": contact_id, "name": None, "identifier": "a@b.c"}]


def test_set_faults_raises_validation_errors_in_the_caller() -> None:
    with RunningSandbox() as sandbox, pytest.raises(pydantic.ValidationError):
        sandbox.set_faults(error_rate=2)


def signalling_clock(arrived: threading.Event) -> SandboxClock:
    """A clock whose (latency) sleep tells the test a request reached the sandbox."""

    async def sleep(_: float) -> None:
        arrived.set()
        await asyncio.sleep(0)

    return SandboxClock(time.monotonic, time.time, sleep)


def test_close_answers_held_requests_then_stops_listening() -> None:
    arrived = threading.Event()
    sandbox = RunningSandbox(SandboxOptions(hang=True, latency_ms=1), signalling_clock(arrived))
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    with ThreadPoolExecutor(max_workers=1) as pool, sandbox:
        held = pool.submit(
            httpx.get, f"{sandbox.base_url}/contacts", headers=headers, timeout=TIMEOUT_SECONDS
        )
        assert arrived.wait(TIMEOUT_SECONDS)

    assert held.result(TIMEOUT_SECONDS).status_code == 503
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sandbox.admin_url}/health", timeout=TIMEOUT_SECONDS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/__admin/health", timeout=TIMEOUT_SECONDS)
        except httpx.TransportError:
            time.sleep(POLL_SECONDS)
        else:
            return
    pytest.fail("the sandbox process did not become healthy")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_a_signal(stop_signal: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, str(port)], stdout=subprocess.PIPE
    )
    try:
        wait_until_healthy(process, port)
        process.send_signal(stop_signal)
        stdout, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 0
    assert b"/api/v2" in stdout


def parse(*flags: str) -> SandboxOptions:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    return options_from_args(parser.parse_args(flags))


def test_no_flags_give_the_default_options() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    args = parser.parse_args([])

    assert options_from_args(args) == SandboxOptions()
    assert (args.host, args.port) == ("127.0.0.1", DEFAULT_PORT)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--token", "a", "--token", "b"), {"tokens": ("a", "b")}),
        (("--denied-token", "x"), {"denied_tokens": ("x",)}),
        (("--requests-per-minute", "0"), {"requests_per_minute": 0}),
        (("--latency-ms", "12.5", "--error-rate", "0.1"), {"latency_ms": 12.5, "error_rate": 0.1}),
        (("--seed", "7", "--hang"), {"seed": 7, "hang": True}),
        (
            ("--outage-seconds", "30", "--storm-429-requests", "4", "--storm-retry-after", "9"),
            {"outage_seconds": 30, "storm_429_requests": 4, "storm_retry_after_seconds": 9},
        ),
        (
            ("--channel", "7:sms:Texts", "--channel", "8:EMAIL"),
            {
                "channels": (
                    *DEFAULT_CHANNELS,
                    SandboxChannel(id=7, type="SMS", title="Texts"),
                    SandboxChannel(id=8, type="EMAIL", title="EMAIL"),
                )
            },
        ),
        (("--max-recorded-requests", "10"), {"max_recorded_requests": 10}),
        (
            ("--custom-field", "7:Profile:Account Manager", "--custom-field", "8:contact:Tier"),
            {
                "custom_fields": (
                    *DEFAULT_CUSTOM_FIELDS,
                    SandboxCustomField(id=7, type="PROFILE", title="Account Manager"),
                    SandboxCustomField(id=8, type="CONTACT", title="Tier"),
                )
            },
        ),
        (("--label", "refund", "--label", "b2b"), {"labels": (*DEFAULT_LABELS, "refund", "b2b")}),
        (
            ("--forbidden-channel", "650578", "--forbidden-channel", "7"),
            {"forbidden_channels": (650578, 7)},
        ),
        (
            ("--custom-field", "9:ticket:Order"),
            {
                "custom_fields": (
                    *DEFAULT_CUSTOM_FIELDS,
                    SandboxCustomField(id=9, type="TICKET", title="Order"),
                )
            },
        ),
    ],
)
def test_flags_set_options(flags: tuple[str, ...], expected: dict[str, object]) -> None:
    assert parse(*flags) == SandboxOptions.model_validate(expected)


@pytest.mark.parametrize(
    "flags",
    [
        ("--channel", "x:EMAIL"),
        ("--channel", "7:FAX"),
        ("--channel", "7"),
        ("--custom-field", "x:contact:A"),
        ("--custom-field", "7:deal:A"),
        ("--custom-field", "7:contact"),
        ("--forbidden-channel", "email"),
    ],
)
def test_malformed_channel_or_custom_field_flag_is_a_usage_error(flags: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*flags)


@pytest.mark.parametrize(
    "flags",
    [
        ("--error-rate", "2"),
        ("--latency-ms", "-1"),
        ("--channel", str(DEFAULT_CHANNELS[0].id) + ":SMS"),
        ("--custom-field", f"{DEFAULT_CUSTOM_FIELDS[0].id}:contact:Again"),
        ("--label", DEFAULT_LABELS[0].upper()),
    ],
)
def test_out_of_range_flags_raise_value_error(flags: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        parse(*flags)
