"""Real speech for the voice stand-ins and tests: espeak-ng to make it, pocketsphinx to hear it.

Everything here runs offline with what the machine has: the ``espeak-ng`` and ``sox``
binaries (Debian packages) and the English model shipped in the ``pocketsphinx`` wheel.
Audio is raw 16-bit signed little-endian mono PCM (s16le) unless a name says WAV.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import threading
import wave
from typing import Any

import numpy as np

#: espeak-ng speaking rate used by default, in words per minute. Slower than espeak's
#: own 175 because pocketsphinx hears slow espeak speech far better.
DEFAULT_WORDS_PER_MINUTE = 110
#: The rate of pocketsphinx's shipped acoustic model, in Hz.
POCKETSPHINX_RATE_HZ = 16000


def _espeak_argv(voice: str, words_per_minute: int) -> list[str]:
    return ["espeak-ng", "--stdout", "-v", voice, "-s", str(words_per_minute)]


def _sox_argv(sample_rate_hz: int) -> list[str]:
    """WAV on stdin → s16le mono raw at `sample_rate_hz` on stdout."""
    return ["sox", "-t", "wav", "-", "-r", str(sample_rate_hz), "-c", "1", "-b", "16", *_SOX_RAW_OUT]


_SOX_RAW_OUT = ("-e", "signed-integer", "-t", "raw", "-")


def synthesize(
    text: str,
    *,
    sample_rate_hz: int = 16000,
    voice: str = "en-us",
    words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
) -> bytes:
    """Speak `text` with espeak-ng and return s16le mono PCM at `sample_rate_hz` (blocking).

    Args:
        text: what to say (passed on stdin).
        sample_rate_hz: output rate, e.g. 8000, 16000, 24000.
        voice: espeak-ng voice.
        words_per_minute: espeak-ng ``-s``.

    Raises:
        subprocess.CalledProcessError: espeak-ng or sox failed.
    """
    wav = subprocess.run(
        _espeak_argv(voice, words_per_minute), input=text.encode(), capture_output=True, check=True
    ).stdout
    return subprocess.run(_sox_argv(sample_rate_hz), input=wav, capture_output=True, check=True).stdout


async def asynthesize(
    text: str,
    *,
    sample_rate_hz: int = 16000,
    voice: str = "en-us",
    words_per_minute: int = DEFAULT_WORDS_PER_MINUTE,
) -> bytes:
    """`synthesize` without blocking the event loop (two subprocesses).

    Raises:
        RuntimeError: espeak-ng or sox exited with an error.
    """
    wav = await _run(_espeak_argv(voice, words_per_minute), text.encode())
    return await _run(_sox_argv(sample_rate_hz), wav)


async def _run(argv: list[str], stdin: bytes) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {process.returncode}: {err.decode(errors='replace')}")
    return out


def silence(duration_ms: int, sample_rate_hz: int) -> bytes:
    """`duration_ms` of digital silence as s16le mono at `sample_rate_hz`."""
    return bytes(2 * (sample_rate_hz * duration_ms // 1000))


def rms(pcm: bytes) -> float:
    """Root-mean-square level of s16le audio, in sample units (0 for silence, 32767 full scale)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def pcm_to_wav(pcm: bytes, sample_rate_hz: int) -> bytes:
    """Wrap s16le mono PCM in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate_hz)
        out.writeframes(pcm)
    return buffer.getvalue()


def wav_to_pcm(data: bytes) -> tuple[bytes, int]:
    """The s16le PCM and rate (Hz) of a mono 16-bit WAV file.

    Raises:
        ValueError: not a 16-bit mono WAV.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise ValueError("only 16-bit mono WAV is supported")
            return wav.readframes(wav.getnframes()), wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a WAV file: {exc}") from exc


_decoder_lock = threading.Lock()
_decoder: Any = None


def transcribe(pcm: bytes, sample_rate_hz: int) -> str:
    """What pocketsphinx hears in s16le mono audio (blocking; run it in a thread).

    Audio at another rate is resampled to 16 kHz with soxr. One decoder (about 0.5 s to
    load) is shared by the process, one utterance at a time, reset before each.

    Args:
        pcm: the utterance.
        sample_rate_hz: its rate.

    Returns:
        The hypothesis, lower case, or ``""`` when nothing was recognised.
    """
    global _decoder
    import pocketsphinx  # type: ignore[import-untyped]
    import soxr  # type: ignore[import-untyped]

    if sample_rate_hz != POCKETSPHINX_RATE_HZ and pcm:
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
        pcm = soxr.resample(samples, sample_rate_hz, POCKETSPHINX_RATE_HZ).astype("<i2").tobytes()
    with _decoder_lock:
        if _decoder is None:
            _decoder = pocketsphinx.Decoder(samprate=POCKETSPHINX_RATE_HZ, loglevel="FATAL")
        # The decoder adapts its features (cepstral mean) to what it heard; reset them,
        # so that a transcript does not depend on earlier utterances.
        _decoder.reinit_feat()
        _decoder.start_utt()
        _decoder.process_raw(pcm, full_utt=True)
        _decoder.end_utt()
        hypothesis = _decoder.hyp()
    return str(hypothesis.hypstr).strip() if hypothesis is not None else ""
