"""values.yaml and values.schema.json stay in step with processor/config.py and stay documented."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import yaml
from pydantic import BaseModel

from processor.config import DestinationConfig, Settings
from tests.helm.support import CHART_DIR

VALUES_TEXT = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
VALUES: dict[str, Any] = yaml.safe_load(VALUES_TEXT)
SCHEMA: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
# Keys the chart owns instead of the operator: the token comes from the Secret as a file.
CHART_MANAGED = {("destination", "apiToken"), ("trengo", "api_token_file")}
# Defaults the chart deliberately changes: a pod's broker is never on its own loopback.
CHART_DEFAULTS = {("kafka", "bootstrap_servers")}
KEY_LINE = re.compile(r"^\s*[A-Za-z_][\w.-]*:")


def section_models() -> dict[str, type[BaseModel]]:
    """Each config section's name and model class, from the Settings model."""
    sections = {}
    for name, field in Settings.model_fields.items():
        assert isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        sections[name] = field.annotation
    return sections


def operator_keys(section: str, model: type[BaseModel]) -> set[str]:
    """The section's keys an operator may set through the chart."""
    return {
        field.alias or name
        for name, field in model.model_fields.items()
        if (section, field.alias or name) not in CHART_MANAGED
    }


def test_every_value_has_a_comment() -> None:
    lines = VALUES_TEXT.splitlines()
    undocumented = [
        line.strip()
        for previous, line in itertools.pairwise(lines)
        if KEY_LINE.match(line) and not previous.strip().startswith("#")
    ]
    assert KEY_LINE.match(lines[0]) is None
    assert undocumented == []


def test_schema_and_values_cover_every_config_key() -> None:
    schema_sections = SCHEMA["properties"]["config"]["properties"]
    for section, model in section_models().items():
        expected = operator_keys(section, model)
        assert set(schema_sections[section]["properties"]) == expected, section
        assert set(VALUES["config"][section]) == expected, section


def test_values_defaults_are_the_processor_defaults() -> None:
    changed = set()
    for section, model in section_models().items():
        # channelId has no default: give both sides the same one.
        required = {"channelId": 1} if model is DestinationConfig else {}
        defaults = model.model_validate(required)
        from_values = {**VALUES["config"][section], **required}
        chart_side = model.model_validate(from_values)
        changed |= {
            (section, name)
            for name in model.model_fields
            if getattr(chart_side, name) != getattr(defaults, name)
        }
    assert changed == CHART_DEFAULTS
