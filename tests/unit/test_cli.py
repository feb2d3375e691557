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


def test_check_config_refuses_overriding_the_manual_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "auto-commit.yaml"
    path.write_text(
        CONFIG + "kafka: {settings: {enable.auto.commit: true, security.protocol: SSL}}\n",
        encoding="utf-8",
    )
    assert main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("config error: kafka.settings: 'enable.auto.commit' may not")
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
        (
            {"type": "track", "event": "Stress test4", "userId": "u"},
            "skipped at filter (unmapped_event): event is not present in Event-Map template keys",
        ),
        ({"type": "page", "userId": "u"}, "skipped at filter (message_type)"),
        (
            {"type": "track", "event": "Order Completed", "integrations": {"Trengo": False}},
            "skipped at filter (integrations)",
        ),
        ({"event": "x"}, "rejected at validate: Event type is required"),
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


def test_render_of_a_missing_event_file_is_a_usage_error(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", "--config", str(config), str(tmp_path / "none.json")]) == 2
    assert "cannot read event file" in capsys.readouterr().err


EXPORT = Path(__file__).parent.parent / "fixtures" / "rudderstack-trengo-destination.json"


def export_config(tmp_path: Path) -> Path:
    path = tmp_path / "export.yaml"
    path.write_text(f"destination: {EXPORT.read_text()}", encoding="utf-8")
    return path


def test_check_config_accepts_a_rudderstack_export_and_says_which_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(export_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out
    for key in ("connectionMode", "consentManagement", "oneTrustCookieCategories"):
        assert f"destination.{key}: using the 'web' entry" in out


@pytest.mark.parametrize(
    ("management", "expected"),
    [
        ({"provider": "oneTrust", "deniedConsentIds": ["C0004"]}, "skipped at filter (consent)"),
        ({"provider": "ketch", "deniedConsentIds": ["analytics"]}, "skipped at filter (consent)"),
        ({"provider": "ketch", "deniedConsentIds": ["marketing"]}, "1. GET"),
    ],
)
def test_render_applies_the_exported_consent_settings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    management: dict[str, object],
    expected: str,
) -> None:
    event = event_file(
        tmp_path,
        type="track",
        event="Order Completed",
        userId="u",
        properties={"order_id": 7},
        context={"traits": {"email": "a@example.com"}, "consentManagement": management},
    )
    assert main(["render", "--config", str(export_config(tmp_path)), str(event)]) == 0
    assert expected in capsys.readouterr().out


def test_check_config_refuses_plain_http_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "http.yaml"
    path.write_text(CONFIG.replace("https://app.trengo.com", "http://app.trengo.com"), "utf-8")
    assert main(["check-config", "--config", str(path)]) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1
    assert error_lines[0].startswith("config error: trengo.base_url: http:// would send")
    assert "trengo.allow_insecure_http" in error_lines[0]
