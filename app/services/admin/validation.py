"""Pure validation of tool definitions: JSON Schema of the parameters, URL template, headers.

Shared by the REST API and the web UI (both go through `ToolService`).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from app.core.security import MASK, is_secret_header
from app.services.admin.errors import ValidationFailed

#: Deepest nesting of JSON objects and arrays a tool's `parameters` schema may have.
#: Real tool schemas stay under ten; the bound keeps jsonschema's recursive meta-schema
#: check (and the executor's argument check) far from Python's recursion limit.
MAX_SCHEMA_DEPTH = 32
#: Placeholders every tool may use besides its own parameters (from `CallContext`).
CONTEXT_PLACEHOLDERS = frozenset({"uniqueid", "channel_id", "caller_id_number", "caller_id_name"})
_HEADER_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")


def url_placeholders(url: str) -> list[str]:
    """The `{placeholder}` names in a URL template, in order.

    Raises:
        ValidationFailed: the braces do not pair up (field ``url``).
    """
    try:
        parsed = list(string.Formatter().parse(url))
    except ValueError as exc:
        raise ValidationFailed("url", f"invalid placeholder syntax: {exc}") from exc
    names: list[str] = []
    for _literal, name, _spec, _conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValidationFailed("url", f"placeholder {{{name}}} is not a simple name")
        names.append(name)
    return names


def json_depth(value: object) -> int:
    """How deeply JSON objects and arrays nest in `value`, counted without recursion.

    Args:
        value: a decoded JSON value (dicts, lists, scalars).

    Returns:
        0 for a scalar, 1 for a flat object or array, one more per level inside.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, Mapping):
            children: Iterable[object] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def validate_parameters_schema(schema: Mapping[str, Any]) -> None:
    """Check a tool's `parameters` against its JSON Schema meta-schema.

    The draft comes from ``$schema`` when present (else 2020-12). Functions take
    named arguments, so the schema must describe an object.

    Raises:
        ValidationFailed: nested deeper than `MAX_SCHEMA_DEPTH`, not a valid schema, or not
            an object schema (field ``parameters``).
    """
    depth = json_depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise ValidationFailed(
            "parameters",
            f"the schema is nested {depth} levels deep; at most {MAX_SCHEMA_DEPTH} levels "
            "of JSON objects and arrays are allowed",
        )
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        at = f" at /{where}" if where else ""
        raise ValidationFailed("parameters", f"not a valid JSON Schema{at}: {exc.message}") from exc
    except RecursionError as exc:  # a backstop: the depth bound above should make this unreachable
        raise ValidationFailed("parameters", "the schema is nested too deeply to check") from exc
    if schema.get("type", "object") != "object":
        raise ValidationFailed("parameters", 'must be an object schema ("type": "object")')
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValidationFailed("parameters", '"properties" must be an object')


def validate_url(url: str, parameters: Mapping[str, Any]) -> None:
    """Check the tool URL: http(s), a host, and placeholders that name parameters.

    Raises:
        ValidationFailed: field ``url``.
    """
    placeholders = url_placeholders(url)
    probe = string.Formatter().vformat(url, (), _Probe()) if placeholders else url
    parts = urlsplit(probe)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed("url", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValidationFailed("url", "must name a host")
    properties = parameters.get("properties") or {}
    for name in placeholders:
        if name not in properties and name not in CONTEXT_PLACEHOLDERS:
            allowed = ", ".join(sorted(set(properties) | CONTEXT_PLACEHOLDERS))
            raise ValidationFailed(
                "url", f"placeholder {{{name}}} is not a parameter (use one of: {allowed})"
            )


class _Probe(dict[str, str]):
    """Fills every placeholder with ``x`` so the URL can be parsed."""

    def __missing__(self, key: str) -> str:
        return "x"


def validate_headers(headers: Mapping[str, Any]) -> None:
    """Header names must be HTTP tokens and values single-line strings.

    Raises:
        ValidationFailed: field ``headers.<name>``.
    """
    for name, value in headers.items():
        field = f"headers.{name}"
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            raise ValidationFailed(field, "header name must be an HTTP token (letters, digits, -)")
        if not isinstance(value, str):
            raise ValidationFailed(field, "header value must be a string")
        if "\r" in value or "\n" in value:
            raise ValidationFailed(field, "header value must be on one line")


def tool_secret_names(headers: Mapping[str, Any], flagged: Sequence[str]) -> list[str]:
    """Header names whose values are secret: credential-looking or flagged by the admin."""
    lowered = {f.lower() for f in flagged}
    return sorted(h for h in headers if is_secret_header(h) or h.lower() in lowered)


def mask_headers(headers: Mapping[str, str], secret: Sequence[str]) -> dict[str, str]:
    """`headers` with the values of the `secret` header names replaced by the mask."""
    return {k: (MASK if k in secret else v) for k, v in headers.items()}
