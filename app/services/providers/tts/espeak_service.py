"""`EspeakTTSService`: a pipecat `TTSService` speaking through a local ``espeak-ng`` process.

One ``espeak-ng --stdout`` process per sentence; the text goes in on stdin (never on
the command line) and a WAV stream (44-byte header, s16le mono, 22050 Hz for the
stock voices) comes out, read as it is produced and resampled to the call's rate
with pipecat's soxr stream resampler. Offline; imported only by
`app.services.providers.tts.espeak`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pipecat.frames.frames import ErrorFrame, Frame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

logger = logging.getLogger(__name__)

#: Size of a canonical WAV header as espeak-ng writes it, in bytes.
WAV_HEADER_BYTES = 44
#: Bytes read from espeak-ng's stdout per chunk.
READ_CHUNK_BYTES = 4096


class EspeakTTSService(TTSService):
    """espeak-ng speech at `sample_rate` (s16le mono), one subprocess per sentence.

    Args:
        sample_rate: rate of the produced frames, in Hz.
        binary: the espeak-ng executable (name or path).
        voice: espeak-ng voice, e.g. ``"en-us"``.
        words_per_minute: speaking rate (espeak-ng ``-s``).
        **kwargs: passed to `TTSService`.
    """

    def __init__(
        self, *, sample_rate: int, binary: str, voice: str, words_per_minute: int, **kwargs: Any
    ) -> None:
        super().__init__(
            sample_rate=sample_rate,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model="espeak-ng", voice=voice, language=None),
            **kwargs,
        )
        self._binary = binary
        self._words_per_minute = words_per_minute
        self._espeak_rate_hz = 22050  # replaced by the rate in each WAV header

    def can_generate_metrics(self) -> bool:
        """True: time to first audio is measured."""
        return True

    async def _espeak_pcm(self, process: asyncio.subprocess.Process) -> AsyncIterator[bytes]:
        """The PCM part of espeak-ng's WAV output, chunk by chunk (raises on a short header)."""
        assert process.stdout is not None
        header = await process.stdout.readexactly(WAV_HEADER_BYTES)
        if header[:4] != b"RIFF":
            raise RuntimeError("espeak-ng wrote no WAV header")
        self._espeak_rate_hz = int.from_bytes(header[24:28], "little")
        while chunk := await process.stdout.read(READ_CHUNK_BYTES):
            yield chunk

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Speak `text`: audio frames at `sample_rate` as espeak-ng produces them, or an `ErrorFrame`."""
        try:
            process = await asyncio.create_subprocess_exec(
                self._binary,
                "--stdout",
                "-v",
                str(self._settings.voice),
                "-s",
                str(self._words_per_minute),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            yield ErrorFrame(error=f"espeak-ng could not start: {exc}", exception=exc)
            return
        try:
            assert process.stdin is not None
            process.stdin.write(text.encode("utf-8") + b"\n")
            process.stdin.close()
            await self.start_tts_usage_metrics(text)
            pcm = self._espeak_pcm(process)
            first = await anext(pcm)
            async for frame in self._stream_audio_frames_from_iterator(
                _prepend(first, pcm), in_sample_rate=self._espeak_rate_hz, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
            if await process.wait() != 0:
                yield ErrorFrame(error=f"espeak-ng exited with status {process.returncode}")
        except (OSError, RuntimeError, StopAsyncIteration, asyncio.IncompleteReadError) as exc:
            logger.warning("espeak-ng failed: %s", exc)
            yield ErrorFrame(error=f"espeak-ng error: {exc}", exception=exc)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`first`, then every chunk of `rest`."""
    yield first
    async for chunk in rest:
        yield chunk
