"""Form error messages in the form's own words: the field's label and a whole sentence.

The API names fields as the schema does (`content`) and may quote pydantic's
wording (`String should match pattern ...`); a person filling in a form sees the
label (`System prompt`) and what to type instead. Name rules come from
`app.schemas`, the same words the forms' hints show, so hint and error agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from app.api.errors import field_from_loc
from app.services.admin.errors import AdminError

FieldErrors = dict[str, str]


def _label(field: str, labels: Mapping[str, str]) -> str:
    top, _, rest = field.partition(".")
    label = labels.get(top, top.replace("_", " ").capitalize())
    return f"{label} “{rest}”" if rest else label


def _sentence(label: str, error: Mapping[str, Any], rule: str | None) -> str:
    """One pydantic error as a sentence about `label` (shapes as in pydantic-core's error types)."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return f"{label} is required."
    if kind == "string_too_short":
        return f"{label} must be at least {ctx.get('min_length')} characters long."
    if kind == "string_too_long":
        return f"{label} must be at most {ctx.get('max_length'):,} characters long."
    if kind == "string_pattern_mismatch":
        return f"{label} must be {rule}." if rule else f"{label} must not contain NUL characters."
    bounds = {
        "greater_than": "more than {gt:g}",
        "greater_than_equal": "at least {ge:g}",
        "less_than": "less than {lt:g}",
        "less_than_equal": "at most {le:g}",
    }
    if kind in bounds:
        return f"{label} must be {bounds[kind].format(**ctx)}."
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return f"{label} must be a number."
    if kind == "literal_error":
        return f"{label} must be one of {ctx.get('expected')}."
    if kind == "string_type":
        return f"{label} must be text."
    if kind == "dict_type":
        return f"{label} must be a JSON object."
    message = str(error.get("msg", "invalid value"))
    return f"{label}: {message[:1].lower()}{message[1:]}."


def error_sentence(label: str, error: Mapping[str, Any], rule: str | None = None) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as a sentence about `label`."""
    return _sentence(label, error, rule)


def pydantic_errors(
    exc: ValidationError, labels: Mapping[str, str], rules: Mapping[str, str] | None = None
) -> FieldErrors:
    """Schema errors as ``{form field: sentence}``, the first error of each field.

    Args:
        exc: the error from building the API schema out of the form.
        labels: form field -> its label on the page.
        rules: form field -> its format in words (the hint's wording), for pattern errors.
    """
    errors: FieldErrors = {}
    for error in exc.errors():
        path = field_from_loc(error.get("loc", ())) or "form"
        top = path.partition(".")[0]
        rule = (rules or {}).get(top)
        errors.setdefault(top, _sentence(_label(path, labels), error, rule))
    return errors


def admin_errors(exc: AdminError, labels: Mapping[str, str]) -> FieldErrors:
    """A service error as ``{form field: message}``, led by the field's label."""
    field = exc.field or "form"
    top = field.partition(".")[0]
    return {top: f"{_label(field, labels)}: {exc.message}"}


def json_error(label: str, problem: str) -> str:
    """A JSON textarea's parse problem (`JsonFieldError`) as a sentence about `label`."""
    return f"{label} is required." if problem == "required" else f"{label}: {problem}"
