"""The caller side of ``ai-gateway demo --voice``: a scripted caller and the demo's offline rules.

The demo runs the real gateway against the fake Asterisk (ARI and the chan_websocket media
side). :func:`run_voice_call` places one ``AI_MODE=voice`` call, lets a
:class:`~app.testing.fake_caller.FakeCaller` speak espeak-ng audio in real time, waits for
each answer to be heard, and returns the recording (both sides) and the channel variables.

:func:`demo_responder` extends the offline stand-in's rules (:func:`offline_reply`) for
spoken transcripts: the offline STT (pocketsphinx) writes numbers as words ("forty two")
and rarely hears the word "check", so a transcript that names an order and a number calls
``check_order`` with the number as digits, and one that says goodbye calls ``end_call``
("bye", "buy" and "by" sound the same).
These are canned rules, not a model; the console says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field

from app.testing.fake_ari import FakeAriServer, FakeChannel
from app.testing.fake_caller import FakeCaller
from app.testing.fake_llm import OFFLINE_PREFIX, LLMRequest, Reply, TextReply, ToolCallReply

logger = logging.getLogger(__name__)

_UNITS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_WORD_RE = re.compile(r"[a-z0-9]+")
#: How long the agent must be quiet before the demo caller speaks, in s (sentences pause ~0.5 s).
QUIET_S = 1.2
#: "bye", "buy" and "by" sound the same (B AY); pocketsphinx writes any of them.
_BYE_WORDS = {"bye", "goodbye", "buy", "by"}
_HOMOPHONES = {"for": "four", "to": "two", "too": "two"}


def _number_words(words: list[str]) -> list[str]:
    """`words` with homophones of digits ("for", "to", "too") read as digits next to a number."""

    def is_number(word: str) -> bool:
        return word.isdigit() or word in _UNITS or word in _TENS

    out = list(words)
    for i, word in enumerate(words):
        if word in _HOMOPHONES:
            neighbours = words[max(0, i - 1) : i] + words[i + 1 : i + 2]
            if any(is_number(n) for n in neighbours):
                out[i] = _HOMOPHONES[word]
    return out


def spoken_number(text: str) -> str | None:
    """The first number in `text`, written in digits or in English words.

    Args:
        text: A transcript, e.g. ``"order number forty two"`` or ``"order for two"``.

    Returns:
        The digits (``"42"``), or None when the text holds no number. Consecutive digits
        are read as one number (``"four two"`` → ``"42"``), and "for"/"to"/"too" next to
        another number as digits (pocketsphinx hears "four two" as "for two").
    """
    parts: list[int] = []
    for word in _number_words(_WORD_RE.findall(text.lower())):
        if word.isdigit():
            if parts:
                break
            return word
        if word in _TENS:
            parts.append(_TENS[word])
        elif word in _UNITS:
            value = _UNITS[word]
            if parts and parts[-1] >= 20 and parts[-1] % 10 == 0 and value < 10:
                parts[-1] += value
            else:
                parts.append(value)
        elif parts:
            break
    return "".join(str(p) for p in parts) or None


def demo_responder(request: LLMRequest) -> Reply | None:
    """The demo's canned rules on top of the offline model (None: use :func:`offline_reply`).

    Args:
        request: The normalised chat request the gateway sent.

    Returns:
        ``end_call`` when the caller says goodbye, a closing sentence once it ran,
        ``check_order`` when the transcript names an order and a number; else None.
    """
    tools = {str(t["name"]) for t in request.tools}
    last = request.messages[-1] if request.messages else None
    if last is not None and last.role == "tool":
        if last.tool_name == "end_call":
            return TextReply(f"{OFFLINE_PREFIX} Thank you for calling. Goodbye.")
        return None
    words = set(_WORD_RE.findall(request.last_user_text.lower()))
    if "end_call" in tools and words & _BYE_WORDS:
        return ToolCallReply([("end_call", {"reason": "the caller said goodbye"})])
    number = spoken_number(request.last_user_text)
    if "check_order" in tools and "order" in words and number is not None:
        return ToolCallReply([("check_order", {"order_id": number})])
    return None


@dataclass
class VoiceCallResult:
    """What the demo caller did and got.

    Attributes:
        channel: The caller's channel.
        caller: The caller, with its recording (both sides).
        variables: Channel variables the gateway set (last value wins).
        ended_by_gateway: True when the gateway continued the channel in the dialplan;
            False when the caller had to hang up.
    """

    channel: FakeChannel
    caller: FakeCaller
    variables: dict[str, str | None] = field(default_factory=dict)
    ended_by_gateway: bool = False


async def _wait_quiet(caller: FakeCaller, after: float, timeout_s: float) -> None:
    """Wait until agent speech heard after `after` (loop time, s) has stopped for 1.2 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        started = caller.recording.audio_started_after(after)
        if started is not None:
            # Quiet means no speech for QUIET_S: shorter pauses between words and sentences don't count.
            stopped = caller.recording.audio_stopped_after(after, quiet_ms=QUIET_S * 1000)
            if stopped and loop.time() - stopped > QUIET_S:
                return
        await asyncio.sleep(0.05)
    logger.warning("demo caller: no complete answer within %.0f s", timeout_s)


async def run_voice_call(
    fake_ari: FakeAriServer, app_data: str, lines: list[str], *, answer_timeout_s: float = 30.0
) -> VoiceCallResult:
    """Place ``Stasis(<app_data>)``, hear the greeting, say each line and hear its answer.

    Args:
        fake_ari: The fake Asterisk the gateway is connected to (media side wired).
        app_data: Stasis application and arguments, e.g.
            ``"ai_ari_app,AI_MODE=voice,AI_PROMPT_NAME=demo-voice,UNIQUEID=demo-1"``.
        lines: What the caller says, one utterance per turn (espeak-ng, real time).
        answer_timeout_s: Longest wait for each answer, in s.

    Returns:
        The call's result; the caller hangs up itself if the gateway has not continued
        the channel 15 s after the last answer.
    """
    chan = await fake_ari.place_call(app_data, caller_number="5551234", caller_name="Demo Caller")
    caller = FakeCaller(fake_ari, chan)
    loop = asyncio.get_running_loop()
    with_greeting = loop.time()
    try:
        await caller.wait_for_agent_audio(answer_timeout_s)
    except TimeoutError:
        logger.warning("demo caller: no greeting heard")
    await _wait_quiet(caller, with_greeting, answer_timeout_s)
    for line in lines:
        if not chan.in_stasis:
            break
        await caller.say(line)
        await _wait_quiet(caller, loop.time(), answer_timeout_s)
    result = VoiceCallResult(chan, caller)
    try:
        await chan.wait_left_stasis(15)
        result.ended_by_gateway = True
    except TimeoutError:
        await caller.hangup()
    for op in chan.operations:
        if op[0] == "setvar":
            result.variables[op[1]] = op[2]
    return result


#: What the demo caller says when no ``--say`` is given: a question about order 42, then goodbye.
VOICE_DEMO_LINES = ["Where is order four two", "Thank you bye bye"]

#: What the agent says first on the demo call.
VOICE_DEMO_GREETING = "Hello, this is the Example Shop order line. How can I help?"

#: The demo prompt's voice settings (``prompts.voice``); providers are filled in by the CLI.
VOICE_DEMO_SETTINGS: dict[str, object] = {
    "greeting": VOICE_DEMO_GREETING,
    "end_of_turn_ms": 800,
    "barge_in_min_speech_ms": 300,
    "reprompt_after_s": 12.0,
    "max_duration_s": 120,
}


def _latencies(details: dict[str, object]) -> str:
    """``name N ms`` for each latency in a voice turn's ``details`` (keys ending in ``_ms``)."""
    parts = [
        f"{key.removesuffix('_ms').replace('_', ' ')} {value:.0f} ms"
        for key, value in details.items()
        if key.endswith("_ms") and key != "greeting_queued_ms" and isinstance(value, int | float)
    ]
    return ", ".join(parts) or "none recorded"


def transcript_lines(
    greeting: str, said: list[str], turns: list[dict[str, object]], variables: dict[str, str | None]
) -> list[str]:
    """The demo's transcript: the greeting, each turn with its latencies, and the dialplan result.

    Args:
        greeting: The prompt's greeting text.
        said: What the caller said (the espeak-ng text), in order.
        turns: The call log's turns, oldest first: ``user_input``, ``response``, ``tool_calls``,
            ``details`` (the voice timeline, latencies in ms).
        variables: Channel variables the dialplan gets.

    Returns:
        Lines to print.
    """
    out = [f"  agent:        {greeting}"]
    summary = turns[-1].get("details") if turns else None
    if isinstance(summary, dict) and isinstance(summary.get("greeting_queued_ms"), int | float):
        cached = " (cached)" if summary.get("greeting_cached") else ""
        out.append(
            f"  latencies:    StasisStart to greeting queued {summary['greeting_queued_ms']:.0f} ms{cached}"
        )
    for i, turn in enumerate(turns):
        details = turn.get("details")
        details = details if isinstance(details, dict) else {}
        out.append(f"[turn {i + 1}]")
        if i < len(said):
            out.append(f"  caller said:  {said[i]}")
        out.append(f"  STT heard:    {turn.get('user_input', '')}")
        calls = turn.get("tool_calls")
        for call in calls if isinstance(calls, list) else []:
            out.append(
                f"  tool call:    {call.get('name')}({call.get('args')}) -> "
                f"{call.get('outcome')} {call.get('status_code') or ''}".rstrip()
            )
        out.append(f"  agent:        {turn.get('response', '')}")
        out.append(f"  latencies:    {_latencies(details)}")
        if details.get("interrupted"):
            out.append("  (interrupted by the caller)")
    names = ("AI_STATUS", "AI_END_REASON", "AI_TURNS", "AI_ERROR")
    out.append("Dialplan gets: " + " ".join(f"{n}={variables[n]}" for n in names if variables.get(n)))
    return out
