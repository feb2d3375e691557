"""``check-config --online`` against the sandbox over real HTTP: one line per check, GET only."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from processor.cli import main
from processor.config import Settings
from processor.online_check import check_account
from processor.trengo.client import TrengoClient

EMAIL_CHANNEL, WHATSAPP_CHANNEL = "650577", "650578"
GOOD: dict[str, object] = {
    "channelId": EMAIL_CHANNEL,
    "channelIdentifier": "email",
    "customFieldMap": [{"trait": "plan", "fieldId": 1001}, {"trait": "company", "fieldId": 1002}],
    "enableProfiles": True,
    "profileKeyFieldId": 2001,
    "eventTemplateMap": [{"from": "Order Completed", "to": "Order", "labels": ["order", "VIP"]}],
}
ALL_GOOD = [
    "✓ token: accepted (GET /channels)",
    "✓ rate limit: 120 requests a minute (x-ratelimit-limit), 119 left in this window",
    "✓ channelId 650577: EMAIL channel 'Email'",
    "✓ customFieldMap fieldId 1001: CONTACT field 'Plan'",
    "✓ customFieldMap fieldId 1002: CONTACT field 'Company'",
    "✓ profileKeyFieldId 2001: PROFILE field 'External ID'",
    "✓ labels: all 2 exist (order, VIP)",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRENGO_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox(SandboxOptions()) as running:
        yield running


def check(
    sandbox_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    token: str = "sandbox-token",
    **changes: object,
) -> tuple[int, list[str]]:
    """Run ``check-config --online``; its exit code and the check lines it printed."""
    destination = {"apiToken": token, **GOOD, **changes}
    path = tmp_path / "config.yaml"
    config = {"trengo": {"base_url": sandbox_url, "timeout_seconds": 2}, "destination": destination}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    code = main(["check-config", "--online", "--config", str(path)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert token not in captured.out + captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("config OK")
    return code, lines[1:]


async def check_with(
    answer: Callable[[httpx.Request], httpx.Response], destination: dict[str, object]
) -> list[str]:
    """The check's lines against a mock Trengo."""
    settings = Settings(destination={"apiToken": "t", **destination})
    async with TrengoClient(
        "https://trengo.test/api/v2",
        "t",
        timeout_seconds=1,
        requests_per_minute=6000,
        transport=httpx.MockTransport(answer),
    ) as client:
        lines = await check_account(settings, client)
        return [line.render() for line in lines]


def run_check(
    sandbox: RunningSandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    **changes: object,
) -> tuple[int, list[str]]:
    """``check`` against a fresh sandbox; asserts that only GET requests reached it."""
    sandbox.reset(restore_config=True)
    outcome = check(sandbox.base_url, tmp_path, capsys, **changes)
    assert {request.method for request in sandbox.requests()} == {"GET"}
    return outcome


def test_a_config_that_fits_the_account_passes_every_check(
    sandbox: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_check(sandbox, tmp_path, capsys) == (0, ALL_GOOD)
    routes = [request.route for request in sandbox.requests()]
    assert routes == ["/api/v2/channels", "/api/v2/custom_fields", "/api/v2/labels"]
    assert sandbox.snapshot()["counts"] == {
        "contacts": 0,
        "tickets": 0,
        "messages": 0,
        "profiles": 0,
        "requests": 3,
    }


def test_a_refused_token_is_one_line_and_skips_the_rest(
    sandbox: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_check(sandbox, tmp_path, capsys, token="not-the-token")

    assert code == 2
    assert lines == [
        "✗ token: refused: list_channels: HTTP 401 Unauthorized: Unauthenticated.",
        "✗ other checks skipped: the first call failed",
    ]


@pytest.mark.parametrize(
    ("changes", "wrong_line"),
    [
        pytest.param(
            {"channelId": "999"},
            "✗ channelId 999: no such channel (GET /channels lists 2)",
            id="channel-missing",
        ),
        pytest.param(
            {"channelId": WHATSAPP_CHANNEL},
            "✗ channelId 650578: a WA_BUSINESS channel, but channelIdentifier email needs EMAIL",
            id="wrong-channel-type",
        ),
        pytest.param(
            {"channelIdentifier": "phone"},
            "✗ channelId 650577: a EMAIL channel, but channelIdentifier phone needs SMS or VOIP "
            "or WA_BUSINESS",
            id="email-channel-for-phone",
        ),
        pytest.param(
            {"customFieldMap": [{"trait": "plan", "fieldId": 1001}, {"trait": "x", "fieldId": 77}]},
            "✗ customFieldMap fieldId 77: no such custom field (GET /custom_fields)",
            id="custom-field-missing",
        ),
        pytest.param(
            {
                "customFieldMap": [
                    {"trait": "plan", "fieldId": 1001},
                    {"trait": "x", "fieldId": 3001},
                ]
            },
            "✗ customFieldMap fieldId 3001: 'Order reference' is a TICKET field, not a CONTACT "
            "field",
            id="custom-field-of-tickets",
        ),
        pytest.param(
            {"profileKeyFieldId": 1002},
            "✗ profileKeyFieldId 1002: 'Company' is a CONTACT field, not a PROFILE field",
            id="profile-key-a-contact-field",
        ),
        pytest.param(
            {
                "eventTemplateMap": [
                    {"from": "A", "to": "a", "labels": ["order"]},
                    {"from": "B", "to": "b", "labels": ["Returns", "vip"]},
                ]
            },
            "✗ labels: not in GET /labels: 'Returns'",
            id="label-missing",
        ),
    ],
)
def test_each_wrong_setting_is_its_own_failed_line(
    sandbox: RunningSandbox,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    wrong_line: str,
) -> None:
    code, lines = run_check(sandbox, tmp_path, capsys, **changes)

    assert code == 2
    assert [line for line in lines if line.startswith("✗")] == [wrong_line]


def test_checks_that_do_not_apply_cost_no_call(
    sandbox: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = {"customFieldMap": [], "enableProfiles": False, "profileKeyFieldId": None}
    code, lines = run_check(
        sandbox, tmp_path, capsys, eventTemplateMap=[{"from": "A", "to": "a"}], **bare
    )

    assert (code, lines) == (0, ALL_GOOD[:3])
    assert [request.route for request in sandbox.requests()] == ["/api/v2/channels"]


def test_a_failing_listing_fails_its_own_checks_only() -> None:
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        listed = {
            "/api/v2/channels": [{"id": 650577, "type": "EMAIL", "title": "Email"}],
            "/api/v2/custom_fields": [
                {"id": 1001, "title": "Plan", "type": "contact"},  # case does not matter
                {"id": 1002, "title": "Company", "type": "CONTACT"},
                {"id": 2001, "title": "External ID", "type": "PROFILE"},
            ],
        }.get(request.url.path)
        if listed is None:
            return httpx.Response(500, json={"message": "Server Error"})
        return httpx.Response(200, json={"data": listed, "links": {"next": None}})

    lines = asyncio.run(check_with(answer, GOOD))
    assert asked == ["GET /api/v2/channels", "GET /api/v2/custom_fields", "GET /api/v2/labels"]
    assert lines[3:6] == ALL_GOOD[3:6]
    assert lines[1] == (
        "✗ rate limit: Trengo sent no x-ratelimit-limit header (the limiter paces by "
        "trengo.requests_per_minute alone)"
    )
    assert (
        lines[6]
        == "✗ labels: no usable answer: list_labels: HTTP 500 Internal Server Error: Server Error"
    )


@pytest.mark.parametrize("fault", ["down", "5xx"])
def test_an_account_that_does_not_answer_is_a_failed_line_not_a_traceback(
    sandbox: RunningSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    sandbox.reset(restore_config=True)
    url = sandbox.base_url
    if fault == "down":
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{unused.getsockname()[1]}/api/v2"
    else:
        sandbox.set_faults(error_rate=1.0)

    code, lines = check(url, tmp_path, capsys)

    assert code == 2
    assert lines[0].startswith("✗ account: no usable answer: list_channels: ")
    assert lines[1:] == ["✗ other checks skipped: the first call failed"]


@pytest.mark.parametrize(
    ("channels_answer", "expected"),
    [
        pytest.param(
            {"channels": []},
            "✗ account: no usable answer: list_channels: unexpected response (no 'data' list)",
            id="no-data-list",
        ),
        pytest.param(
            {"data": ["junk", {"id": 650577}, {"type": "EMAIL"}], "links": {}},
            "✗ channelId 650577: a None channel, but channelIdentifier email needs EMAIL",
            id="channel-without-type",
        ),
    ],
)
def test_a_listing_of_the_wrong_shape_is_a_failed_line(
    channels_answer: dict[str, object], expected: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=channels_answer)

    lines = asyncio.run(check_with(answer, {"channelId": EMAIL_CHANNEL}))
    assert expected in lines
