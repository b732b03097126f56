"""A scripted caller on a call placed with :meth:`FakeAriServer.place_call`.

The caller is the far side of the Stasis channel. What it says reaches the
application only through a bridge with an externalMedia channel (as on a real
PBX), as binary frames paced at 20 ms in the external channel's format
(160 bytes μ-law at 8 kHz, or 640 bytes slin16 at 16 kHz); a clip that is not a
whole number of frames ends with a short frame, as Asterisk sends at the end of
a sound file. A silent caller sends nothing (:meth:`FakeCaller.silence` with
``send_frames=False``) or silent frames.

Everything the chan_websocket peer plays into the caller's bridge lands in
:attr:`FakeCaller.recording` with its arrival time, so a test can assert what a
caller would notice: what was heard, when the agent's audio started and stopped
relative to a caller event, and whether the agent's speech had gaps.

Example::

    fake = FakeAriServer(websocket_clients={"media_connection1": url})
    chan = await fake.place_call("ai_ari_app,AI_MODE=voice")
    caller = FakeCaller(fake, chan)
    await caller.wait_for_agent_audio(5)
    await caller.say("where is my order")      # espeak-ng + sox, cached
    await caller.press("1")
    await caller.hangup()
    assert caller.recording.gaps() == []
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import itertools
import re
import subprocess
import tempfile
import warnings
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import soxr  # type: ignore[import-untyped]

from app.testing.chan_websocket import FRAME_BYTES, PTIME_MS, SAMPLE_RATE_HZ, SILENT_FRAME, MediaSession

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # G.711 μ-law (stdlib on 3.11; audioop-lts later)

if TYPE_CHECKING:
    from app.testing.fake_ari import FakeAriServer, FakeChannel
    from app.testing.fake_bridges import FakePlayback

#: Where :meth:`FakeCaller.say` caches its speech (gitignored).
SPEECH_CACHE = Path(__file__).resolve().parents[2] / "test-artifacts" / "speech"

#: RMS (16-bit samples) above which a frame counts as speech rather than silence.
SPEECH_RMS = 300


@dataclass(frozen=True)
class HeardFrame:
    """One frame that reached the caller's ear.

    Attributes:
        time: ``loop.time()`` of arrival, in seconds.
        format: ``"ulaw"`` or ``"slin16"``.
        payload: The frame as played (usually 20 ms; shorter ones are possible).
    """

    time: float
    format: str
    payload: bytes

    @property
    def pcm16k(self) -> bytes:
        """The frame as s16le PCM at 16 kHz."""
        return _to_pcm(self.payload, self.format, 16000)

    @property
    def duration_s(self) -> float:
        """Length of the frame, in seconds."""
        bytes_per_s = SAMPLE_RATE_HZ[self.format] * (1 if self.format == "ulaw" else 2)
        return len(self.payload) / bytes_per_s

    @functools.cached_property
    def is_speech(self) -> bool:
        """True when the frame is louder than :data:`SPEECH_RMS`."""
        return audioop.rms(_to_pcm(self.payload, self.format, None), 2) > SPEECH_RMS


@dataclass(frozen=True)
class Gap:
    """A stretch inside the agent's speech with no frames or with silent frames.

    Attributes:
        start: ``loop.time()`` where it began, in seconds.
        end: ``loop.time()`` where it ended, in seconds.
        kind: ``"no_frames"`` (nothing arrived) or ``"silence"`` (silent frames).
    """

    start: float
    end: float
    kind: str

    @property
    def ms(self) -> float:
        """Length of the gap, in ms."""
        return (self.end - self.start) * 1000


@dataclass
class CallerRecording:
    """What the caller heard and did, with ``loop.time()`` timestamps (seconds).

    Attributes:
        frames: Frames that reached the caller's ear, in arrival order.
        events: What the caller did: ``(time, kind, detail)`` with kinds
            ``play_start``/``play_end`` (detail: seconds of audio), ``press``
            (digit), ``silence_start``/``silence_end``, ``hangup``, ``mark``.
        said: What the caller said (slin16 frames with their send times),
            whether or not a bridge carried it to the application.
    """

    frames: list[HeardFrame] = field(default_factory=list)
    events: list[tuple[float, str, Any]] = field(default_factory=list)
    said: list[HeardFrame] = field(default_factory=list)

    def event_times(self, kind: str) -> list[float]:
        """Times of the caller's events of one kind.

        Args:
            kind: e.g. ``"play_start"``.

        Returns:
            Their times, in order (s).
        """
        return [t for t, k, _ in self.events if k == kind]

    def speech_frames(self, start: float | None = None, end: float | None = None) -> list[HeardFrame]:
        """Non-silent frames heard in ``[start, end]``.

        Args:
            start: Earliest arrival (s), or from the beginning.
            end: Latest arrival (s), or to the end.

        Returns:
            The frames louder than :data:`SPEECH_RMS`.
        """
        return [
            f
            for f in self.frames
            if f.is_speech and (start is None or f.time >= start) and (end is None or f.time <= end)
        ]

    def heard_seconds(self) -> float:
        """Total length of everything heard, in seconds."""
        return sum(f.duration_s for f in self.frames)

    def audio_started_after(self, t: float) -> float | None:
        """When agent speech first reached the caller at or after ``t``.

        Args:
            t: A ``loop.time()`` (s), e.g. from :meth:`event_times`.

        Returns:
            Arrival time of the first speech frame, or ``None``.
        """
        frames = self.speech_frames(start=t)
        return frames[0].time if frames else None

    def audio_stopped_after(self, t: float, quiet_ms: float = 200) -> float:
        """When agent speech stopped reaching the caller after ``t``.

        Args:
            t: A ``loop.time()`` (s), e.g. when the caller started to talk over.
            quiet_ms: Speech must be absent this long (ms) to count as stopped.

        Returns:
            End time (arrival + length) of the last speech frame before a quiet
            stretch of ``quiet_ms`` that starts at or after ``t``; ``t`` itself
            when no speech arrived within ``quiet_ms`` of ``t``. Call it once the
            caller has listened for ``quiet_ms`` past the answer.
        """
        last_end = t
        for frame in self.speech_frames(start=t):
            if frame.time - last_end >= quiet_ms / 1000:
                return last_end
            last_end = frame.time + frame.duration_s
        return last_end

    def gaps(
        self,
        start: float | None = None,
        end: float | None = None,
        min_gap_ms: float = 60,
        include_silence: bool = False,
    ) -> list[Gap]:
        """Gaps inside the agent's speech: stretches with no frames (or silent frames).

        The window runs from the first to the last speech frame inside
        ``[start, end]``. Frames paced at 20 ms arrive back to back; a gap is a
        stretch of at least ``min_gap_ms`` between the end of one frame and the
        arrival of the next (``"no_frames"``) or, with ``include_silence``, a run
        of silent frames that long (``"silence"``). Arrival times are the fake's
        20 ms ticks, so a stall of the event loop the fake runs in shows as a gap too.

        Args:
            start: Window start (s), or the first speech frame.
            end: Window end (s), or the last speech frame.
            min_gap_ms: Shortest stretch that counts, in ms.
            include_silence: Also report runs of silent frames.

        Returns:
            The gaps, in time order.
        """
        speech = self.speech_frames(start, end)
        if not speech:
            return []
        window = [f for f in self.frames if speech[0].time <= f.time <= speech[-1].time]
        gaps: list[Gap] = []
        silent_since: float | None = None
        for prev, cur in itertools.pairwise(window):
            expected = prev.time + prev.duration_s
            if cur.time - expected >= min_gap_ms / 1000:
                gaps.append(Gap(expected, cur.time, "no_frames"))
            if include_silence:
                if not cur.is_speech and silent_since is None:
                    silent_since = cur.time
                elif cur.is_speech and silent_since is not None:
                    if cur.time - silent_since >= min_gap_ms / 1000:
                        gaps.append(Gap(silent_since, cur.time, "silence"))
                    silent_since = None
        return sorted(gaps, key=lambda g: g.start)

    def pcm(self, sample_rate_hz: int = 16000, keep_gaps: bool = True) -> bytes:
        """Everything heard as s16le mono PCM.

        Args:
            sample_rate_hz: Output rate in Hz.
            keep_gaps: Put silence where no frames arrived (as the caller's
                phone would play), instead of joining the frames.

        Returns:
            PCM bytes (2 bytes per sample).
        """
        if not keep_gaps:
            return b"".join(pcm for _, pcm in _runs(self.frames, sample_rate_hz))
        return _render([self.frames], sample_rate_hz)

    def wav(self, path: Path | None = None, sample_rate_hz: int = 16000, both_sides: bool = False) -> bytes:
        """Everything heard (or the whole call) as a WAV file.

        Args:
            path: Where to write it, or ``None`` to only return the bytes.
            sample_rate_hz: Output rate in Hz.
            both_sides: Mix in what the caller said, at the times it was said
                (the whole call, as a listener on the line would hear it).

        Returns:
            The WAV file's bytes (16-bit mono).
        """
        pcm = _render([self.frames, self.said], sample_rate_hz) if both_sides else self.pcm(sample_rate_hz)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate_hz)
            w.writeframes(pcm)
        data = buf.getvalue()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return data


def _runs(frames: list[HeardFrame], rate_hz: int) -> list[tuple[float, bytes]]:
    """Join back-to-back frames into runs, each resampled once: ``(start s, s16le PCM)``."""
    runs: list[tuple[float, bytes]] = []
    current: list[HeardFrame] = []

    def flush() -> None:
        if current:
            native = b"".join(
                _to_pcm(f.payload, f.format, SAMPLE_RATE_HZ[current[0].format]) for f in current
            )
            src = SAMPLE_RATE_HZ[current[0].format]
            runs.append((current[0].time, native if src == rate_hz else _resample(native, src, rate_hz)))
            current.clear()

    for frame in frames:
        if current and frame.time - (current[-1].time + current[-1].duration_s) > PTIME_MS / 1000:
            flush()
        current.append(frame)
    flush()
    return runs


def _render(tracks: list[list[HeardFrame]], rate_hz: int) -> bytes:
    """Place each track's runs at their times (from the earliest frame) and mix them."""
    import numpy as np

    track_runs = [_runs(track, rate_hz) for track in tracks]
    starts = [start for runs in track_runs for start, _ in runs]
    if not starts:
        return b""
    t0 = min(starts)
    pieces: list[tuple[int, Any]] = []
    for runs in track_runs:
        track_end = 0
        for start, pcm in runs:
            samples = np.frombuffer(pcm, dtype=np.int16)
            offset = max(int((start - t0) * rate_hz), track_end)  # a track's runs never overlap
            pieces.append((offset, samples))
            track_end = offset + len(samples)
    out = np.zeros(max(offset + len(samples) for offset, samples in pieces), dtype=np.int32)
    for offset, samples in pieces:
        out[offset : offset + len(samples)] += samples
    return bytes(np.clip(out, -32768, 32767).astype(np.int16).tobytes())


def _to_pcm(payload: bytes, fmt: str, rate_hz: int | None) -> bytes:
    """Decode a frame to s16le, resampled to ``rate_hz`` (``None``: keep its rate)."""
    pcm = audioop.ulaw2lin(payload, 2) if fmt == "ulaw" else payload[: len(payload) // 2 * 2]
    src = SAMPLE_RATE_HZ[fmt]
    if rate_hz is None or rate_hz == src:
        return pcm
    return _resample(pcm, src, rate_hz)


def _resample(pcm: bytes, src_hz: int, dst_hz: int) -> bytes:
    import numpy as np

    samples = np.frombuffer(pcm, dtype=np.int16)
    out = soxr.resample(samples, src_hz, dst_hz)
    return bytes(np.asarray(out, dtype=np.int16).tobytes())


def read_wav(path: Path) -> tuple[bytes, int]:
    """Read a mono 16-bit WAV file.

    Args:
        path: The file.

    Returns:
        ``(s16le PCM, sample rate in Hz)``.

    Raises:
        ValueError: Not 16-bit mono.
    """
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: need 16-bit mono WAV")
        return w.readframes(w.getnframes()), w.getframerate()


def synthesize(text: str, voice: str = "en-us", words_per_minute: int = 165) -> Path:
    """Speak ``text`` with ``espeak-ng``, resampled to 16 kHz mono with ``sox``; cached.

    Args:
        text: What to say.
        voice: espeak-ng voice.
        words_per_minute: espeak-ng speed.

    Returns:
        Path of a 16 kHz 16-bit mono WAV under ``test-artifacts/speech/``.
    """
    key = hashlib.sha256(f"{voice}|{words_per_minute}|{text}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower())[:40].strip("-")
    out = SPEECH_CACHE / f"{slug}-{key}.wav"
    if out.exists():
        return out
    SPEECH_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True,
            capture_output=True,
        )
        part = Path(tmp) / "out.wav"
        subprocess.run(
            ["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(part)],
            check=True,
            capture_output=True,
        )
        part.replace(out)
    return out


class FakeCaller:
    """The person on the phone, for one channel placed with ``place_call``.

    Args:
        fake: The fake PBX.
        channel: The caller's Stasis channel.

    Attributes:
        recording: What the caller heard and did.
        frames_sent: Frames sent towards the application (0 while unbridged).
    """

    def __init__(self, fake: FakeAriServer, channel: FakeChannel) -> None:
        """Bind to the channel and start listening to its bridge."""
        self.fake = fake
        self.channel = channel
        self.recording = CallerRecording()
        self.frames_sent = 0
        self._heard = asyncio.Event()
        fake.media.frame_sinks.setdefault(channel.id, []).append(self._on_frame)

    @property
    def playbacks(self) -> list[FakePlayback]:
        """ARI playbacks on the caller's channel (e.g. a recorded fallback prompt), oldest first."""
        return self.fake.bridges.playbacks_on(self.channel.id)

    def _on_frame(self, session: MediaSession, frame: bytes, now: float) -> None:
        if self.channel.hung_up:
            return
        heard = HeardFrame(now, session.format, frame)
        self.recording.frames.append(heard)
        if heard.is_speech:
            self._heard.set()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def mark(self, label: str) -> float:
        """Note a moment in :attr:`CallerRecording.events` (kind ``mark``).

        Args:
            label: Free text.

        Returns:
            The time noted (s).
        """
        now = self._now()
        self.recording.events.append((now, "mark", label))
        return now

    def _sessions(self) -> list[MediaSession]:
        """Media sessions bridged with the caller (who hears the caller)."""
        if self.channel.hung_up:
            return []
        out = []
        for peer in self.fake.bridges.peers(self.channel.id):
            session = self.fake.media.session_for(peer.id)
            if session is not None and session.connected:
                out.append(session)
        return out

    async def _send_frames(self, frames_by_format: dict[str, list[bytes]], count: int) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for i in range(count):
            if self.channel.hung_up:
                return
            if i < len(frames_by_format["slin16"]):
                self.recording.said.append(HeardFrame(loop.time(), "slin16", frames_by_format["slin16"][i]))
            for session in self._sessions():
                frames = frames_by_format[session.format]
                if i < len(frames):
                    await session.send_audio(frames[i])
                    self.frames_sent += 1
            next_at += PTIME_MS / 1000
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def play(self, audio: bytes | Path, sample_rate_hz: int = 16000) -> float:
        """Speak pre-recorded audio in real time (20 ms frames).

        Args:
            audio: s16le mono PCM at ``sample_rate_hz``, or the path of a
                16-bit mono WAV file.
            sample_rate_hz: Rate of raw PCM, in Hz (ignored for WAV files).

        Returns:
            When the caller started talking (``loop.time()``, s; the ``play_start`` event).
        """
        if isinstance(audio, Path):
            pcm, sample_rate_hz = read_wav(audio)
        else:
            pcm = audio
        # Resampling and G.711 run off the event loop, which the gateway may share.
        frames_by_format = await asyncio.to_thread(
            lambda: {fmt: _frames(pcm, sample_rate_hz, fmt) for fmt in FRAME_BYTES}
        )
        count = max(len(f) for f in frames_by_format.values())
        seconds = len(pcm) / 2 / sample_rate_hz
        started = self._now()
        self.recording.events.append((started, "play_start", seconds))
        try:
            await self._send_frames(frames_by_format, count)
        finally:
            self.recording.events.append((self._now(), "play_end", seconds))
        return started

    async def say(self, text: str, voice: str = "en-us") -> float:
        """Speak ``text`` (espeak-ng, cached in ``test-artifacts/speech/``) in real time.

        Args:
            text: What to say.
            voice: espeak-ng voice.

        Returns:
            When the caller started talking (s).
        """
        path = await asyncio.to_thread(synthesize, text, voice)
        return await self.play(path)

    async def silence(self, seconds: float, send_frames: bool = True) -> None:
        """Stay quiet.

        Args:
            seconds: How long, in s.
            send_frames: Send silent 20 ms frames (a phone without silence
                suppression) or nothing at all (an idle leg, silence suppression).
        """
        self.recording.events.append((self._now(), "silence_start", send_frames))
        count = round(seconds * 1000 / PTIME_MS)
        if send_frames:
            await self._send_frames({fmt: [SILENT_FRAME[fmt]] * count for fmt in FRAME_BYTES}, count)
        else:
            await asyncio.sleep(seconds)
        self.recording.events.append((self._now(), "silence_end", send_frames))

    async def press(self, digit: str, duration_ms: int = 100) -> None:
        """Press a key: ``ChannelDtmfReceived`` on the caller's channel, ``DTMF_END`` on the media socket.

        Both arrive at the end of the tone, at the same moment (websocket-client-ulaw.json ``dtmf``).

        Args:
            digit: ``0-9``, ``*``, ``#``, ``A-D``.
            duration_ms: Tone length, in ms.
        """
        await asyncio.sleep(duration_ms / 1000)
        chan = self.channel
        if chan.hung_up:
            return
        self.recording.events.append((self._now(), "press", digit))
        if chan.in_stasis:
            self.fake._emit(chan.app, "ChannelDtmfReceived", chan, digit=digit, duration_ms=duration_ms)
        for session in self._sessions():
            await session.send_event("DTMF_END", digit=digit)
        self.fake._notify()

    async def hangup(self) -> None:
        """Hang up: the Stasis channel leaves the bridge and Stasis; the external channel stays up."""
        self.recording.events.append((self._now(), "hangup", None))
        if not self.channel.hung_up:
            await self.fake.hangup_by_caller(self.channel.id)

    async def wait_for_agent_audio(self, timeout: float = 10.0) -> float:  # noqa: ASYNC109
        """Wait until agent speech reaches the caller's ear.

        Args:
            timeout: Seconds to wait.

        Returns:
            Arrival time of the first speech frame (s).

        Raises:
            TimeoutError: Nothing heard within ``timeout``.
        """
        await asyncio.wait_for(self._heard.wait(), timeout)
        return self.recording.speech_frames()[0].time

    async def talk_over(
        self,
        audio: str | bytes | Path,
        after_ms: float = 300,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> float:
        """Barge in: once the agent has spoken ``after_ms``, say ``audio`` over it.

        Args:
            audio: Text to speak (:meth:`say`) when a ``str``; else what
                :meth:`play` takes (PCM bytes at 16 kHz or a WAV path).
            after_ms: How long into the agent's speech to start, in ms.
            timeout: Seconds to wait for the agent to speak.

        Returns:
            When the caller started talking (s).
        """
        started = await self.wait_for_agent_audio(timeout)
        await asyncio.sleep(max(0.0, started + after_ms / 1000 - self._now()))
        source = await asyncio.to_thread(synthesize, audio) if isinstance(audio, str) else audio
        return await self.play(source)


def _frames(pcm: bytes, rate_hz: int, fmt: str) -> list[bytes]:
    """Cut PCM into 20 ms frames of ``fmt``; the last one may be short."""
    target = SAMPLE_RATE_HZ[fmt]
    pcm = pcm if rate_hz == target else _resample(pcm, rate_hz, target)
    data = audioop.lin2ulaw(pcm, 2) if fmt == "ulaw" else pcm
    size = FRAME_BYTES[fmt]
    return [data[i : i + size] for i in range(0, len(data), size)]
