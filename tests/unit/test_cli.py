"""The command line in-process: check-config, render, and exit status 2 for user mistakes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from processor.cli import main

TOKEN = "secret-token-7f3a"
CONFIG = f"""
trengo: {{base_url: "https://app.trengo.com/api/v2"}}
destination:
  apiToken: {TOKEN}
  channelId: "650577"
  channelIdentifier: email
  eventTemplateMap:
    - {{from: "Order Completed", to: "{{{{ event }}}} from our store"}}
    - {{from: "Product Purchased", to: "Product was of value:{{{{ revenue }}}}"}}
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRENGO_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def event_file(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(fields), encoding="utf-8")
    return path


def test_check_config_accepts_a_good_config(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(config)]) == 0
    assert "config OK" in capsys.readouterr().out


def test_a_template_that_does_not_compile_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        'destination: {apiToken: t, channelId: "1", eventTemplateMap: [{from: A, to: "{{ x"}]}\n',
        encoding="utf-8",
    )
    assert main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("config error: destination.eventTemplateMap[0].to:")
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("properties", "event", "subject"),
    [
        ({"revenue": 5000}, "Product Purchased", "Product was of value:5000"),
        ({"sku": "K-1"}, "Order Completed", "Order Completed from our store"),
    ],
)
def test_render_shows_the_exact_requests_of_the_seed_examples(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    properties: dict[str, object],
    event: str,
    subject: str,
) -> None:
    path = event_file(
        tmp_path,
        type="track",
        event=event,
        userId="u1",
        properties=properties,
        context={"traits": {"email": "Ann+shop@example.com"}},
    )
    assert main(["render", "--config", str(config), str(path)]) == 0
    out = capsys.readouterr().out
    assert "GET https://app.trengo.com/api/v2/contacts?page=1&term=Ann%2Bshop@example.com" in out
    assert "POST https://app.trengo.com/api/v2/tickets" in out
    body = {"contact_id": "{contact_id}", "channel_id": "650577", "subject": subject}
    assert f"body: {json.dumps(body)}" in out
    assert TOKEN not in out


def test_render_shows_a_known_contact_identify_as_one_update(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = event_file(
        tmp_path,
        type="identify",
        userId="u1",
        traits={"name": "Ann Lee"},
        context={"externalId": [{"type": "trengoContactId", "id": 90002431001}]},
    )
    assert main(["render", "--config", str(config), str(path)]) == 0
    out = capsys.readouterr().out
    assert "1. PUT https://app.trengo.com/api/v2/contacts/90002431001" in out
    assert 'body: {"name": "Ann Lee"}' in out
    assert "2." not in out


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"event": "x"}, "rejected at validate: Event type is required"),
        (
            {"type": "track", "event": "Stress test4", "userId": "u"},
            "skipped at filter (unmapped_event): Stress test4 is not present in Event-Map",
        ),
        ({"type": "page", "userId": "u"}, "skipped at filter (message_type): Message type page"),
        (
            {"type": "identify", "userId": "u", "integrations": {"All": False}},
            "skipped at filter (integrations): integrations object disables Trengo",
        ),
    ],
)
def test_render_explains_a_rejection(
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fields: dict[str, object],
    expected: str,
) -> None:
    path = event_file(tmp_path, **fields)
    assert main(["render", "--config", str(config), str(path)]) == 0
    out = capsys.readouterr().out
    assert expected in out
    assert "requests: none" in out
    if "skipped" in expected:
        assert "no Trengo call would be made" in out
        assert "dead-letter" not in out


def test_render_of_a_missing_event_file_is_a_usage_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--config", str(config), str(tmp_path / "none.json")]) == 2
    assert "cannot read event file" in capsys.readouterr().err


RUDDERSTACK_EXPORT = Path(__file__).parent.parent / "fixtures" / "rudderstack-export.yaml"


def test_check_config_accepts_a_rudderstack_export_and_says_which_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--config", str(RUDDERSTACK_EXPORT)]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out
    assert (
        "consent: consentManagement 3 (the 'web' entry), oneTrustCookieCategories 1 "
        "(the 'web' entry), ketchConsentPurposes 1 (the 'web' entry)"
    ) in out


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        pytest.param(
            "whitelistedEvents: [{eventName: a}]",
            "destination.whitelistedEvents: unknown key (a RudderStack device-mode setting",
            id="device-mode-key-hint",
        ),
        pytest.param(
            "consentManagment: []", "destination.consentManagment: unknown key", id="typo"
        ),
        pytest.param(
            "connectionMode: {web: cloud, android: device}",
            "destination.connectionMode: only cloud mode exists for Trengo, got cloud, device",
            id="device-mode",
        ),
        pytest.param(
            "connectionMode: hybrid",
            "destination.connectionMode: only cloud mode exists for Trengo, got hybrid",
            id="plain-mode",
        ),
        pytest.param(
            "ketchConsentPurposes: {web: [], ios: []}",
            "destination.ketchConsentPurposes: one entry per source type (ios, web) and none is "
            "'cloud'",
            id="ambiguous-source-type",
        ),
        pytest.param(
            "consentManagement: [{provider: 7, consents: [{consent: [1]}]}]",
            "destination.consentManagement[0].provider",
            id="odd-types",
        ),
        pytest.param(
            "oneTrustCookieCategories: {cloud: 5}",
            "destination.oneTrustCookieCategories",
            id="cloud-entry-not-a-list",
        ),
    ],
)
def test_rudderstack_keys_that_cannot_be_honoured_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], destination: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f'destination: {{apiToken: t, channelId: "1", {destination}}}\n', "utf-8")

    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_the_cloud_entry_wins_and_plain_arrays_need_no_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        'destination: {apiToken: t, channelId: "1",'
        " ketchConsentPurposes: {web: [{purpose: a}], cloud: [{purpose: b}, {purpose: c}]},"
        " oneTrustCookieCategories: [{oneTrustCookieCategory: C1}]}\n",
        "utf-8",
    )

    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "oneTrustCookieCategories 1, ketchConsentPurposes 2 (the 'cloud' entry)" in out
