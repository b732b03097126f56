"""Voice settings and voice timelines in the database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

What a voice call gets from a prompt's stored ``voice`` JSON, and what the call detail
reads back from ``turns.details``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_session_factory
from app.core.security import SecretBox
from app.models import Turn
from app.services.agent.call_log import CallLogEntry, CallLogWriter
from app.services.agent.catalog import Catalog
from app.services.domain import TransferTarget, TurnOutcome, TurnStatus, VoiceSettings
from tests.utils import create_prompt

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_prompt_without_voice_settings_gets_the_defaults(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "support")
    spec = await Catalog(sessions, SecretBox("k")).get_prompt("support")
    assert spec.voice == VoiceSettings()
    assert spec.voice.default_mode == "text"


async def test_stored_voice_settings_reach_the_call_path(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    stored = {
        "default_mode": "voice",
        "greeting": "Thanks for calling Acme.",
        "tts_provider": "espeak",
        "tts_voice": "en-gb",
        "end_of_turn_ms": 900,
        "barge_in": False,
        "reprompt_after_s": 5,
        "transfer_targets": [
            {"name": "sales", "description": "New orders", "context": "from-internal", "extension": "600"},
            {"name": "desk", "description": "The front desk", "endpoint": "PJSIP/200"},
        ],
    }
    await create_prompt(sessions, "support", voice=stored)
    voice = (await Catalog(sessions, SecretBox("k")).get_prompt("support")).voice
    assert voice.default_mode == "voice"
    assert voice.greeting == "Thanks for calling Acme."
    assert (voice.tts_provider, voice.tts_voice) == ("espeak", "en-gb")
    assert (voice.end_of_turn_ms, voice.barge_in, voice.reprompt_after_s) == (900, False, 5.0)
    assert voice.goodbye_text == VoiceSettings().goodbye_text  # not stored: the default
    assert voice.transfer_targets == (
        TransferTarget("sales", "New orders", context="from-internal", extension="600", priority=1),
        TransferTarget("desk", "The front desk", endpoint="PJSIP/200"),
    )


async def test_invalid_stored_voice_settings_fall_back_to_defaults(
    db_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = create_session_factory(db_engine)
    await create_prompt(sessions, "support", voice={"end_of_turn_ms": "soon", "greeting": "Hi"})
    spec = await Catalog(sessions, SecretBox("k")).get_prompt("support")
    assert spec.voice == VoiceSettings()
    assert "prompt=support stored voice settings are not valid" in caplog.text


async def test_voice_timeline_round_trips_through_the_call_log(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    details = [
        {
            "mode": "voice",
            "interrupted": True,
            "heard": "Your order ships",
            "stt_final_ms": 151.5,
            "llm_first_sentence_ms": 320.0,
            "tts_first_audio_ms": 480.2,
            "first_frame_sent_ms": 490.0,
        },
        {
            "mode": "voice",
            "interrupted": False,
            "end_reason": "agent_ended",
            "end_status": "OK",
            "dtmf": ["4", "2"],
        },
    ]
    writer = CallLogWriter(sessions)
    for n, detail in enumerate([*details, None]):
        outcome = TurnOutcome(f"answer {n}", TurnStatus.OK, details=detail)
        assert writer.submit(CallLogEntry("call", "u1", "1700.1", None, None, f"q {n}", outcome, T0, T0))
    writer.start()
    await writer.flush()
    await writer.stop()
    async with sessions() as session:
        stored = [t.details for t in await session.scalars(select(Turn).order_by(Turn.id))]
    assert stored == [*details, None]  # a text turn keeps none
