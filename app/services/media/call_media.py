"""Connecting a caller to the gateway's media socket, and taking it apart again (ARI).

On a real PBX (``../shared/ari-samples/media/README.md``): answer the channel if it is not
up, create a mixing bridge, create an externalMedia channel with ``transport=websocket``,
wait for the media connection and for the external channel's own `StasisStart`, and only
then add both channels to the bridge (earlier, ``addChannel`` can answer 422 "Channel not
in Stasis application"). A caller's hang-up leaves the external channel and the bridge
behind, so `teardown` always removes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from app.services.media.config import MediaConfig
from app.services.media.connection import MediaConnection
from app.services.media.listener import MediaListener, MediaUnavailable, close_quietly, connect_to_asterisk
from app.services.telephony.ari_client import AriError
from app.services.telephony.events import StasisStart
from app.services.telephony.session import CallSession

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CallMedia:
    """The pieces of one call's media path (for teardown)."""

    bridge_id: str = ""
    external_id: str = ""
    conn: MediaConnection | None = None


async def _wait_stasis_start(session: CallSession, channel_id: str) -> None:
    while True:
        event = await session.next_event()
        if isinstance(event, StasisStart) and event.channel.id == channel_id:
            return


async def connect_media(
    session: CallSession, config: MediaConfig, listener: MediaListener | None, media: CallMedia
) -> MediaConnection:
    """Answer, bridge and connect the caller to a media WebSocket; fills `media` as it goes.

    Raises:
        MediaUnavailable: no media connection or no external `StasisStart` in time.
        AriError: a REST request failed.
    """
    ari, cid = session.ari, session.channel_id
    if session.channel.state != "Up":
        await ari.answer(cid)
    media.bridge_id = await ari.create_bridge(f"aigw-{uuid.uuid4().hex[:12]}")
    session.attach(media.bridge_id)
    media.external_id = f"aigw-media-{uuid.uuid4().hex[:12]}"
    session.attach(media.external_id)
    client_mode = config.connection_type == "client"
    if client_mode and listener is None:
        raise MediaUnavailable("client mode needs the media listener (VOICE_MEDIA_LISTEN_PORT)")
    arrival = listener.expect(media.external_id) if client_mode and listener is not None else None
    try:
        async with asyncio.timeout(config.timeout_s):
            channel = await ari.external_media(
                config.app,
                media.external_id,
                codec=config.codec,
                connection_type=config.connection_type,
                external_host=config.external_host if client_mode else None,
            )
            if arrival is not None:
                media.conn = await arrival
            else:
                conn_id = channel.get("channelvars", {}).get("MEDIA_WEBSOCKET_CONNECTION_ID", "")
                media.conn = await connect_to_asterisk(
                    f"{config.server_url.rstrip('/')}/media/{conn_id}",
                    timeout_s=config.timeout_s,
                    max_lead_ms=config.max_lead_ms,
                )
            await _wait_stasis_start(session, media.external_id)
    except TimeoutError as exc:
        raise MediaUnavailable(f"no media connection within {config.timeout_s:g} s") from exc
    finally:
        if listener is not None and media.conn is None:
            listener.forget(media.external_id)
    await ari.add_channels_to_bridge(media.bridge_id, [cid, media.external_id])
    logger.info(
        "channel=%s bridged with externalMedia %s (%s, %s)",
        cid,
        media.external_id,
        config.connection_type,
        media.conn.format.codec,
    )
    return media.conn


async def teardown(session: CallSession, media: CallMedia) -> None:
    """Close the media socket, hang up the external channel, destroy the bridge. Never raises."""
    await close_quietly(media.conn)
    if media.external_id:
        with contextlib.suppress(AriError):
            await session.ari.hangup(media.external_id)
    if media.bridge_id:
        with contextlib.suppress(AriError):
            await session.ari.destroy_bridge(media.bridge_id)
