"""A prompt's voice settings on the admin side: storage, PATCH merge, audit, checks, the sample.

The settings are validated twice: their shape and ranges by `app.schemas.PromptVoice`
(on every request), and the STT/TTS provider names here, against the provider registry
the process runs with (so a name is accepted exactly when a call could use it).

They are stored in ``prompts.voice`` as the `PromptVoice` fields that differ from their
defaults (NULL when none does), so a prompt that never set a value follows the gateway's
defaults as they evolve.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import logging
import wave
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.schemas import PromptVoice
from app.services.admin.errors import Unavailable, ValidationFailed
from app.services.providers.base import Capability, ProviderError
from app.services.providers.registry import ProviderRegistry

logger = logging.getLogger(__name__)

#: The TTS provider used when neither the prompt nor the gateway names one (`VOICE_TTS_PROVIDER`'s default).
DEFAULT_TTS_PROVIDER = "espeak"
#: Said in a voice sample when the prompt has no greeting.
SAMPLE_TEXT = "Hello, thanks for calling. This is how I sound on the phone."
#: A voice sample is cut to this many characters of text.
SAMPLE_MAX_CHARS = 200
#: A sample is synthesised at the rate of a ulaw call (what a caller hears), in Hz.
SAMPLE_RATE_HZ = 8000


class VoiceSampleUnavailable(Unavailable):
    """No voice sample can be made now: no TTS provider, not configured, or it failed (HTTP 503)."""

    code = "voice_sample_unavailable"


def stored_voice(voice: PromptVoice) -> dict[str, Any] | None:
    """What goes in ``prompts.voice``: the fields that differ from their defaults, or None."""
    data = voice.model_dump(mode="json", exclude_defaults=True)
    if voice.transfer_targets:  # a target keeps its own defaults out too, but always its name
        data["transfer_targets"] = [
            t.model_dump(mode="json", exclude_defaults=True) for t in voice.transfer_targets
        ]
    return data or None


def read_voice(data: dict[str, Any] | None, prompt_name: str = "") -> PromptVoice:
    """The `PromptVoice` in a ``prompts.voice`` value; defaults (logged) when it does not validate.

    Args:
        data: the stored JSON object, or None.
        prompt_name: for the log line.
    """
    try:
        return PromptVoice.model_validate(data or {})
    except ValidationError as exc:
        logger.error("prompt=%s stored voice settings are not valid; showing defaults: %s", prompt_name, exc)
        return PromptVoice()


def patched_voice(stored: dict[str, Any] | None, patch: PromptVoice | None) -> PromptVoice:
    """The settings after a PATCH: the fields sent in `patch` over the stored ones.

    Args:
        stored: the ``prompts.voice`` value.
        patch: the request's ``voice`` (only the fields it was sent with count); None resets
            every voice setting to its default.

    Raises:
        ValidationFailed: the merged settings are not valid (field ``voice.<name>``).
    """
    if patch is None:
        return PromptVoice()
    merged = {**read_voice(stored).model_dump(), **patch.model_dump(include=patch.model_fields_set)}
    try:
        return PromptVoice.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationFailed(f"voice.{where}" if where else "voice", str(first.get("msg"))) from exc


def voice_audit(data: dict[str, Any] | None) -> dict[str, Any]:
    """The voice settings as flat ``voice.<field>`` entries, for the audit trail's diff."""
    voice = read_voice(data).model_dump(mode="json")
    return {f"voice.{key}": value for key, value in voice.items()}


def check_voice_providers(
    voice: PromptVoice, providers: ProviderRegistry | None, stored: PromptVoice | None = None
) -> None:
    """Refuse STT/TTS provider names the registry does not hold (empty means the gateway's).

    Args:
        voice: the settings to save.
        providers: the process's provider registry.
        stored: the settings saved before; a name kept unchanged is not checked again (a
            provider uninstalled since then does not block editing the greeting).

    Raises:
        ValidationFailed: field ``voice.stt_provider`` or ``voice.tts_provider``; the message
            lists the known names.
    """
    for field, capability, name in (
        ("stt_provider", Capability.STT, voice.stt_provider),
        ("tts_provider", Capability.TTS, voice.tts_provider),
    ):
        if not name or (stored is not None and getattr(stored, field) == name):
            continue
        known = providers.names(capability) if providers is not None else []
        if name not in known:
            listed = ", ".join(known) or "none installed"
            raise ValidationFailed(
                f"voice.{field}", f"unknown {capability.value.upper()} provider '{name}' (known: {listed})"
            )


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """One entry of a provider picker: registry name, human label, and whether it is ready."""

    name: str
    label: str
    configured: bool
    detail: str


def provider_choices(providers: ProviderRegistry | None, capability: Capability) -> list[ProviderChoice]:
    """The providers of one capability for a picker, by name (empty without a registry)."""
    if providers is None:
        return []
    choices = []
    for provider in providers.all(capability):
        status = provider.status()
        choices.append(ProviderChoice(status.name, status.label, status.configured, status.detail))
    return choices


def pcm_to_wav(pcm: bytes, sample_rate_hz: int) -> bytes:
    """Wrap 16-bit mono little-endian PCM (s16le) at `sample_rate_hz` (Hz) in a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(pcm)
    return out.getvalue()


async def voice_sample(
    providers: ProviderRegistry | None,
    voice: PromptVoice,
    *,
    default_tts_provider: str = DEFAULT_TTS_PROVIDER,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    timeout_s: float = 15.0,
) -> bytes:
    """A short WAV of the prompt's voice saying its greeting (or `SAMPLE_TEXT`).

    Uses the TTS provider's ``synthesize(text, voice=, sample_rate_hz=) -> bytes`` (s16le
    mono PCM at `sample_rate_hz`, or a whole WAV file), sync or async.

    Args:
        providers: the process's provider registry.
        voice: the prompt's settings (``tts_provider``, ``tts_voice``, ``greeting``).
        default_tts_provider: used when the prompt names no TTS provider.
        sample_rate_hz: rate of the sample, in Hz (8000: what a caller hears on a ulaw call).
        timeout_s: longest wait for the provider, in s.

    Returns:
        The WAV file's bytes.

    Raises:
        VoiceSampleUnavailable: no such TTS provider, not configured, cannot synthesise
            on its own, failed or timed out.
    """
    name = voice.tts_provider or default_tts_provider
    if providers is None or not providers.names(Capability.TTS):
        raise VoiceSampleUnavailable("no TTS provider configured")
    try:
        provider = providers.get(Capability.TTS, name)
    except ProviderError as exc:
        raise VoiceSampleUnavailable(str(exc)) from exc
    synthesize = getattr(provider, "synthesize", None)
    if synthesize is None:
        raise VoiceSampleUnavailable(f"TTS provider '{name}' cannot make a voice sample")
    text = (voice.greeting or SAMPLE_TEXT)[:SAMPLE_MAX_CHARS]
    try:
        async with asyncio.timeout(timeout_s):
            audio = synthesize(text, voice=voice.tts_voice or None, sample_rate_hz=sample_rate_hz)
            if inspect.isawaitable(audio):
                audio = await audio
    except TimeoutError as exc:
        raise VoiceSampleUnavailable(f"TTS provider '{name}' did not answer within {timeout_s:g} s") from exc
    except ProviderError as exc:
        raise VoiceSampleUnavailable(f"TTS provider '{name}': {exc}") from exc
    except Exception as exc:
        logger.warning("voice sample: TTS provider %s failed: %s", name, exc)
        raise VoiceSampleUnavailable(f"TTS provider '{name}' failed: {type(exc).__name__}") from exc
    if not isinstance(audio, bytes | bytearray) or not audio:
        raise VoiceSampleUnavailable(f"TTS provider '{name}' returned no audio")
    return bytes(audio) if audio[:4] == b"RIFF" else pcm_to_wav(bytes(audio), sample_rate_hz)
