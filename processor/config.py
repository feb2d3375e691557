"""Configuration: one YAML file, every key overridable from the environment.

Sources, highest priority first: environment variables ``TRENGO_PROCESSOR_<SECTION>__<KEY>``,
the YAML file, the defaults below. The Trengo API token may also come from ``TRENGO_API_TOKEN``
or from a file (``trengo.api_token_file``, for a mounted Kubernetes Secret).

The ``destination`` section keeps RudderStack's destination config keys unchanged so a
RudderStack config can be pasted in as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    PrivateAttr,
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


class TrengoConfig(_Section):
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
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


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


# RudderStack's UI stores the consent keys and connectionMode per source type
# ({"web": [...], "cloud": [...]}); rudder-server receives the resolved plain value.
PREFERRED_SOURCE_TYPE = "cloud"
PER_SOURCE_TYPE_KEYS = (
    "connectionMode",
    "consentManagement",
    "oneTrustCookieCategories",
    "ketchConsentPurposes",
)
# RudderStack keys applied by its SDKs only (device mode): no server-side meaning.
DEVICE_MODE_KEYS = frozenset({"eventFilteringOption", "whitelistedEvents", "blacklistedEvents"})


def source_type_choice(value: object) -> tuple[object, str | None]:
    """The plain value of a per-source-type object, and the source type it came from.

    The ``cloud`` entry wins, else the only one; a plain value is returned as it is (``None``).
    """
    if not isinstance(value, dict) or not value:
        return value, None
    if PREFERRED_SOURCE_TYPE in value:
        return value[PREFERRED_SOURCE_TYPE], PREFERRED_SOURCE_TYPE
    if len(value) == 1:
        ((source_type, chosen),) = value.items()
        return chosen, str(source_type)
    raise ValueError(
        f"one entry per source type ({', '.join(sorted(map(str, value)))}) and none is "
        f"'{PREFERRED_SOURCE_TYPE}': keep the one for the sources this topic carries"
    )


def _plain_value(value: object) -> object:
    return source_type_choice(value)[0]


def _connection_mode(value: object) -> object:
    """Only cloud mode exists for Trengo, so every source type must say ``cloud``."""
    modes = set(map(str, value.values())) if isinstance(value, dict) else {value}
    if modes != {"cloud"}:
        shown = ", ".join(sorted(map(str, modes)))
        raise ValueError(f"only cloud mode exists for Trengo, got {shown}")
    return "cloud"


class ConsentId(_Section):
    consent: str = ""


class ConsentProvider(_Section):
    """One ``consentManagement`` entry: the consents this destination needs from a provider."""

    provider: str = ""
    resolutionStrategy: str = ""  # noqa: N815 - RudderStack's key
    consents: tuple[ConsentId, ...] = ()


class OneTrustCategory(_Section):
    oneTrustCookieCategory: str = ""  # noqa: N815 - RudderStack's key


class KetchPurpose(_Section):
    purpose: str = ""


def _chosen_source_type(value: object) -> str | None:
    try:
        return source_type_choice(value)[1]
    except ValueError:
        return None


def _plain_or_per_source_type(item: type[_Section]) -> BeforeValidator:
    """Reads either shape; the JSON Schema offers both."""
    plain = tuple[item, ...]  # type: ignore[valid-type]
    return BeforeValidator(_plain_value, json_schema_input_type=plain | dict[str, plain])


class DestinationConfig(_Section):
    """RudderStack's Trengo destination config, same keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_PROFILE_KEY_REQUIRED)

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
    # The rest of RudderStack's definition: consent (applied by the filter stage) and the
    # connection mode, in either shape (see source_type_choice).
    connectionMode: Annotated[  # noqa: N815
        Literal["cloud"],
        BeforeValidator(
            _connection_mode, json_schema_input_type=Literal["cloud"] | dict[str, Literal["cloud"]]
        ),
    ] = "cloud"
    consentManagement: Annotated[  # noqa: N815
        tuple[ConsentProvider, ...], _plain_or_per_source_type(ConsentProvider)
    ] = ()
    oneTrustCookieCategories: Annotated[  # noqa: N815
        tuple[OneTrustCategory, ...], _plain_or_per_source_type(OneTrustCategory)
    ] = ()
    ketchConsentPurposes: Annotated[  # noqa: N815
        tuple[KetchPurpose, ...], _plain_or_per_source_type(KetchPurpose)
    ] = ()

    _consent_source_types: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_source_types(cls, data: object, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Keep which source type's entry each per-source-type key was read from."""
        config = handler(data)
        if isinstance(data, dict):
            for key in PER_SOURCE_TYPE_KEYS[1:]:
                source_type = _chosen_source_type(data.get(key))
                if source_type is not None:
                    config._consent_source_types[key] = source_type
        return config

    @property
    def consent_source_types(self) -> Mapping[str, str]:
        """Consent key → the source type whose entry was taken (per-source-type shape only)."""
        return self._consent_source_types

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

    def template_for(self, event: str) -> TemplateMapping | None:
        """The mapping for an event name (exact, case-sensitive; a later duplicate wins)."""
        found = None
        for mapping in self.eventTemplateMap:
            if mapping.from_ and mapping.from_ == event:
                found = mapping
        return found


class PipelineConfig(_Section):
    # More message types committed and counted as skipped (beyond those RudderStack never sends
    # to Trengo, which are skipped anyway).
    ignore_types: tuple[str, ...] = ()
    # True: page, screen, alias, ... are dead-lettered as before the filter stage existed.
    dead_letter_unsupported_types: bool = False
    # A track whose event has no eventTemplateMap entry: skipped (counted) or dead-lettered.
    unmapped_events: Literal["skip", "dead_letter"] = "skip"


class DeliveryConfig(_Section):
    max_in_flight: int = Field(default=256, ge=1)
    max_buffered_events: int = Field(default=10_000, ge=1)
    retry_max_seconds: float = Field(default=10_800, ge=0)
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    halt_probe_seconds: float = Field(default=30.0, gt=0)
    shutdown_timeout_seconds: float = Field(default=25.0, ge=0)


class ServerConfig(_Section):
    host: str = "0.0.0.0"  # a pod must be scrapeable from outside
    port: int = Field(default=9400, ge=0, le=65535)
    liveness_seconds: float = Field(default=30.0, gt=0)


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

    @property
    def api_token(self) -> str:
        assert self.destination.apiToken is not None  # guaranteed by _token_present
        return self.destination.apiToken.get_secret_value()

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
            if item["loc"][-1] in DEVICE_MODE_KEYS:
                message += (
                    " (a RudderStack device-mode setting: its SDKs apply it, the server never did;"
                    " see README 'Migrating from RudderStack')"
                )
        problems.append(f"{key}: {message}" if key else message)
    return "; ".join(problems)


def _dotted_key(location: tuple[int | str, ...]) -> str:
    """A value's place as an operator writes it: ``destination.customFieldMap[0].fieldId``."""
    parts = (f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    return "".join(parts).removeprefix(".")
