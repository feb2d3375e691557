"""Configuration: one YAML file, every key overridable from the environment.

Sources, highest priority first: environment variables ``TRENGO_PROCESSOR_<SECTION>__<KEY>``,
the YAML file, the defaults below. The Trengo API token may also come from ``TRENGO_API_TOKEN``
or from a file (``trengo.api_token_file``, for a mounted Kubernetes Secret).

The ``destination`` section keeps RudderStack's destination config keys unchanged so a
RudderStack config can be pasted in as it is.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "TRENGO_PROCESSOR_"
TOKEN_ENV = "TRENGO_API_TOKEN"

KafkaSettingValue = str | int | float | bool
# librdkafka properties holding credentials: masked in repr, redacted from every log line.
SECRET_KAFKA_SETTINGS = frozenset(
    {
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
    }
)
MASKED = "**********"

# librdkafka settings the engine's guarantees rest on (DESIGN.md §3): kafka.settings may not
# override them. Each maps to why, for the one-line config error.
PROTECTED_KAFKA_SETTINGS = {
    "enable.auto.commit": "offsets are committed only after an event is done",
    "auto.commit.enable": "offsets are committed only after an event is done",  # librdkafka alias
    "enable.auto.offset.store": "offsets are stored only after an event is done",
    "acks": "a dead letter counts only once every in-sync replica has it (acks=all)",
    "request.required.acks": "a dead letter counts only once every in-sync replica has it",
    "enable.idempotence": "dead-letter retries must not write duplicates or reorder",
    "isolation.level": "records of aborted transactions must never be delivered",
}


class ConfigError(Exception):
    """A user mistake in the configuration: one line naming the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "rudderstack.events"
    group_id: str = "trengo-processor"
    dead_letter_topic: str = "rudderstack.events.dlq"
    commit_interval_ms: int = Field(default=1000, ge=10)
    revoke_timeout_ms: int = Field(default=10_000, ge=0)
    session_timeout_ms: int = Field(default=45_000, ge=500)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    settings: dict[str, KafkaSettingValue] = Field(default_factory=dict)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (self.masked_settings() if name == "settings" else value)

    def masked_settings(self) -> dict[str, KafkaSettingValue]:
        """``settings`` with every credential replaced by asterisks (for display)."""
        return {
            key: MASKED if key in SECRET_KAFKA_SETTINGS else value
            for key, value in self.settings.items()
        }

    def secret_values(self) -> list[str]:
        """The credentials among ``settings``, as text (for the log redaction filter)."""
        return [str(value) for key, value in self.settings.items() if key in SECRET_KAFKA_SETTINGS]

    @field_validator("settings")
    @classmethod
    def _no_guarantee_overrides(
        cls, settings: dict[str, KafkaSettingValue]
    ) -> dict[str, KafkaSettingValue]:
        for key in settings:
            why = PROTECTED_KAFKA_SETTINGS.get(key.strip().lower())
            if why is not None:
                raise ValueError(f"{key!r} may not be overridden: {why}")
        return settings


class TrengoConfig(_Section):
    # Declared before base_url: the base_url check reads it.
    allow_insecure_http: bool = False
    base_url: str = "https://app.trengo.com/api/v2"
    requests_per_minute: int = Field(default=120, gt=0)
    timeout_seconds: float = Field(default=10.0, gt=0)
    contact_cache_size: int = Field(default=100_000, ge=0)
    contact_cache_ttl_seconds: float = Field(default=3600.0, ge=0)
    # Identify on an email channel: create first, relying on Trengo returning the existing
    # contact for a known email (trengo-api.md §6); off: search first, as for phones.
    email_find_or_create: bool = True
    api_token_file: Path | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        insecure_allowed = info.data.get("allow_insecure_http", False)
        if value.startswith("http://") and not insecure_allowed and not _is_loopback(value):
            raise ValueError(
                "http:// would send the API token in clear; use https:// "
                "(plain http is accepted for loopback hosts, or with "
                "trengo.allow_insecure_http: true)"
            )
        return value.rstrip("/")


def _is_loopback(url: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: traffic that never leaves the machine."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _not_blank(value: str) -> str:
    """Text with its surrounding spaces removed, refused when nothing is left."""
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty")
    return stripped


def _not_boolean(value: object) -> object:
    """Refuse YAML's ``true``/``yes`` where an id is expected (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


NonBlankText = Annotated[
    str, AfterValidator(_not_blank), WithJsonSchema({"type": "string", "pattern": r"\S"})
]
TrengoFieldId = Annotated[int, Field(ge=1), BeforeValidator(_not_boolean)]
# The one rule between keys that the JSON Schemas can say too.
_PROFILE_KEY_REQUIRED: dict[str, JsonValue] = {
    "if": {"properties": {"enableProfiles": {"const": True}}, "required": ["enableProfiles"]},
    "then": {
        "properties": {"profileKeyFieldId": {"type": "integer"}},
        "required": ["profileKeyFieldId"],
    },
}


class TemplateMapping(_Section):
    """One ``eventTemplateMap`` entry: event name -> ticket subject, first message and labels."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str | None = None
    # Opt-in follow-ups of the ticket: label names (matched case-insensitively in Trengo) and a
    # message template rendered like the subject.
    labels: tuple[NonBlankText, ...] = ()
    message: str | None = None
    # "note" is seen by agents only; "message" reaches the customer, irrevocably.
    messageType: Literal["note", "message"] = "note"  # noqa: N815 - RudderStack-style key

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: tuple[str, ...]) -> tuple[str, ...]:
        """A label named twice (in any letter case) is attached once, as first spelled."""
        first_by_folded: dict[str, str] = {}
        for label in labels:
            first_by_folded.setdefault(label.casefold(), label)
        return tuple(first_by_folded.values())


class CustomFieldMapping(_Section):
    """One ``customFieldMap`` entry: an identify trait -> a Trengo contact custom field."""

    trait: NonBlankText
    fieldId: TrengoFieldId  # noqa: N815 - RudderStack-style key


CONSENT_KEYS = ("consentManagement", "oneTrustCookieCategories", "ketchConsentPurposes")
# Keys of RudderStack's destination definitions that only device mode (the SDKs) applies.
DEVICE_MODE_KEYS = frozenset({"eventFilteringOption", "whitelistedEvents", "blacklistedEvents"})
# The source type whose entry a per-source-type setting uses when it has one.
CLOUD = "cloud"
# Consent settings as RudderStack stores them: a list of objects, or one such list per source
# type (the UI's shape). The items are read as rudder-server reads them (pipeline/filters.py).
ConsentItems = tuple[dict[str, JsonValue], ...]
ConsentSetting = ConsentItems | dict[str, ConsentItems]


def _cloud_entry(key: str, value: ConsentSetting) -> ConsentItems:
    """The one list a consent setting means here; ValueError when several could be meant."""
    if not isinstance(value, dict):
        return value
    if CLOUD in value:
        return value[CLOUD]
    if len(value) == 1:
        return next(iter(value.values()))
    if not value:
        return ()
    raise ValueError(
        f"{key}: one entry per source type ({', '.join(sorted(value))}) and none for "
        f"'{CLOUD}': keep the entry of the sources this topic carries"
    )


def source_type_used(value: ConsentSetting | str) -> str | None:
    """Which source type's entry a per-source-type setting uses (None for the plain shape)."""
    if not isinstance(value, dict) or not value:
        return None
    return CLOUD if CLOUD in value else next(iter(value))


class DestinationConfig(_Section):
    """RudderStack's Trengo destination config, same keys (every key of its definition)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_PROFILE_KEY_REQUIRED)

    # RudderStack's consent settings and connection mode, pasted as exported.
    connectionMode: str | dict[str, str] = CLOUD  # noqa: N815
    consentManagement: ConsentSetting = ()  # noqa: N815
    oneTrustCookieCategories: ConsentSetting = ()  # noqa: N815
    ketchConsentPurposes: ConsentSetting = ()  # noqa: N815

    apiToken: SecretStr | None = None  # noqa: N815 - RudderStack's key
    channelId: str  # noqa: N815
    channelIdentifier: Literal["email", "phone"] = "email"  # noqa: N815
    # Deliberate fix: RudderStack treats a missing key as off although its UI defaults to on.
    enableDedup: bool = True  # noqa: N815
    eventTemplateMap: tuple[TemplateMapping, ...] = ()  # noqa: N815
    # Opt-in: identify traits copied into contact custom fields.
    customFieldMap: tuple[CustomFieldMapping, ...] = ()  # noqa: N815
    # Opt-in: a group attaches the user's contact to the Trengo Profile whose custom field
    # profileKeyFieldId holds the groupId. enableProfiles comes first: the key's check reads it.
    enableProfiles: bool = False  # noqa: N815
    profileKeyFieldId: TrengoFieldId | None = Field(default=None, validate_default=True)  # noqa: N815

    @field_validator("apiToken")
    @classmethod
    def _token_without_whitespace(cls, token: SecretStr | None) -> SecretStr | None:
        # A trailing newline (echo > file, a pasted Secret) would break every call's header.
        if token is None:
            return None
        stripped = token.get_secret_value().strip()
        if not stripped:
            raise ValueError("must not be blank")
        return SecretStr(stripped)

    @field_validator("channelId", mode="before")
    @classmethod
    def _channel_id_text(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("customFieldMap")
    @classmethod
    def _one_trait_per_field(
        cls, mappings: tuple[CustomFieldMapping, ...]
    ) -> tuple[CustomFieldMapping, ...]:
        # Two traits writing one field would overwrite each other on every identify.
        first_entry: dict[int, int] = {}
        for index, mapping in enumerate(mappings):
            earlier = first_entry.setdefault(mapping.fieldId, index)
            if earlier != index:
                raise ValueError(
                    f"fieldId {mapping.fieldId} is mapped twice (entries {earlier} and {index})"
                )
        return mappings

    @field_validator("profileKeyFieldId")
    @classmethod
    def _profile_key_when_enabled(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and info.data.get("enableProfiles"):
            raise ValueError(
                "required when enableProfiles is true (the id of the Trengo profile custom "
                "field holding the groupId)"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_device_mode_keys(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in sorted(DEVICE_MODE_KEYS & data.keys()):
                raise ValueError(
                    f"{key}: a device-mode setting (RudderStack's SDKs apply it in the browser "
                    "or app, never to cloud-mode events); remove it, or filter with "
                    "pipeline.ignore_types or a RudderStack transformation"
                )
        return data

    @field_validator("connectionMode")
    @classmethod
    def _cloud_mode_only(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        modes = value.values() if isinstance(value, dict) else [value]
        for mode in modes:
            if mode.lower() != CLOUD:
                raise ValueError(f"'{mode}' is not supported: Trengo only has cloud mode")
        return value

    @model_validator(mode="after")
    def _one_consent_entry(self) -> DestinationConfig:
        for key in CONSENT_KEYS:
            _cloud_entry(key, getattr(self, key))
        return self

    def consent_items(
        self, key: Literal["consentManagement", "oneTrustCookieCategories", "ketchConsentPurposes"]
    ) -> ConsentItems:
        """A consent setting's list, from the plain or the per-source-type shape."""
        return _cloud_entry(key, getattr(self, key))

    def template_for(self, event: str) -> TemplateMapping | None:
        """The mapping for an event name (exact, case-sensitive; a later duplicate wins)."""
        found = None
        for mapping in self.eventTemplateMap:
            if mapping.from_ and mapping.from_ == event:
                found = mapping
        return found


class PipelineConfig(_Section):
    # Message types committed and counted as skipped, on top of those RudderStack never sends
    # to Trengo (everything but identify, track and, with enableProfiles, group).
    ignore_types: tuple[str, ...] = ()
    # True: message types Trengo does not support are dead-lettered (the behaviour before the
    # filter stage) instead of skipped.
    dead_letter_unsupported_types: bool = False
    # Tracks whose event has no eventTemplateMap entry: skipped (RudderStack reports them as
    # failed but has nothing to replay) or dead-lettered.
    unmapped_events: Literal["skip", "dead_letter"] = "skip"


class DeliveryConfig(_Section):
    max_in_flight: int = Field(default=256, ge=1)
    max_buffered_events: int = Field(default=10_000, ge=1)
    # Record bytes held in memory: a quarter of a 512 MiB pod, the rest is the process itself,
    # librdkafka's prefetch (8 MiB) and the decoded events.
    max_buffered_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    retry_max_seconds: float = Field(default=10_800, ge=0)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    halt_probe_seconds: float = Field(default=30.0, gt=0)
    # Past this share of dead letters among the last dead_letter_window deliveries the
    # destination halts until a restart: a bad deploy, not bad data. 1.0 switches it off.
    max_dead_letter_ratio: float = Field(default=0.5, gt=0, le=1)
    dead_letter_window: int = Field(default=200, ge=1)
    shutdown_timeout_seconds: float = Field(default=25.0, ge=0)


class ServerConfig(_Section):
    host: str = "0.0.0.0"  # a pod must be scrapeable from outside
    port: int = Field(default=9400, ge=0, le=65535)
    liveness_seconds: float = Field(default=30.0, gt=0)
    # A partition with pending events none of which was attempted or finished for this long is
    # stalled: /healthz fails. Must stay far above any backoff (checked against retry_cap).
    stall_seconds: float = Field(default=1800.0, gt=0)


class LogConfig(_Section):
    format: Literal["json", "console"] = "json"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    include_user_ids: bool = False


class Settings(BaseSettings):
    """The whole configuration; frozen once loaded."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    trengo: TrengoConfig = Field(default_factory=TrengoConfig)
    destination: DestinationConfig
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _token_present(self) -> Settings:
        if self.destination.apiToken is None:
            raise ValueError(
                f"destination.apiToken: missing (set it, {TOKEN_ENV}, or trengo.api_token_file)"
            )
        return self

    @model_validator(mode="after")
    def _stall_beyond_backoff(self) -> Settings:
        # Between two attempts of one event: a rate-limit pause and a backoff (each capped at
        # retry_cap_seconds) and the request's timeout. Anything shorter would be a false alarm.
        longest_quiet = 2 * self.delivery.retry_cap_seconds + self.trengo.timeout_seconds
        if self.server.stall_seconds <= longest_quiet:
            raise ValueError(
                f"server.stall_seconds: must be above {longest_quiet:g} (twice "
                "delivery.retry_cap_seconds plus trengo.timeout_seconds), or a backoff would "
                "count as a stall"
            )
        return self

    @property
    def api_token(self) -> str:
        assert self.destination.apiToken is not None  # guaranteed by _token_present
        return self.destination.apiToken.get_secret_value()

    @property
    def secrets(self) -> list[str]:
        """Every secret value of the config: the API token and the Kafka credentials."""
        return [self.api_token, *self.kafka.secret_values()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, then the YAML document passed as init values.
        return (env_settings, init_settings)


def load_settings(path: Path | str | None) -> Settings:
    """Read the YAML file (if any) plus the environment; raise ConfigError on any problem."""
    document = _read_yaml(Path(path)) if path is not None else {}
    document = _with_token(document)
    try:
        return Settings(**document)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: bad YAML: {problem}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return document


def _with_token(document: dict[str, Any]) -> dict[str, Any]:
    """Fill destination.apiToken from TRENGO_API_TOKEN or the token file when the YAML lacks it."""
    destination = document.get("destination")
    if destination is not None and not isinstance(destination, dict):
        return document
    destination = dict(destination or {})
    if destination.get("apiToken") or os.environ.get(f"{ENV_PREFIX}DESTINATION__APITOKEN"):
        return document
    token = os.environ.get(TOKEN_ENV) or _token_from_file(document)
    if token:
        destination["apiToken"] = token
        return {**document, "destination": destination}
    return document


def _token_from_file(document: dict[str, Any]) -> str | None:
    trengo = document.get("trengo")
    env_path = os.environ.get(f"{ENV_PREFIX}TRENGO__API_TOKEN_FILE")
    yaml_path = trengo.get("api_token_file") if isinstance(trengo, dict) else None
    token_path = env_path or yaml_path
    if not token_path:
        return None
    try:
        return Path(token_path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(
            f"trengo.api_token_file: cannot read {token_path} ({error.strerror})"
        ) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = _dotted_key(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


def _dotted_key(location: tuple[int | str, ...]) -> str:
    """A value's place as an operator writes it: ``destination.customFieldMap[0].fieldId``."""
    parts = (f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    return "".join(parts).removeprefix(".")
