"""Ticket templates: ``eventTemplateMap[].to`` (the subject) and ``eventTemplateMap[].message``
(the ticket's first message, opt-in), compiled once, rendered per track event.

RudderStack renders subjects with Handlebars; here they are Jinja2 templates in a sandbox, made to
behave like RudderStack's usage wherever the two languages overlap
(docs/rudderstack-compatibility.md). A message template follows exactly the same rules as a
subject:

* The template is trimmed, compiled and rendered, and the result is trimmed again.
* Variables: ``event`` (the event name), ``properties`` and every top-level property; a
  property named ``event`` or ``properties`` overrides those two. ``properties`` is
  RudderStack's flattened text, each top-level property as ``key: value`` followed by a space,
  so ``{{ properties }}`` templates render as before. Traits and context are not available.
* ``{{ x }}`` and ``{{{ x }}}`` both print ``x``: triple braces become double braces before
  compiling. Single braces are plain text. Output is never HTML-escaped: a subject or message
  is plain text (RudderStack escapes ``& < > " ' ` =`` in ``{{ }}``; a deliberate difference).
* Dotted paths reach nested properties (``{{ address.city }}``), preferring the property over
  a dict method of the same name (``{{ cart.items }}``); list items are ``{{ items[0] }}`` or
  ``{{ items.0 }}`` (Handlebars' ``items.[0]`` is not Jinja2 syntax).
* A missing variable, or any path below one, renders as empty text.
* Values print as JavaScript would: 5000 → ``5000``, 0 → ``0``, 5000.0 → ``5000``,
  true → ``true``, a list → ``a,b``, an object → ``[object Object]``, null → empty.
* Handlebars helpers (``{{#if}}``, ``{{#each}}``, ``{{! }}``) do not compile; Jinja2's
  ``{% if %}``, ``{% for %}`` and filters are available instead.

A template that does not compile is a configuration error at startup, naming its key. A render
that fails raises ``TemplateRenderError``; the map stage turns it into RudderStack's rejection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined, meta
from jinja2.sandbox import SandboxedEnvironment

from processor.config import ConfigError, DestinationConfig

_HANDLEBARS_HELPER_MARKS = ("{{#", "{{/", "{{!", "{{else", "{{^")


class TemplateConfigError(ConfigError):
    """An ``eventTemplateMap`` template that does not compile."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class TemplateRenderError(Exception):
    """Rendering a subject or message failed (for example arithmetic on a text property)."""


def js_string(value: object) -> str:
    """The text JavaScript's ``String(value)`` gives for a JSON value."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return ",".join(_js_scalar_string(item) for item in _array_leaves(value))
    return _js_scalar_string(value)


def _js_scalar_string(value: object) -> str:
    if value is None:
        return ""  # inside an array, as Array.prototype.join writes it
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _array_leaves(array: list[Any] | tuple[Any, ...]) -> list[object]:
    """What joining a (nested) array joins: its non-array items in order, an empty array as
    empty text. Without recursion, so an array nested as deep as the JSON parser allows is
    text like any other."""
    leaves: list[object] = []
    pending: list[object] = [array]
    while pending:
        node = pending.pop()
        if isinstance(node, list | tuple):
            if node:
                pending.extend(reversed(node))
            elif node is not array:
                leaves.append("")
        else:
            leaves.append(node)
    return leaves


def _printed(value: object) -> str:
    """What a ``{{ }}`` prints: like Handlebars, null and missing values print nothing."""
    if value is None or isinstance(value, Undefined):
        return ""
    return js_string(value)


class _PropertyFirstEnvironment(SandboxedEnvironment):
    """Reads ``a.b`` on a mapping as its key ``b`` first, as Handlebars reads data paths."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


_ENVIRONMENT = _PropertyFirstEnvironment(
    autoescape=False, undefined=ChainableUndefined, finalize=_printed
)


class EventTemplates:
    """Every non-empty ``eventTemplateMap[].to`` and ``.message``, compiled once, by event name."""

    def __init__(self, destination: DestinationConfig) -> None:
        # Same rules as DestinationConfig.template_for: empty `from` ignored, later entry wins.
        self._subjects: dict[str, _Compiled | None] = {}
        self._messages: dict[str, _Compiled | None] = {}
        for index, mapping in enumerate(destination.eventTemplateMap):
            if mapping.from_:
                key = f"destination.eventTemplateMap[{index}]"
                self._subjects[mapping.from_] = _compile_optional(f"{key}.to", mapping.to)
                self._messages[mapping.from_] = _compile_optional(f"{key}.message", mapping.message)

    def render(self, event: str, properties: Mapping[str, Any] | None) -> str | None:
        """The subject for an event, or None when its mapping has no template.

        A track without ``properties`` renders with none (RudderStack fails it: a deliberate fix).
        """
        return _render(self._subjects.get(event), event, properties)

    def render_message(self, event: str, properties: Mapping[str, Any] | None) -> str | None:
        """The ticket's first message for an event (same variables as the subject), or None
        when its mapping has no message template."""
        return _render(self._messages.get(event), event, properties)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A compiled template, and whether it reads ``properties`` (flattening costs per event)."""

    template: Template
    reads_flattened: bool


def _render(
    compiled: _Compiled | None, event: str, properties: Mapping[str, Any] | None
) -> str | None:
    if compiled is None:
        return None
    variables = _variables(event, properties or {}, compiled.reads_flattened)
    try:
        return compiled.template.render(variables).strip()
    except Exception as error:  # any failure inside a template is the template's
        raise TemplateRenderError(f"{event}: {error}") from error


def _compile_optional(key: str, source: str | None) -> _Compiled | None:
    """An empty or missing template means none."""
    return _compile(key, source) if source else None


def _compile(key: str, source: str) -> _Compiled:
    handlebars_free = source.strip().replace("{{{", "{{").replace("}}}", "}}")
    try:
        parsed = _ENVIRONMENT.parse(handlebars_free)
        template = _ENVIRONMENT.from_string(parsed)
        # A template's globals are a ChainMap over the environment's, which every render
        # copies key by key; as a plain dict a render costs less than half.
        template.globals = dict(template.globals)
        return _Compiled(template, "properties" in meta.find_undeclared_variables(parsed))
    except TemplateSyntaxError as error:
        hint = ""
        if any(mark in source for mark in _HANDLEBARS_HELPER_MARKS):
            hint = "; Handlebars helpers are not supported, use Jinja2 {% if %} / {% for %}"
        raise TemplateConfigError(key, f"invalid template: {error.message}{hint}") from None


def _variables(event: str, properties: Mapping[str, Any], with_flattened: bool) -> dict[str, Any]:
    if not with_flattened:
        return {"event": event, **properties}
    flattened = "".join(f"{name}: {js_string(value)} " for name, value in properties.items())
    return {"event": event, "properties": flattened, **properties}
