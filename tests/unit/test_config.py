"""Config loading: YAML + environment, the token's three sources, one clear line per mistake."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from processor.config import ConfigError, Settings, load_settings

MINIMAL = """
destination:
  apiToken: yaml-token
  channelId: "650577"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own TRENGO_* variables must not leak into these tests."""

    for name in list(os.environ):
        if name.startswith("TRENGO_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_fill_everything_but_the_destination(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.kafka.topic == "rudderstack.events"
    assert settings.kafka.dead_letter_topic == "rudderstack.events.dlq"
    assert settings.trengo.requests_per_minute == 120
    assert settings.delivery.max_in_flight == 256
    assert settings.delivery.shutdown_timeout_seconds == 25
    assert settings.server.port == 9400
    assert settings.destination.channelIdentifier == "email"
    assert settings.destination.enableDedup is True  # deliberate: RudderStack's UI default
    assert settings.destination.customFieldMap == ()
    assert settings.destination.enableProfiles is False
    assert settings.destination.profileKeyFieldId is None
    assert settings.api_token == "yaml-token"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.topic = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "read"),
    [
        (
            "TRENGO_PROCESSOR_KAFKA__BOOTSTRAP_SERVERS",
            "b1:9092",
            lambda s: s.kafka.bootstrap_servers,
        ),
        (
            "TRENGO_PROCESSOR_TRENGO__REQUESTS_PER_MINUTE",
            "600",
            lambda s: s.trengo.requests_per_minute,
        ),
        ("TRENGO_PROCESSOR_DESTINATION__CHANNELID", "999", lambda s: s.destination.channelId),
        ("TRENGO_PROCESSOR_DELIVERY__MAX_IN_FLIGHT", "8", lambda s: s.delivery.max_in_flight),
        ("TRENGO_PROCESSOR_LOG__FORMAT", "console", lambda s: s.log.format),
    ],
)
def test_environment_overrides_the_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    read: object,
) -> None:
    monkeypatch.setenv(variable, value)
    settings = load_settings(write(tmp_path, MINIMAL))
    assert callable(read)
    assert str(read(settings)) == value


def test_kafka_settings_merge_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENGO_PROCESSOR_KAFKA__SETTINGS__sasl.username", "svc")
    text = MINIMAL + "kafka:\n  settings:\n    security.protocol: SASL_SSL\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.kafka.settings == {"security.protocol": "SASL_SSL", "sasl.username": "svc"}


@pytest.mark.parametrize("source", ["env", "file", "env-over-file"])
def test_token_from_environment_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n", encoding="utf-8")
    text = 'destination: {channelId: "1"}\n'
    if source in {"file", "env-over-file"}:
        text += f"trengo: {{api_token_file: {token_file}}}\n"
    if source in {"env", "env-over-file"}:
        monkeypatch.setenv("TRENGO_API_TOKEN", "env-token")
    settings = load_settings(write(tmp_path, text))
    assert settings.api_token == ("file-token" if source == "file" else "env-token")


def test_token_never_shows_in_the_settings_repr(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert "yaml-token" not in repr(settings)
    assert "yaml-token" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "destination: {apiToken: t}\n",
            "destination.channelId: Field required",
            id="missing-channel-id",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "  "}\n',
            "destination.channelId: must not be empty",
            id="empty-channel-id",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", channelIdentifier: fax}\n',
            "destination.channelIdentifier: Input should be 'email' or 'phone'",
            id="bad-channel-identifier",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\nkafka: {colour: blue}\n',
            "kafka.colour: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\nspeed: fast\n',
            "speed: unknown key",
            id="unknown-section",
        ),
        pytest.param(
            'destination: {channelId: "1"}\n',
            "destination.apiToken: missing (set it, TRENGO_API_TOKEN, or trengo.api_token_file)",
            id="no-token",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\ntrengo: {base_url: app.trengo.com}\n',
            "trengo.base_url: must start with http:// or https://",
            id="base-url-scheme",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\ndelivery: {max_in_flight: 0}\n',
            "delivery.max_in_flight: Input should be greater than or equal to 1",
            id="out-of-range",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", enableProfiles: true}\n',
            "destination.profileKeyFieldId: required when enableProfiles is true (the id of the "
            "Trengo profile custom field holding the groupId)",
            id="profiles-without-key-field",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", profileKeyFieldId: 0}\n',
            "destination.profileKeyFieldId: Input should be greater than or equal to 1",
            id="key-field-below-one",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", profileKeyFieldId: yes}\n',
            "destination.profileKeyFieldId: must be an integer, not a boolean",
            id="key-field-boolean",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", customFieldMap: [{trait: " "}]}\n',
            "destination.customFieldMap[0].trait: must not be empty; "
            "destination.customFieldMap[0].fieldId: Field required",
            id="custom-field-blank-trait-no-id",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1",'
            " customFieldMap: [{trait: plan, fieldId: 0}]}\n",
            "destination.customFieldMap[0].fieldId: Input should be greater than or equal to 1",
            id="custom-field-id-below-one",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1", customFieldMap: [{trait: plan, fieldId: 7},'
            " {trait: tier, fieldId: 8}, {trait: level, fieldId: 7}]}\n",
            "destination.customFieldMap: fieldId 7 is mapped twice (entries 0 and 2)",
            id="custom-field-mapped-twice",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1",'
            " eventTemplateMap: [{from: A, labels: [vip, '']}]}\n",
            "destination.eventTemplateMap[0].labels[1]: must not be empty",
            id="empty-label",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1",'
            " eventTemplateMap: [{from: A, messageType: sms}]}\n",
            "destination.eventTemplateMap[0].messageType: Input should be 'note' or 'message'",
            id="bad-message-type",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\n'
            "kafka: {settings: {enable.auto.commit: true}}\n",
            "kafka.settings: 'enable.auto.commit' may not be overridden: offsets are committed "
            "only after an event is done",
            id="auto-commit-override",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\n'
            "kafka: {settings: {enable.auto.offset.store: true}}\n",
            "kafka.settings: 'enable.auto.offset.store' may not be overridden",
            id="auto-offset-store-override",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\nkafka: {settings: {acks: 1}}\n',
            "kafka.settings: 'acks' may not be overridden: a dead letter counts only once",
            id="acks-override",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\n'
            "kafka: {settings: {Enable.Idempotence: false}}\n",
            "kafka.settings: 'Enable.Idempotence' may not be overridden",
            id="idempotence-override-any-case",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\n'
            "kafka: {settings: {isolation.level: read_uncommitted}}\n",
            "kafka.settings: 'isolation.level' may not be overridden",
            id="isolation-override",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\n'
            "kafka: {settings: {request.required.acks: 1}}\n",
            "kafka.settings: 'request.required.acks' may not be overridden",
            id="acks-alias-override",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\nserver: {stall_seconds: 600}\n',
            "server.stall_seconds: must be above 610 (twice delivery.retry_cap_seconds plus "
            "trengo.timeout_seconds), or a backoff would count as a stall",
            id="stall-within-a-backoff",
        ),
        pytest.param(
            'destination: {apiToken: t, channelId: "1"}\ndelivery: {retry_cap_seconds: 3600}\n',
            "server.stall_seconds: must be above 7210",
            id="retry-cap-above-the-stall-bound",
        ),
        pytest.param("- just\n- a list\n", "the top level must be a mapping", id="not-a-mapping"),
        pytest.param("destination: [\n", "bad YAML", id="bad-yaml"),
    ],
)
def test_mistakes_name_the_key_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, text))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml")
    text = f'destination: {{channelId: "1"}}\ntrengo: {{api_token_file: {tmp_path / "nope"}}}\n'
    with pytest.raises(ConfigError, match=r"trengo\.api_token_file: cannot read"):
        load_settings(write(tmp_path, text))


def test_rudderstack_template_map_keys_are_accepted(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  eventTemplateMap:\n"
        '    - {from: "Order Completed", to: "Order {{ order_id }}"}\n'
        '    - {from: "Order Completed", to: "later wins"}\n'
        '    - {from: "", to: "ignored"}\n'
    )
    settings = load_settings(write(tmp_path, text))
    mapping = settings.destination.template_for("Order Completed")
    assert mapping is not None and mapping.to == "later wins"
    assert settings.destination.template_for("") is None
    assert isinstance(settings, Settings)


def test_ticket_follow_ups_and_custom_fields_are_read(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  eventTemplateMap:\n"
        '    - {from: A, labels: [" VIP ", order, vip], message: "Hi {{ name }}"}\n'
        "    - {from: B, messageType: message}\n"
        "  customFieldMap: [{trait: plan, fieldId: 1001}, {trait: company, fieldId: 1002}]\n"
    )
    destination = load_settings(write(tmp_path, text)).destination
    first, second = destination.eventTemplateMap
    assert (first.labels, first.message, first.messageType) == (
        ("VIP", "order"),
        "Hi {{ name }}",
        "note",
    )
    assert (second.labels, second.message, second.messageType) == ((), None, "message")
    assert [(m.trait, m.fieldId) for m in destination.customFieldMap] == [
        ("plan", 1001),
        ("company", 1002),
    ]


@pytest.mark.parametrize(
    ("variables", "key_field_id"),
    [
        pytest.param({"ENABLEPROFILES": "true", "PROFILEKEYFIELDID": "2001"}, 2001, id="both"),
        pytest.param({"PROFILEKEYFIELDID": "2001"}, 2001, id="key-without-profiles"),
    ],
)
def test_profiles_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], key_field_id: int
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"TRENGO_PROCESSOR_DESTINATION__{name}", value)
    destination = load_settings(write(tmp_path, MINIMAL)).destination
    assert destination.enableProfiles is ("ENABLEPROFILES" in variables)
    assert destination.profileKeyFieldId == key_field_id


def test_profiles_switched_on_from_the_environment_still_need_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENGO_PROCESSOR_DESTINATION__ENABLEPROFILES", "true")
    with pytest.raises(ConfigError, match=r"^destination\.profileKeyFieldId: required"):
        load_settings(write(tmp_path, MINIMAL))


def test_transformation_credentials_merge_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENGO_PROCESSOR_TRANSFORMATION__CREDENTIALS__apiKey", "from-env")
    text = MINIMAL + "transformation:\n  credentials:\n    region: eu\n"
    settings = load_settings(write(tmp_path, text))
    # Environment names are case-insensitive, so a key set there arrives lowercased.
    assert settings.transformation.credentials == {"region": "eu", "apikey": "from-env"}


EXPORT = Path(__file__).parent.parent / "fixtures" / "rudderstack-trengo-destination.json"


def test_a_rudderstack_export_is_accepted_as_pasted(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, f"destination: {EXPORT.read_text()}"))
    destination = settings.destination
    assert destination.consent_items("oneTrustCookieCategories") == (
        {"oneTrustCookieCategory": "C0004"},
    )
    providers = [item["provider"] for item in destination.consent_items("consentManagement")]
    assert providers == ["oneTrust", "ketch"]
    assert destination.consent_items("ketchConsentPurposes") == ({"purpose": "analytics"},)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        pytest.param([{"purpose": "a"}], ({"purpose": "a"},), id="plain-list"),
        pytest.param({"web": [{"purpose": "a"}]}, ({"purpose": "a"},), id="only-entry"),
        pytest.param(
            {"web": [{"purpose": "w"}], "cloud": [{"purpose": "c"}]},
            ({"purpose": "c"},),
            id="cloud-entry-wins",
        ),
        pytest.param({}, (), id="empty-object"),
    ],
)
def test_consent_settings_in_both_shapes(
    tmp_path: Path, setting: object, expected: tuple[dict[str, str], ...]
) -> None:
    text = json.dumps({"apiToken": "t", "channelId": "1", "ketchConsentPurposes": setting})
    settings = load_settings(write(tmp_path, f"destination: {text}\n"))
    assert settings.destination.consent_items("ketchConsentPurposes") == expected


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        pytest.param(
            "eventFilteringOption: whitelistedEvents",
            "destination: eventFilteringOption: a device-mode setting",
            id="device-mode-key",
        ),
        pytest.param(
            "blacklistedEvents: [{eventName: Page}]",
            "destination: blacklistedEvents: a device-mode setting",
            id="device-mode-list",
        ),
        pytest.param(
            "connectionMode: device",
            "destination.connectionMode: 'device' is not supported: Trengo only has cloud mode",
            id="device-mode",
        ),
        pytest.param(
            "connectionMode: {web: cloud, ios: hybrid}",
            "'hybrid' is not supported",
            id="per-source-mode",
        ),
        pytest.param(
            "consentManagement: {web: [], android: []}",
            "consentManagement: one entry per source type (android, web) and none for 'cloud'",
            id="ambiguous-source-types",
        ),
        pytest.param(
            "oneTrustCookieCategories: C0004",
            "destination.oneTrustCookieCategories",
            id="consent-not-a-list",
        ),
        pytest.param("enableDedupe: true", "enableDedupe", id="typo-still-an-error"),
    ],
)
def test_rudderstack_keys_outside_cloud_mode_are_config_errors(
    tmp_path: Path, destination: str, message: str
) -> None:
    text = f'destination:\n  apiToken: t\n  channelId: "1"\n  {destination}\n'
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, text))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("base_url", "allow_insecure_http", "accepted"),
    [
        ("https://app.trengo.com/api/v2", False, True),
        ("http://app.trengo.com/api/v2", False, False),
        ("http://app.trengo.com/api/v2", True, True),
        ("http://127.0.0.1:8080/api/v2", False, True),
        ("http://127.9.9.9/api/v2", False, True),
        ("http://localhost:8080", False, True),
        ("http://[::1]:8080", False, True),
        ("http://10.0.0.1/api/v2", False, False),
        ("http://localhost.evil.example/api/v2", False, False),
        ("http://127.0.0.1.evil.example/api/v2", False, False),
    ],
)
def test_plain_http_only_for_loopback_or_when_allowed(
    tmp_path: Path, base_url: str, allow_insecure_http: bool, accepted: bool
) -> None:
    text = (
        MINIMAL
        + f"trengo: {{base_url: '{base_url}', allow_insecure_http: {allow_insecure_http}}}\n"
    )
    if accepted:
        assert load_settings(write(tmp_path, text)).trengo.base_url == base_url
        return
    with pytest.raises(ConfigError, match=r"^trengo\.base_url: http:// would send the API token"):
        load_settings(write(tmp_path, text))


def test_plain_http_refused_from_the_environment_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRENGO_PROCESSOR_TRENGO__BASE_URL", "http://app.trengo.com/api/v2")
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        load_settings(write(tmp_path, MINIMAL))


@pytest.mark.parametrize("source", ["yaml", "env", "env-prefixed", "file"])
def test_tokens_lose_surrounding_whitespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("  the-token\r\n", encoding="utf-8")
    text = {
        "yaml": 'destination: {apiToken: "the-token\\n", channelId: "1"}\n',
        "file": f'destination: {{channelId: "1"}}\ntrengo: {{api_token_file: {token_file}}}\n',
    }.get(source, 'destination: {channelId: "1"}\n')
    if source == "env":
        monkeypatch.setenv("TRENGO_API_TOKEN", "the-token\n")
    if source == "env-prefixed":
        monkeypatch.setenv("TRENGO_PROCESSOR_DESTINATION__APITOKEN", "\tthe-token \n")
    assert load_settings(write(tmp_path, text)).api_token == "the-token"


def test_a_blank_token_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRENGO_PROCESSOR_DESTINATION__APITOKEN", " \n")
    with pytest.raises(ConfigError, match=r"^destination\.apiToken: must not be blank$"):
        load_settings(write(tmp_path, 'destination: {channelId: "1"}\n'))


KAFKA_SECRETS = {
    "sasl.password": "pw-sasl-1",
    "ssl.key.password": "pw-key-2",
    "ssl.keystore.password": "pw-store-3",
    "sasl.oauthbearer.client.secret": "pw-oauth-4",
    "ssl.key.pem": "-----BEGIN PRIVATE KEY-----pem-5",
}


def test_kafka_credentials_are_masked_in_repr_and_listed_as_secrets(tmp_path: Path) -> None:
    settings_yaml = "".join(f'    "{key}": "{value}"\n' for key, value in KAFKA_SECRETS.items())
    text = MINIMAL + 'kafka:\n  settings:\n    "sasl.username": "alice"\n' + settings_yaml
    settings = load_settings(write(tmp_path, text))
    shown = repr(settings) + str(settings) + repr(settings.kafka)
    for value in KAFKA_SECRETS.values():
        assert value not in shown
    assert "alice" in shown  # only credentials are masked
    assert settings.kafka.settings["sasl.password"] == "pw-sasl-1"  # the client still gets it
    assert sorted(settings.secrets) == sorted(["yaml-token", *KAFKA_SECRETS.values()])


def test_a_kafka_credential_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    text = MINIMAL + 'kafka:\n  settings:\n    "sasl.password": ["hunter2-list"]\n'
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, text))
    assert "kafka.settings.sasl.password" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def settings_models() -> list[type[BaseModel]]:
    """Settings and every model nested in it, however deep (sections, map entries)."""
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Settings]
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            pending.extend(nested_models(field.annotation))
    return found


def nested_models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in nested_models(argument)]


def test_the_walk_reaches_the_nested_models() -> None:
    names = {model.__name__ for model in settings_models()}
    assert {"KafkaConfig", "DestinationConfig", "TemplateMapping", "CustomFieldMapping"} <= names


@pytest.mark.parametrize("model", settings_models(), ids=lambda model: model.__name__)
def test_every_config_field_has_a_one_line_description(model: type[BaseModel]) -> None:
    for name, field in model.model_fields.items():
        description = field.description or ""
        assert description.strip(), f"{model.__name__}.{name} has no description"
        assert "\n" not in description, f"{model.__name__}.{name}: one line"
        assert len(description) <= 90, f"{model.__name__}.{name}: keep it to one short line"
