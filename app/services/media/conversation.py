"""Voice mode (``AI_MODE=voice``): the gateway answers, listens, thinks and speaks.

One `VoiceConversation` per call session. It connects the caller to a media WebSocket
(`call_media`), runs the call's pipecat pipeline (`pipeline`), greets the caller, and
waits for the end: the agent's ``end_call``/``transfer_call``, caller silence, the
maximum duration, or a failure. Then it takes the media path apart and returns the
channel variables for the dialplan:

``AI_STATUS`` (``OK``, ``ERROR``, ``TIMEOUT``, ``NO_INPUT``, ``TRANSFER``), ``AI_END_REASON``
(``agent_ended``, ``caller_silent``, ``max_duration``, ``error``), ``AI_TURNS``,
``AI_RESPONSE`` (the agent's last answer), ``AI_ERROR``, and ``AI_TRANSFER_TARGET``.

Barge-in: when ``FLUSH_MEDIA`` goes out and the latest answer was cut short, memory keeps
only the sentences whose marks came back, then ``[interrupted by the caller]``, on an AI
message flagged ``additional_kwargs={"interrupted": True}`` (whether the turn had already
been saved in full or was cancelled mid-stream).

Never strand a caller: a failed STT, LLM or media path ends with the spoken fallback text;
when text-to-speech itself (or the media socket) is down, a recorded Asterisk prompt is
played through ARI instead. A hang-up cancels the session's tasks: the pipeline stops (no
more STT, LLM or TTS requests) and the external channel and bridge are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from pipecat.frames.frames import ErrorFrame
from pipecat.utils.asyncio.task_manager import TaskManager
from pipecat.workers.base_worker import WorkerParams

from app.services.agent.catalog import CatalogUnavailable, PromptNotFound
from app.services.domain import PromptSpec, TurnRequest, TurnStatus, VoiceSettings
from app.services.media.agent_stage import AgentStage, AgentTalkingMute, AgentTurn
from app.services.media.call_media import CallMedia, connect_media, teardown
from app.services.media.call_tools import CallControlRequest, build_call_tools
from app.services.media.config import VoiceDeps
from app.services.media.controller import CallController, EndRequest
from app.services.media.greetings import GreetingAudio
from app.services.media.listener import MediaUnavailable
from app.services.media.pipeline import GreetingRecorder, build_worker
from app.services.media.playout import PlayoutTracker, SentenceMarker
from app.services.media.transport import AsteriskMediaTransport
from app.services.media.voice_log import VoiceTimeline
from app.services.providers.base import Capability, ProviderError
from app.services.telephony.ari_client import AriError
from app.services.telephony.delivery import ConversationResult, DialplanTarget
from app.services.telephony.events import PlaybackFinished
from app.services.telephony.session import CallSession

logger = logging.getLogger(__name__)


class VoiceConversation:
    """One voice call from `StasisStart` to the dialplan (see the module docstring).

    Args:
        session: the call session (request built, events routed here).
        deps: shared voice collaborators.
        unsupported: the connected Asterisk is too old for the media protocol.
    """

    def __init__(self, session: CallSession, deps: VoiceDeps, *, unsupported: bool = False) -> None:
        self._s = session
        self._deps = deps
        self._unsupported = unsupported
        self._media = CallMedia()
        self._control = CallControlRequest()
        self._tracker = PlayoutTracker()
        self._ended: asyncio.Future[EndRequest] = asyncio.get_running_loop().create_future()
        self._timeline = VoiceTimeline()
        self._last_answer = ""
        self._turns = 0
        self._background: set[asyncio.Task[None]] = set()

    def _end(self, end: EndRequest) -> None:
        if not self._ended.done():
            self._ended.set_result(end)

    async def run(self) -> ConversationResult:
        """Hold the conversation; the result for the dialplan. Never raises but on cancel."""
        request = self._s.request
        assert request is not None
        self._timeline.stasis_start = time.monotonic()
        try:
            prompt = await self._deps.prompts.get_prompt(request.prompt_name)
        except (PromptNotFound, CatalogUnavailable) as exc:
            error = (
                f"unknown_prompt: {request.prompt_name}"
                if isinstance(exc, PromptNotFound)
                else "catalog_unavailable"
            )
            self._last_answer = self._s.settings.default_fallback_text
            return self._result(EndRequest("error", "ERROR", error[:120]))
        if self._unsupported:
            return await self._recorded_fallback(prompt, "voice_unsupported: Asterisk too old for voice mode")
        try:
            conn = await connect_media(self._s, self._deps.config.media, self._deps.listener, self._media)
        except (MediaUnavailable, AriError) as exc:
            logger.warning("channel=%s voice media failed: %s", self._s.channel_id, exc)
            await self._shielded_teardown()
            return await self._recorded_fallback(prompt, f"media_unavailable: {exc}"[:120])
        try:
            end = await self._converse(prompt, conn)
        except ProviderError as exc:  # an STT/TTS provider that is not configured or installed
            logger.error("channel=%s voice provider unavailable: %s", self._s.channel_id, exc)
            end = EndRequest("error", "ERROR", f"tts_error: {exc}"[:120])
        except asyncio.CancelledError:  # a hang-up (or shutdown): file what happened so far
            self._timeline.finish(self._s.turns, self._s.request, self._tracker, hung_up=self._s.hung_up)
            raise
        finally:
            await self._shielded_teardown()
        if end.status == "ERROR" and end.error.startswith(("tts_error", "media_closed")):
            return await self._recorded_fallback(prompt, end.error, end.reason)
        return self._result(end)

    async def _shielded_teardown(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(teardown(self._s, self._media))

    async def _converse(self, prompt: PromptSpec, conn: Any) -> EndRequest:
        voice, config = prompt.voice, self._deps.config
        rate = conn.format.sample_rate_hz
        stt = self._deps.providers.get(Capability.STT, voice.stt_provider or config.stt_provider)
        tts = self._deps.providers.get(Capability.TTS, voice.tts_provider or config.tts_provider)
        stt_service = stt.create_service(  # type: ignore[attr-defined]
            sample_rate_hz=rate, language=voice.stt_language, model=voice.stt_model
        )
        tts_service = tts.create_service(  # type: ignore[attr-defined]
            voice=voice.tts_voice, sample_rate_hz=rate, language=voice.tts_language
        )
        stage = AgentStage(self._s.turns, self._turn_request, self._turn_done, self._tracker)
        self._tracker.on_flush = self._barged_in
        max_s = voice.max_duration_s or config.max_duration_s
        controller = CallController(
            voice,
            max_s,
            stage,
            self._tracker,
            self._on_end,
            on_dtmf=self._timeline.dtmf,
            channel_id=self._s.channel_id,
        )
        self._controller, self._stage = controller, stage
        key = (prompt.id, prompt.version, tts.name, voice.tts_voice, conn.format.codec)
        cached = self._deps.greetings.get(key) if voice.greeting else None
        recorder = GreetingRecorder(
            None if cached or not voice.greeting else self._remember_greeting(key, voice.greeting)
        )
        transport = AsteriskMediaTransport(conn, self._tracker)
        transport.input().on_media_closed = self._media_closed
        worker = build_worker(
            transport,
            stt_service,
            tts_service,
            [controller, stage],
            SentenceMarker(self._tracker),
            recorder,
            voice,
            smart_turn=config.smart_turn,
            mute=AgentTalkingMute(stage, self._tracker),
        )
        worker.event_handler("on_pipeline_error")(self._make_error_handler(stt_service, prompt))
        worker.event_handler("on_pipeline_started")(self._make_greeter(worker, voice, cached))
        runner = asyncio.create_task(worker.run(WorkerParams(task_manager=TaskManager())))
        try:
            return await asyncio.shield(self._ended)
        finally:
            await stage.interrupt()
            await worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(runner, 5)

    def _remember_greeting(self, key: tuple[Any, ...], text: str) -> Any:
        def store(pcm: bytes, rate: int) -> None:
            self._deps.greetings.put(key, GreetingAudio(text, pcm, rate))

        return store

    def _make_greeter(self, worker: Any, voice: VoiceSettings, cached: GreetingAudio | None) -> Any:
        async def greet(_worker: Any, _frame: Any) -> None:
            if cached is not None:
                await worker.queue_frames(cached.frames())
            elif voice.greeting:
                await self._controller.speak(voice.greeting)
            self._timeline.greeting_queued(cached is not None)

        return greet

    def _make_error_handler(self, stt_service: Any, prompt: PromptSpec) -> Any:
        async def on_error(_worker: Any, frame: ErrorFrame) -> None:
            source = "stt_error" if frame.processor is stt_service else "tts_error"
            if source == "stt_error" and frame.processor is not None:
                logger.warning("channel=%s STT failed: %s", self._s.channel_id, frame.error)
                self._controller.request_end(
                    EndRequest("error", "ERROR", f"stt_error: {frame.error}"[:120]),
                    prompt.fallback_text or self._s.settings.default_fallback_text,
                )
            elif frame.processor is not None and "TTS" in type(frame.processor).__name__:
                logger.warning("channel=%s TTS failed: %s", self._s.channel_id, frame.error)
                self._end(EndRequest("error", "ERROR", f"tts_error: {frame.error}"[:120]))
            else:
                logger.warning("channel=%s pipeline error: %s", self._s.channel_id, frame.error)

        return on_error

    def _barged_in(self) -> None:
        """``FLUSH_MEDIA`` went out: if the latest answer was cut short, rewrite its memory.

        What the caller heard is the turn's sentences whose marks came back before the
        flush (marks Asterisk confirms after our flush are not counted, so memory errs
        towards less). The next turn waits for the rewrite (`AgentStage.barrier`).
        """
        turn = self._stage.current
        if turn is None or turn.request is None or turn.cut_off:
            return
        if not turn.interrupted and self._tracker.responses_heard > turn.responses_before:
            return  # its end-of-speech mark came back: the whole answer was heard
        heard = self._tracker.heard[turn.heard_from :]
        said_words = sum(len(s.split()) for s in turn.sentences)
        if not turn.interrupted and sum(len(s.split()) for s in heard) >= said_words:
            return  # the whole answer was heard before the caller spoke
        turn.cut_off = True
        if not turn.interrupted:  # finished, and already in the timeline
            self._timeline.cut_off(heard)
        logger.info(
            "channel=%s barge-in: caller heard %d of %d sentence(s)",
            self._s.channel_id,
            len(heard),
            len(turn.sentences),
        )
        task = asyncio.create_task(self._s.turns.record_interruption(turn.request, heard))
        self._stage.barrier = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _media_closed(self) -> None:
        self._end(EndRequest("error", "ERROR", "media_closed"))

    async def _on_end(self, end: EndRequest) -> None:
        self._end(end)

    def _turn_request(self, text: str) -> TurnRequest:
        request = self._s.request
        assert request is not None
        voice_tools = build_call_tools(
            self._control,
            offer_end_call=self._prompt_voice.offer_end_call,
            offer_transfer_call=self._prompt_voice.offer_transfer_call,
            targets=self._prompt_voice.transfer_targets,
        )
        return replace(request, user_input=text, extra_tools=voice_tools, defer_log=True)

    @property
    def _prompt_voice(self) -> VoiceSettings:
        return self._controller._voice

    async def _turn_done(self, turn: AgentTurn) -> None:
        self._timeline.turn(turn, self._tracker)
        action = self._control.take()  # a cut-off turn's end_call/transfer_call is dropped
        if turn.interrupted:
            return
        self._turns += 1
        outcome = turn.outcome
        if outcome is not None and outcome.response:
            self._last_answer = outcome.response
        spoke = bool(turn.sentences)  # nothing said after the tool call: end without waiting
        if action == "end":
            self._controller.request_end(EndRequest("agent_ended", "OK"), expect_speech=spoke)
        elif action == "transfer":
            self._controller.request_end(EndRequest("agent_ended", "TRANSFER"), expect_speech=spoke)
        elif outcome is not None and outcome.status in (TurnStatus.ERROR, TurnStatus.TIMEOUT):
            end = EndRequest("error", outcome.status.value, outcome.error or "")
            self._controller.request_end(end, expect_speech=True)

    def _result(self, end: EndRequest) -> ConversationResult:
        variables = {
            "AI_STATUS": end.status,
            "AI_END_REASON": end.reason,
            "AI_TURNS": str(self._turns),
            "AI_RESPONSE": self._last_answer,
            "AI_ERROR": end.error,
        }
        target = None
        chosen = self._control.target if end.status == "TRANSFER" else None
        if chosen is not None:
            if chosen.context:
                target = DialplanTarget(chosen.context, chosen.extension, chosen.priority)
                variables["AI_TRANSFER_TARGET"] = f"{chosen.context},{chosen.extension},{chosen.priority}"
            else:
                variables["AI_TRANSFER_TARGET"] = chosen.endpoint
        self._timeline.ended(end)
        self._timeline.finish(self._s.turns, self._s.request, self._tracker)
        logger.info(
            "channel=%s voice call ended: %s %s turns=%d",
            self._s.channel_id,
            end.status,
            end.reason,
            self._turns,
        )
        return ConversationResult(variables, target)

    async def _recorded_fallback(
        self, prompt: PromptSpec, error: str, reason: str = "error"
    ) -> ConversationResult:
        """Play the recorded fallback prompt through ARI, then hand the channel back with ERROR."""
        cid = self._s.channel_id
        try:
            playback_id = await self._s.ari.play(cid, self._deps.config.fallback_sound)
            async with asyncio.timeout(15):
                while True:
                    event = await self._s.next_event()
                    if isinstance(event, PlaybackFinished) and event.playback.id == playback_id:
                        break
        except (AriError, TimeoutError) as exc:
            logger.warning("channel=%s fallback playback failed: %s", cid, exc)
        self._last_answer = self._last_answer or (
            prompt.fallback_text or self._s.settings.default_fallback_text
        )
        return self._result(EndRequest(reason, "ERROR", error))
