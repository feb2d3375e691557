"""Tests for processor/pipeline/templates.py: ticket subjects as RudderStack renders them
(docs/rudderstack-compatibility.md), and first messages (``eventTemplateMap[].message``)
rendered by exactly the same rules."""

from __future__ import annotations

from typing import Any

import pytest

from processor.config import ConfigError, DestinationConfig
from processor.pipeline.templates import (
    EventTemplates,
    TemplateConfigError,
    TemplateRenderError,
    js_string,
)

EVENT = "Order Completed"
# Both template keys of a mapping; every rendering rule holds for each.
TEMPLATE_KEYS = pytest.mark.parametrize("key", ["to", "message"])


def _templates(*mappings: dict[str, str]) -> EventTemplates:
    return EventTemplates(DestinationConfig(channelId="1", eventTemplateMap=mappings))


def _render(
    template: str, properties: dict[str, Any] | None, key: str = "to", event: str = EVENT
) -> str | None:
    """Renders ``template`` as the subject (key ``to``) or the first message (``message``)."""
    templates = _templates({"from": event, key: template})
    render = templates.render if key == "to" else templates.render_message
    return render(event, properties)


@pytest.mark.parametrize(
    ("template", "properties", "subject"),
    [
        pytest.param("{{ event }} from our store", {}, f"{EVENT} from our store", id="event"),
        pytest.param("{{event}} from our store", {}, f"{EVENT} from our store", id="no-spaces"),
        pytest.param(
            "Product was of value:{{ revenue }}",
            {"revenue": 5000},
            "Product was of value:5000",
            id="integer",
        ),
        pytest.param("value:{{ revenue }}", {"revenue": 0}, "value:0", id="zero"),
        pytest.param("value:{{ revenue }}", {"revenue": 5000.0}, "value:5000", id="integral-float"),
        pytest.param("value:{{ revenue }}", {"revenue": 19.99}, "value:19.99", id="fraction"),
        pytest.param("{{ vip }}/{{ gift }}", {"vip": True, "gift": False}, "true/false", id="bool"),
        pytest.param("[{{ coupon }}]", {"coupon": None}, "[]", id="null-prints-nothing"),
        pytest.param("{{ tags }}", {"tags": ["a", None, 2]}, "a,,2", id="list-like-javascript"),
        pytest.param("{{ cart }}", {"cart": {"id": 1}}, "[object Object]", id="object"),
        pytest.param("{event} Stress test", {}, "{event} Stress test", id="single-braces-literal"),
        pytest.param("Order {{ missing }} shipped", {}, "Order  shipped", id="missing-is-empty"),
        pytest.param("x{{ a.b.c }}", {}, "x", id="missing-path-is-empty"),
        pytest.param("x{{ a.b }}", {"a": 1}, "x", id="path-below-number-is-empty"),
        pytest.param("{{ address.city }}", {"address": {"city": "Delft"}}, "Delft", id="nested"),
        pytest.param("{{ items[0].sku }}", {"items": [{"sku": "A1"}]}, "A1", id="list-index"),
        pytest.param("{{ items.0.sku }}", {"items": [{"sku": "A1"}]}, "A1", id="dotted-index"),
        pytest.param(
            "{{ cart.items }}|{{ cart.keys }}",
            {"cart": {"items": 3, "keys": "k"}},
            "3|k",
            id="property-before-dict-method",
        ),
        pytest.param(
            "{{ properties }}",
            {"name": "Random_Track_call", "value": 5000, "meta": {"a": 1}, "gone": None},
            "name: Random_Track_call value: 5000 meta: [object Object] gone: null",
            id="properties-flattened-like-rudderstack",
        ),
        pytest.param("{{ event }}", {"event": "custom"}, "custom", id="event-property-overrides"),
        pytest.param("{{ properties }}", {"properties": "own"}, "own", id="properties-overrides"),
        pytest.param("{{{ title }}}", {"title": "Tom & Jerry"}, "Tom & Jerry", id="triple-stash"),
        pytest.param(
            "{{ title }}", {"title": "<b>Tom & 'Jerry'</b>"}, "<b>Tom & 'Jerry'</b>", id="unescaped"
        ),
        pytest.param("  Completed Order \n", {}, "Completed Order", id="template-trimmed"),
        pytest.param(
            "{{ a }} shipped {{ b }}", {"a": " ", "b": ""}, "shipped", id="result-trimmed"
        ),
        pytest.param("   ", {}, "", id="blank-template-renders-empty"),
        pytest.param(
            "{% if vip %}VIP {% endif %}{{ event }}", {"vip": 1}, f"VIP {EVENT}", id="jinja-if"
        ),
        pytest.param("{{ range }}", {"range": "R"}, "R", id="property-shadows-jinja-global"),
        pytest.param("[{{ x.__class__ }}]", {"x": "text"}, "[]", id="sandboxed"),
        pytest.param("{{ traits }}{{ context }}", {}, "", id="no-traits-or-context"),
    ],
)
@TEMPLATE_KEYS
def test_renders_like_rudderstack(
    template: str, properties: dict[str, Any], subject: str, key: str
) -> None:
    assert _render(template, properties, key) == subject


@pytest.mark.parametrize(
    ("template", "subject"),
    [
        pytest.param("Completed Order", "Completed Order", id="static"),
        pytest.param("{{ event }} from Rudderstack", f"{EVENT} from Rudderstack", id="event-only"),
        pytest.param("{{ properties }}|{{ value }}", "|", id="properties-empty"),
    ],
)
@TEMPLATE_KEYS
def test_renders_without_properties(template: str, subject: str, key: str) -> None:
    """Deliberate fix: RudderStack fails a track without properties on any non-empty template."""
    assert _render(template, None, key) == subject


@pytest.mark.parametrize(
    ("mappings", "event", "subject"),
    [
        pytest.param([{"from": "a", "to": "A"}], "b", None, id="unmapped-event"),
        pytest.param([{"from": "a"}], "a", None, id="mapping-without-to"),
        pytest.param([{"from": "a", "to": ""}], "a", None, id="empty-to"),
        pytest.param([{"from": "a", "to": "A"}], "A", None, id="case-sensitive"),
        pytest.param(
            [{"from": "a", "to": "1"}, {"from": "a", "to": "2"}], "a", "2", id="later-wins"
        ),
        pytest.param(
            [{"from": "a", "to": "1"}, {"from": "a", "to": ""}], "a", None, id="later-empty-wins"
        ),
        pytest.param(
            [{"from": "", "to": "{{ broken"}, {"from": "a", "to": "A"}],
            "a",
            "A",
            id="empty-from-ignored-not-compiled",
        ),
    ],
)
def test_template_lookup(mappings: list[dict[str, str]], event: str, subject: str | None) -> None:
    assert _templates(*mappings).render(event, {}) == subject


@pytest.mark.parametrize(
    ("mappings", "event", "message"),
    [
        pytest.param([{"from": "a", "to": "A"}], "a", None, id="mapping-without-message"),
        pytest.param([{"from": "a", "message": ""}], "a", None, id="empty-message"),
        pytest.param([{"from": "a", "message": "M"}], "b", None, id="unmapped-event"),
        pytest.param(
            [{"from": "a", "message": "1"}, {"from": "a", "message": "2"}],
            "a",
            "2",
            id="later-wins",
        ),
        pytest.param(
            [{"from": "a", "message": "1"}, {"from": "a", "to": "S"}],
            "a",
            None,
            id="later-without-message-wins",
        ),
    ],
)
def test_message_lookup(mappings: list[dict[str, str]], event: str, message: str | None) -> None:
    assert _templates(*mappings).render_message(event, {}) == message


def test_subject_and_message_of_one_mapping_are_separate() -> None:
    templates = _templates({"from": EVENT, "to": "Order {{ id }}", "message": "Paid {{ total }}"})
    properties = {"id": 7, "total": 19.5}

    assert templates.render(EVENT, properties) == "Order 7"
    assert templates.render_message(EVENT, properties) == "Paid 19.5"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param(
            "{{#if vip}}VIP{{/if}}",
            "invalid template: unexpected char '#' at 2; "
            "Handlebars helpers are not supported, use Jinja2 {% if %} / {% for %}",
            id="handlebars-helper",
        ),
        pytest.param(
            "Order {{ id ",
            "invalid template: unexpected end of template, expected 'end of print statement'.",
            id="unclosed",
        ),
        pytest.param(
            "{% for %}",
            "invalid template: Expected an expression, got 'end of statement block'",
            id="bad-tag",
        ),
    ],
)
@TEMPLATE_KEYS
def test_a_template_that_does_not_compile_names_its_key(
    template: str, message: str, key: str
) -> None:
    with pytest.raises(TemplateConfigError) as raised:
        _templates({"from": "ok", "to": "fine", "message": "fine"}, {"from": "bad", key: template})

    assert raised.value.key == f"destination.eventTemplateMap[1].{key}"
    assert raised.value.message == message
    assert str(raised.value) == f"destination.eventTemplateMap[1].{key}: {message}"
    assert isinstance(raised.value, ConfigError)


@pytest.mark.parametrize(
    ("template", "properties"),
    [
        pytest.param("{{ name + 1 }}", {"name": "x"}, id="type-error"),
        pytest.param("{{ missing + 1 }}", {}, id="arithmetic-on-missing"),
        pytest.param("{{ 1 // zero }}", {"zero": 0}, id="division-by-zero"),
    ],
)
@TEMPLATE_KEYS
def test_a_failing_render_raises_render_error(
    template: str, properties: dict[str, Any], key: str
) -> None:
    with pytest.raises(TemplateRenderError, match=EVENT):
        _render(template, properties, key)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "null", id="null"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param(0, "0", id="zero"),
        pytest.param(5000.0, "5000", id="integral-float"),
        pytest.param(-2.5, "-2.5", id="fraction"),
        pytest.param(1e21, "1e+21", id="huge-float-keeps-exponent"),
        pytest.param("text", "text", id="string"),
        pytest.param([1, [2, None], None, "x"], "1,2,,,x", id="nested-list"),
        pytest.param({}, "[object Object]", id="object"),
        pytest.param([1, []], "1,", id="empty-list-item-is-empty-text"),
        pytest.param([[], []], ",", id="two-empty-lists"),
        pytest.param([[[]]], "", id="nested-empty-lists"),
        pytest.param([[None]], "", id="null-in-nested-list"),
        pytest.param([[1, 2], [3], {"a": 1}], "1,2,3,[object Object]", id="lists-and-object"),
    ],
)
def test_js_string(value: object, text: str) -> None:
    assert js_string(value) == text


def _nested_list(depth: int, innermost: object) -> object:
    nested = innermost
    for _ in range(depth):
        nested = [nested]
    return nested


@TEMPLATE_KEYS
@pytest.mark.parametrize("template", ["{{ properties }}", "{{ items }}"])
def test_renders_a_list_nested_far_deeper_than_the_recursion_limit(template: str, key: str) -> None:
    """Flattening is not recursive: the decode stage lets nesting through as deep as the JSON
    parser reaches (about the recursion limit), and a printed list may be that deep."""
    properties = {"items": [_nested_list(5_000, "x"), 1]}

    rendered = _render(template, properties, key)

    assert rendered == ("items: x,1" if template == "{{ properties }}" else "x,1")
