"""The demo's settings: production variables left in the shell never reach them."""

from __future__ import annotations

import pytest

from devkit.demo import demo_settings
from devkit.sandbox.broker import KafkaTarget

SANDBOX_URL = "http://127.0.0.1:8765/api/v2"
PRODUCTION = {
    "TRENGO_PROCESSOR_TRENGO__BASE_URL": "https://app.trengo.com/api/v2",
    "TRENGO_PROCESSOR_DESTINATION__APITOKEN": "production-token",
    "TRENGO_PROCESSOR_DESTINATION__CHANNELID": "999",
    "TRENGO_PROCESSOR_KAFKA__BOOTSTRAP_SERVERS": "kafka.prod.example:9092",
    "TRENGO_PROCESSOR_KAFKA__TOPIC": "rudderstack.events",
    "TRENGO_PROCESSOR_KAFKA__GROUP_ID": "trengo-processor",
    "TRENGO_PROCESSOR_SERVER__HOST": "0.0.0.0",
}


def test_production_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    kafka = KafkaTarget.of_kind("127.0.0.1:19092", "embedded")

    settings = demo_settings(kafka, SANDBOX_URL)

    assert settings.trengo.base_url == SANDBOX_URL
    assert settings.api_token != "production-token"
    assert settings.destination.channelId != "999"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.kafka.topic.startswith("rudderstack.events.")  # a topic of this run only
    assert settings.kafka.group_id.startswith("trengo-processor-demo-")
    assert settings.server.host == "127.0.0.1"
