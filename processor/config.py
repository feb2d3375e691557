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

# librdkafka settings the engine's guarantees rest on (docs/commit-protocol.md): kafka.settings
# may not override them. Each maps to why, for the one-line config error.
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
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port...]."
    )
    topic: str = Field(
        default="rudderstack.events",
        description="Input topic: one RudderStack event as JSON per record, keyed by userId.",
    )
    group_id: str = Field(
        default="trengo-processor", description="Consumer group; every replica shares it."
    )
    dead_letter_topic: str = Field(
        default="rudderstack.events.dlq",
        description="Topic receiving events that cannot be delivered, with x-error-* headers.",
    )
    commit_interval_ms: int = Field(
        default=200,
        ge=10,
        description="At most how often done offsets are committed (sooner: max_in_flight/4 done).",
    )
    revoke_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="On a rebalance: how long a revoked partition's remaining work may take.",
    )
    session_timeout_ms: int = Field(
        default=45_000, ge=500, description="librdkafka session.timeout.ms."
    )
    max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1000,
        description="librdkafka max.poll.interval.ms (polling never waits for delivery).",
    )
    settings: dict[str, KafkaSettingValue] = Field(
        default_factory=dict,
        description="Other librdkafka settings (security, SASL, ...) for consumer and producer.",
    )

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
    allow_insecure_http: bool = Field(
        default=False,
        description="Accept a plain http:// base_url on a non-loopback host (token in clear).",
    )
    base_url: str = Field(
        default="https://app.trengo.com/api/v2",
        description="Trengo API base URL; https:// unless loopback or allow_insecure_http.",
    )
    requests_per_minute: int = Field(
        default=120,
        gt=0,
        description="The API token's request budget, shared by every replica using the token.",
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one request; a timeout is retried."
    )
    contact_cache_size: int = Field(
        default=100_000,
        ge=0,
        description="How many contact ids are remembered per (channel, identifier).",
    )
    contact_cache_ttl_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long a cached contact id (and the last name sent) is trusted.",
    )
    # Identify on an email channel: create first, relying on Trengo returning the existing
    # contact for a known email (docs/trengo-api.md); off: search first, as for phones.
    email_find_or_create: bool = Field(
        default=True,
        description="Email identifies create first (find-or-create); false: search first.",
    )
    api_token_file: Path | None = Field(
        default=None, description="File holding the API token (a mounted Secret); re-read on a 401."
    )

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

    from_: str = Field(alias="from", description="The track event name (exact, case-sensitive).")
    to: str | None = Field(
        default=None,
        description="Jinja2 template of the ticket subject; empty or missing sends no subject.",
    )
    # Opt-in follow-ups of the ticket: label names (matched case-insensitively in Trengo) and a
    # message template rendered like the subject.
    labels: tuple[NonBlankText, ...] = Field(
        default=(),
        description="Label names attached to each ticket of this event (any letter case).",
    )
    message: str | None = Field(
        default=None, description="Template of a message posted into each ticket of this event."
    )
    messageType: Literal["note", "message"] = Field(  # noqa: N815 - RudderStack-style key
        default="note",
        description="note: seen by agents only; message: sent to the customer, irrevocably.",
    )

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

    trait: NonBlankText = Field(description="The identify trait whose value is copied.")
    fieldId: TrengoFieldId = Field(  # noqa: N815 - RudderStack-style key
        description="The Trengo contact custom field it is written to."
    )


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
    connectionMode: str | dict[str, str] = Field(  # noqa: N815
        default=CLOUD,
        description="RudderStack's connection mode (or one per source type): cloud only.",
    )
    consentManagement: ConsentSetting = Field(  # noqa: N815
        default=(), description="Generic consent management settings (or one list per source type)."
    )
    oneTrustCookieCategories: ConsentSetting = Field(  # noqa: N815
        default=(),
        description="Legacy OneTrust categories: an event denying any of them is skipped.",
    )
    ketchConsentPurposes: ConsentSetting = Field(  # noqa: N815
        default=(), description="Legacy Ketch purposes: an event denying all of them is skipped."
    )

    apiToken: SecretStr | None = Field(  # noqa: N815 - RudderStack's key
        default=None,
        description="The Trengo API token (or TRENGO_API_TOKEN, trengo.api_token_file).",
    )
    channelId: str = Field(  # noqa: N815
        description="The Trengo channel contacts and tickets are created on."
    )
    channelIdentifier: Literal["email", "phone"] = Field(  # noqa: N815
        default="email", description="Which trait identifies a contact: email or phone."
    )
    # Deliberate fix: RudderStack treats a missing key as off although its UI defaults to on.
    enableDedup: bool = Field(  # noqa: N815
        default=True,
        description="Identify finds the contact and updates it instead of always creating one.",
    )
    eventTemplateMap: tuple[TemplateMapping, ...] = Field(  # noqa: N815
        default=(), description="Track events that open tickets, each with its subject template."
    )
    customFieldMap: tuple[CustomFieldMapping, ...] = Field(  # noqa: N815
        default=(), description="Identify traits copied into contact custom fields (opt-in)."
    )
    # Opt-in: a group attaches the user's contact to the Trengo Profile whose custom field
    # profileKeyFieldId holds the groupId. enableProfiles comes first: the key's check reads it.
    enableProfiles: bool = Field(  # noqa: N815
        default=False,
        description="Group events attach the user's contact to the group's Trengo profile.",
    )
    profileKeyFieldId: TrengoFieldId | None = Field(  # noqa: N815
        default=None,
        validate_default=True,
        description="With enableProfiles: the profile custom field holding the groupId.",
    )

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
    ignore_types: tuple[str, ...] = Field(
        default=(), description="More message types to commit and count as skipped."
    )
    # True: message types Trengo does not support are dead-lettered (the behaviour before the
    # filter stage) instead of skipped.
    dead_letter_unsupported_types: bool = Field(
        default=False,
        description="Dead-letter message types Trengo does not take instead of skipping them.",
    )
    # Tracks whose event has no eventTemplateMap entry: skipped (RudderStack reports them as
    # failed but has nothing to replay) or dead-lettered.
    unmapped_events: Literal["skip", "dead_letter"] = Field(
        default="skip", description="Tracks without an eventTemplateMap entry: skip or dead_letter."
    )


class TransformationConfig(_Section):
    """The user's RudderStack transformation (off unless python or javascript is set)."""

    python: str | None = Field(
        default=None, description="Python transformation: package.module:function, or a .py file."
    )
    javascript: Path | None = Field(
        default=None, description="A RudderStack JavaScript transformation file."
    )
    timeout_ms: int = Field(default=100, ge=1, description="Time limit of one transformation call.")
    memory_limit_mb: int = Field(
        default=64, ge=1, description="Heap limit of the JavaScript engine."
    )
    max_events: int = Field(
        default=100, ge=1, description="Most events one call may return (fan-out)."
    )
    max_output_bytes: int = Field(
        default=1_048_576, ge=1, description="Most JSON bytes one call may return."
    )
    credentials: dict[str, str] = Field(
        default_factory=dict, description="What getCredential(key) returns to the transformation."
    )
    destination_name: str = Field(
        default="Trengo",
        description="metadata(event).destinationName as the transformation sees it.",
    )

    @model_validator(mode="after")
    def _one_language(self) -> TransformationConfig:
        if self.python is not None and self.javascript is not None:
            raise ValueError("set python or javascript, not both")
        return self


class DeliveryConfig(_Section):
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Users delivered concurrently (one event at a time per user).",
    )
    max_buffered_events: int = Field(
        default=10_000,
        ge=1,
        description="Polled but unfinished events above which partitions are paused.",
    )
    # Record bytes held in memory: a quarter of a 512 MiB pod, the rest is the process itself,
    # librdkafka's prefetch (8 MiB) and the decoded events.
    max_buffered_bytes: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="The same bound in record bytes (key, value and headers).",
    )
    retry_max_seconds: float = Field(
        default=10_800,
        ge=0,
        description="How long a transient failure is retried before the event is dead-lettered.",
    )
    retry_base_seconds: float = Field(
        default=1.0, gt=0, description="First step of the full-jitter exponential backoff."
    )
    retry_cap_seconds: float = Field(
        default=300.0, gt=0, description="Longest backoff or Retry-After wait between two attempts."
    )
    halt_probe_seconds: float = Field(
        default=30.0,
        gt=0,
        description="While Trengo refuses the token, how often to check whether it works again.",
    )
    # Past this share of dead letters among the last dead_letter_window deliveries the
    # destination halts until a restart: a bad deploy, not bad data. 1.0 switches it off.
    max_dead_letter_ratio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Halt when this share of recent deliveries was refused (1.0: off).",
    )
    dead_letter_window: int = Field(
        default=200,
        ge=1,
        description="How many of the latest deliver-stage outcomes max_dead_letter_ratio judges.",
    )
    shutdown_timeout_seconds: float = Field(
        default=25.0,
        ge=0,
        description="After SIGTERM, how long in-flight and gap-filling deliveries may take.",
    )


class ServerConfig(_Section):
    # All interfaces: a pod must be scrapeable from outside.
    host: str = Field(
        default="0.0.0.0",
        description="Address the /metrics, /healthz and /readyz server listens on.",
    )
    port: int = Field(
        default=9400, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz."
    )
    liveness_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/healthz fails when the poll loop has not ticked for this long.",
    )
    # A partition with pending events none of which was attempted or finished for this long is
    # stalled: /healthz fails. Must stay far above any backoff (checked against retry_cap).
    stall_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="/healthz fails when a partition's events make no progress this long.",
    )


class LogConfig(_Section):
    format: Literal["json", "console"] = Field(
        default="json", description="json (one object per line) or console (for people)."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )
    include_user_ids: bool = Field(
        default=False,
        description="Log user ids, emails and phones in clear instead of hashed or masked.",
    )


class Settings(BaseSettings):
    """The whole configuration; frozen once loaded."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
    )

    kafka: KafkaConfig = Field(
        default_factory=KafkaConfig, description="The Kafka cluster, topics and consumer."
    )
    trengo: TrengoConfig = Field(
        default_factory=TrengoConfig, description="The Trengo API and the client's caches."
    )
    destination: DestinationConfig = Field(
        description="RudderStack's Trengo destination config, same keys."
    )
    pipeline: PipelineConfig = Field(
        default_factory=PipelineConfig,
        description="What is skipped or dead-lettered before delivery.",
    )
    transformation: TransformationConfig = Field(
        default_factory=TransformationConfig,
        description="The user's RudderStack transformation (off unless a language is set).",
    )
    delivery: DeliveryConfig = Field(
        default_factory=DeliveryConfig, description="Concurrency, buffering, retries and halting."
    )
    server: ServerConfig = Field(
        default_factory=ServerConfig, description="The HTTP server for metrics and probes."
    )
    log: LogConfig = Field(default_factory=LogConfig, description="Log format and privacy.")

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
