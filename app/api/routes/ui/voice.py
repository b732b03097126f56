"""The "Voice" fieldset of the UI prompt form: values to show, parsing, errors in the form's words.

Inputs are named ``voice_<field>`` after `app.schemas.PromptVoice`; transfer targets are
rows of ``target_name``, ``target_description``, ``target_context``, ``target_extension``,
``target_priority`` and ``target_endpoint`` (one of each per row; empty rows are skipped).
Error keys are the ids of the inputs (``voice_end_of_turn_ms``, ``voice_target_0_endpoint``),
so the error summary links to the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import annotated_types
from pydantic import ValidationError
from starlette.datastructures import FormData

from app.api.routes.ui.messages import FieldErrors, error_sentence
from app.schemas import PromptVoice
from app.services.admin.voice import ProviderChoice, provider_choices
from app.services.providers.base import Capability
from app.services.providers.registry import ProviderRegistry

#: Empty transfer-target rows shown below the saved ones.
BLANK_TARGET_ROWS = 2
TARGET_FIELDS = ("name", "description", "context", "extension", "priority", "endpoint")
CHECKBOXES = ("barge_in", "offer_end_call", "offer_transfer_call")
#: Numeric fields: (label, unit, whole number).
NUMBERS: dict[str, tuple[str, str, bool]] = {
    "end_of_turn_ms": ("End-of-turn silence", "ms", True),
    "barge_in_min_speech_ms": ("Minimum speech to interrupt", "ms", True),
    "reprompt_after_s": ("Reprompt after", "s", False),
    "max_reprompts": ("Reprompts before goodbye", "", True),
    "max_duration_s": ("Maximum call length", "s", True),
    "dtmf_pause_ms": ("DTMF pause", "ms", True),
}
#: Every voice input's label, as the form shows it (the error summary uses them too).
LABELS: dict[str, str] = {
    "voice_default_mode": "Default mode",
    "voice_greeting": "Greeting",
    "voice_stt_provider": "Speech-to-text provider",
    "voice_stt_model": "Speech-to-text model",
    "voice_stt_language": "Speech-to-text language",
    "voice_tts_provider": "Text-to-speech provider",
    "voice_tts_voice": "Voice",
    "voice_tts_language": "Text-to-speech language",
    "voice_barge_in": "Barge-in",
    "voice_reprompt_text": "Reprompt text",
    "voice_goodbye_text": "Goodbye text",
    "voice_offer_end_call": "Offer end_call",
    "voice_offer_transfer_call": "Offer transfer_call",
    "voice_transfer_targets": "Transfer targets",
    **{f"voice_{name}": label for name, (label, _unit, _whole) in NUMBERS.items()},
}
TEXT_FIELDS = tuple(
    n
    for n in PromptVoice.model_fields
    if n not in CHECKBOXES and n not in NUMBERS and n != "transfer_targets"
)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number_text(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def voice_values(form: FormData | None = None, voice: PromptVoice | None = None) -> dict[str, Any]:
    """What the fieldset shows: what was typed (`form`), else the stored settings (or defaults).

    A form posted without the fieldset (no ``voice_default_mode``) counts as the defaults.

    Returns:
        ``{"<field>": str | bool, ..., "targets": [{"name": str, ...}, ...]}`` with
        `BLANK_TARGET_ROWS` empty rows at the end.
    """
    values: dict[str, Any] = {}
    targets: list[dict[str, str]] = []
    if form is not None and "voice_default_mode" not in form:
        form = None  # posted without the Voice fieldset: the defaults
    if form is not None:
        values = {name: _text(form, f"voice_{name}") for name in (*TEXT_FIELDS, *NUMBERS)}
        values.update({name: form.get(f"voice_{name}") == "on" for name in CHECKBOXES})
        values["greeting"] = str(form.get("voice_greeting") or "")
        columns = [[str(v).strip() for v in form.getlist(f"target_{f}")] for f in TARGET_FIELDS]
        for cells in zip(*columns, strict=False):
            if any(cells):
                targets.append(dict(zip(TARGET_FIELDS, cells, strict=True)))
    else:
        current = voice or PromptVoice()
        for name in (*TEXT_FIELDS, *CHECKBOXES):
            values[name] = getattr(current, name)
        values.update({name: _number_text(getattr(current, name)) for name in NUMBERS})
        for target in current.transfer_targets:
            row = target.model_dump()
            row["priority"] = str(row["priority"]) if target.context else ""
            targets.append({k: str(v) for k, v in row.items()})
    blank = dict.fromkeys(TARGET_FIELDS, "")
    values["targets"] = targets + [dict(blank) for _ in range(BLANK_TARGET_ROWS)]
    return values


def _bounds(name: str) -> tuple[Any, Any]:
    low = high = None
    for item in PromptVoice.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high


def _parse_numbers(values: Mapping[str, Any], errors: FieldErrors) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for name, (_label, _unit, whole) in NUMBERS.items():
        text = str(values.get(name, "")).strip()
        if not text:
            continue  # the default
        try:
            parsed[name] = int(text) if whole else float(text)
        except ValueError:
            errors[f"voice_{name}"] = _range_message(name)
    return parsed


def _range_message(name: str) -> str:
    label, unit, whole = NUMBERS[name]
    low, high = _bounds(name)
    kind = "a whole number" if whole else "a number"
    return f"{label} must be {kind} from {low:g} to {high:g}{' ' + unit if unit else ''}."


def _target_rows(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in values.get("targets", []):
        if not any(row.values()):
            continue
        target: dict[str, Any] = {k: row.get(k, "") for k in TARGET_FIELDS if k != "priority"}
        priority = str(row.get("priority", "")).strip()
        target["priority"] = int(priority) if priority.isdigit() else (priority or 1)
        rows.append(target)
    return rows


#: Transfer-target columns: (label, rule in words for pattern errors).
_TARGET_COLUMNS: dict[str, tuple[str, str | None]] = {
    "name": ("Name", "1 to 40 lower-case letters, digits and _ (what the model says)"),
    "description": ("Description", None),
    "context": ("Context", "free of spaces, commas and brackets"),
    "extension": ("Extension", "free of spaces, commas and brackets"),
    "priority": ("Priority", None),
    "endpoint": ("Endpoint", None),
}
LANGUAGE_RULE = "a language tag such as en or en-US"


def _message(loc: tuple[Any, ...], error: Mapping[str, Any]) -> tuple[str, str]:
    """The input id and the form's message for one `PromptVoice` validation error."""
    name = str(loc[0]) if loc else "transfer_targets"
    if name == "transfer_targets" and len(loc) >= 3:
        index, field = int(loc[1]), str(loc[2])
        where = f"Transfer target {index + 1}"
        if error.get("type") == "value_error":  # our own rule, already in words
            return f"voice_target_{index}_{field}", f"{where}: {error.get('msg')}."
        label, rule = _TARGET_COLUMNS.get(field, (field, None))
        return f"voice_target_{index}_{field}", f"{where}: {error_sentence(label, error, rule)}"
    if name in NUMBERS:
        return f"voice_{name}", _range_message(name)
    label = LABELS.get(f"voice_{name}", name)
    if name == "transfer_targets":
        return "voice_transfer_targets", f"{label}: {error.get('msg')}."
    rule = LANGUAGE_RULE if name.endswith("_language") else None
    return f"voice_{name}", error_sentence(label, error, rule)


def voice_from_values(values: Mapping[str, Any]) -> tuple[PromptVoice | None, FieldErrors]:
    """Validate the fieldset's values with the API's own schema.

    Returns:
        The settings and no errors, or None and the errors by input id.
    """
    errors: FieldErrors = {}
    data: dict[str, Any] = {name: values.get(name, "") for name in TEXT_FIELDS}
    data.update({name: bool(values.get(name)) for name in CHECKBOXES})
    data.update(_parse_numbers(values, errors))
    data["transfer_targets"] = _target_rows(values)
    try:
        voice = PromptVoice.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            key, message = _message(tuple(error.get("loc", ())), error)
            errors.setdefault(key, message)
        return None, errors
    return (None, errors) if errors else (voice, errors)


def voice_admin_error(field: str | None, message: str) -> FieldErrors | None:
    """A service error about ``voice.<field>`` as the form's error, or None when it is not one."""
    if not field or not field.startswith("voice."):
        return None
    name = field.removeprefix("voice.").split(".")[0]
    key = f"voice_{name}"
    return {key: f"{LABELS.get(key, name)}: {message}"}


def voice_form_context(providers: ProviderRegistry | None) -> dict[str, list[ProviderChoice]]:
    """The provider pickers' entries (registry name, label, ready or why not)."""
    return {
        "stt_providers": provider_choices(providers, Capability.STT),
        "tts_providers": provider_choices(providers, Capability.TTS),
    }
