"""Bridges and playbacks of the fake Asterisk (:class:`~app.testing.fake_ari.FakeAriServer`).

Operations (``bridges.json``, ``channels.json`` play, ``playbacks.json``):

* ``POST /bridges`` and ``POST /bridges/{id}`` (``type=mixing`` by default),
  ``GET /bridges``, ``GET /bridges/{id}``, ``DELETE /bridges/{id}``,
* ``POST /bridges/{id}/addChannel`` (``channel=a,b``), ``.../removeChannel``,
* ``POST /channels/{id}/play`` and ``.../play/{playbackId}``, ``GET``/``DELETE /playbacks/{id}``.

Behaviour from a real PBX (``tests/fixtures/media/README.md``, taken from
``../shared/ari-samples/media/README.md`` and ``tests/fixtures/ari_samples``):

* ``addChannel`` answers 204, then ``ChannelEnteredBridge`` for each channel in
  request order, then ``ChannelVarset BRIDGEPEER`` and ``ChannelConnectedLine``
  for both channels of a two-party bridge.
* A channel that exists but is not (yet) in Stasis gets **422**
  ``{"message":"Channel not in Stasis application"}`` (an externalMedia channel
  in server mode before the application connected to its media WebSocket); an
  unknown channel 400 "Channel not found"; an unknown bridge 404.
* A two-party ``mixing`` bridge runs the ``simple_bridge`` technology; softmix
  starts with the third channel.
* ``DELETE /bridges/{id}`` sends ``ChannelLeftBridge`` for each channel, then
  ``BridgeDestroyed``; channels stay in Stasis.
* ``play`` answers 201 with a ``Playback`` (state ``playing``), then
  ``PlaybackStarted`` and, after the sound's length, ``PlaybackFinished``
  (state ``done``). Every playback is kept in :attr:`FakeBridges.playbacks`, so a
  test can assert that a recorded fallback prompt was played.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.testing.ari_spec import AriOperation

if TYPE_CHECKING:
    from app.testing.fake_ari import FakeAriServer, FakeChannel, _Deferred, _Handler

#: Bridge types ``POST /bridges`` accepts (bridges.json ``type``, comma separated).
BRIDGE_TYPES = frozenset(
    {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label"}
)

#: URI schemes of ``media`` that Asterisk can play (channels.json ``play``).
PLAYABLE_SCHEMES = ("sound:", "recording:", "number:", "digits:", "characters:", "tone:")


def _error(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)


@dataclass(eq=False)
class FakeBridge:
    """A bridge created through ARI.

    Attributes:
        id: Bridge id (a UUID unless the application chose one).
        bridge_type: ``"mixing"`` or ``"holding"`` (from the ``type`` parameter).
        name: ``name`` parameter, ``""`` when not given.
        creationtime: Creation time in ARI format.
        channels: Ids of the channels in the bridge, in order of entry.
        apps: Stasis applications that receive the bridge's events (those of
            the channels that entered it).
        destroyed: True after ``DELETE /bridges/{id}``.
        history: What happened, in order: ``("enter", channel_id)``,
            ``("leave", channel_id)``, ``("destroy",)``.
    """

    id: str
    bridge_type: str
    name: str
    creationtime: str
    channels: list[str] = field(default_factory=list)
    apps: set[str] = field(default_factory=set)
    destroyed: bool = False
    history: list[tuple[str, ...]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Render as an ARI ``Bridge`` (bridges.json; shape of ChannelEnteredBridge.json).

        Returns:
            The bridge snapshot.
        """
        return {
            "bridge_class": "stasis",
            "bridge_type": self.bridge_type,
            "channels": list(self.channels),
            "creationtime": self.creationtime,
            "creator": "Stasis",
            "id": self.id,
            "name": self.name,
            "technology": "softmix" if len(self.channels) > 2 else "simple_bridge",
            "video_mode": "talker",
        }


@dataclass(eq=False)
class FakePlayback:
    """One ``play`` request on a channel.

    Attributes:
        id: Playback id.
        media_uri: What was played, e.g. ``"sound:hello-world"``.
        channel_id: Channel played to.
        language: ``lang`` parameter (``"en"`` by default).
        state: ``playing``, then ``done`` (or ``failed`` for an unknown scheme).
        started: ``loop.time()`` when it started, in seconds.
        finished: ``loop.time()`` when it finished, or ``None`` while playing.
    """

    id: str
    media_uri: str
    channel_id: str
    language: str
    state: str
    started: float
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Render as an ARI ``Playback`` (play-response.json).

        Returns:
            The playback snapshot.
        """
        return {
            "id": self.id,
            "language": self.language,
            "media_uri": self.media_uri,
            "state": self.state,
            "target_uri": f"channel:{self.channel_id}",
        }


class FakeBridges:
    """Bridge and playback state of a :class:`~app.testing.fake_ari.FakeAriServer`.

    Args:
        fake: The server that owns the channels and sends the events.
        sound_duration_s: How long every ``sound:`` (and other) playback lasts, in
            seconds, unless listed in ``sound_durations``.

    Attributes:
        bridges: Every bridge by id, including destroyed ones.
        playbacks: Every playback, in request order.
        sound_durations: Playback length in seconds per media URI.
    """

    def __init__(self, fake: FakeAriServer, sound_duration_s: float = 1.0) -> None:
        """Start with no bridges and no playbacks."""
        self.fake = fake
        self.sound_duration_s = sound_duration_s
        self.bridges: dict[str, FakeBridge] = {}
        self.playbacks: list[FakePlayback] = []
        self.sound_durations: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def handlers(self) -> dict[tuple[str, str], _Handler]:
        """REST handlers to add to the fake's dispatch table.

        Returns:
            ``(resource, nickname)`` → handler.
        """
        return {
            ("bridges", "create"): self._h_create,
            ("bridges", "createWithId"): self._h_create,
            ("bridges", "list"): self._h_list,
            ("bridges", "get"): self._h_get,
            ("bridges", "destroy"): self._h_destroy,
            ("bridges", "addChannel"): self._h_add,
            ("bridges", "removeChannel"): self._h_remove,
            ("channels", "play"): self._h_play,
            ("channels", "playWithId"): self._h_play,
            ("playbacks", "get"): self._h_playback_get,
            ("playbacks", "stop"): self._h_playback_stop,
        }

    async def aclose(self) -> None:
        """Cancel pending playback timers."""
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---------------------------------------------------------------- queries

    def bridge_of(self, channel_id: str) -> FakeBridge | None:
        """The live bridge a channel is in.

        Args:
            channel_id: Channel id.

        Returns:
            The bridge, or ``None`` when the channel is in none.
        """
        for bridge in self.bridges.values():
            if not bridge.destroyed and channel_id in bridge.channels:
                return bridge
        return None

    def peers(self, channel_id: str) -> list[FakeChannel]:
        """Live channels sharing a bridge with ``channel_id`` (who hears its audio).

        Args:
            channel_id: Channel id.

        Returns:
            The other live channels of its bridge; empty when it is not bridged.
        """
        bridge = self.bridge_of(channel_id)
        if bridge is None:
            return []
        peers = []
        for cid in bridge.channels:
            chan = self.fake.channels.get(cid)
            if cid != channel_id and chan is not None and not chan.hung_up:
                peers.append(chan)
        return peers

    def playbacks_on(self, channel_id: str) -> list[FakePlayback]:
        """Playbacks requested on one channel.

        Args:
            channel_id: Channel id.

        Returns:
            Its playbacks, oldest first.
        """
        return [p for p in self.playbacks if p.channel_id == channel_id]

    # ---------------------------------------------------------------- events

    def _bridge_event(
        self, bridge: FakeBridge, event_type: str, chan: FakeChannel
    ) -> tuple[str, dict[str, Any]]:
        return chan.app, self.fake._event(chan.app, event_type, chan, bridge=bridge.to_json())

    def leave(self, chan: FakeChannel) -> _Deferred:
        """Take a channel out of its bridge (it hangs up or leaves Stasis).

        Args:
            chan: The channel.

        Returns:
            ``ChannelVarset BRIDGEPEER=""`` then ``ChannelLeftBridge``
            (websocket-endings.json), or nothing when it was not bridged.
        """
        bridge = self.bridge_of(chan.id)
        if bridge is None:
            return []
        bridge.channels.remove(chan.id)
        bridge.history.append(("leave", chan.id))
        varset = self.fake._event(chan.app, "ChannelVarset", chan, variable="BRIDGEPEER", value="")
        return [(chan.app, varset), self._bridge_event(bridge, "ChannelLeftBridge", chan)]

    # ---------------------------------------------------------------- bridges

    async def _h_create(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        params = request.query_params
        bridge_id = pp.get("bridgeId") or params.get("bridgeId") or str(uuid.uuid4())
        existing = self.bridges.get(bridge_id)
        if existing is not None and not existing.destroyed:
            return _error(409, "Bridge with the same bridgeId already exists"), []
        types = [t for t in params.get("type", "mixing").split(",") if t]
        if not types or any(t not in BRIDGE_TYPES for t in types):
            return _error(400, "Invalid bridge type"), []
        from app.testing.fake_ari import asterisk_timestamp

        bridge = FakeBridge(
            id=bridge_id,
            bridge_type="holding" if "holding" in types else "mixing",
            name=params.get("name", ""),
            creationtime=asterisk_timestamp(),
        )
        self.bridges[bridge_id] = bridge
        return JSONResponse(bridge.to_json()), []

    async def _h_list(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        return JSONResponse([b.to_json() for b in self.bridges.values() if not b.destroyed]), []

    def _live_bridge(self, bridge_id: str) -> FakeBridge | None:
        bridge = self.bridges.get(bridge_id)
        return bridge if bridge is not None and not bridge.destroyed else None

    async def _h_get(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        bridge = self._live_bridge(pp["bridgeId"])
        if bridge is None:
            return _error(404, "Bridge not found"), []
        return JSONResponse(bridge.to_json()), []

    async def _h_destroy(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        bridge = self._live_bridge(pp["bridgeId"])
        if bridge is None:
            return _error(404, "Bridge not found"), []
        deferred: _Deferred = []
        for cid in list(bridge.channels):
            chan = self.fake.channels[cid]
            deferred.extend(self.leave(chan))
        bridge.destroyed = True
        bridge.history.append(("destroy",))
        for app in sorted(bridge.apps):
            from app.testing.fake_ari import asterisk_timestamp

            event = {
                "application": app,
                "asterisk_id": self.fake.asterisk_id,
                "bridge": bridge.to_json(),
                "timestamp": asterisk_timestamp(),
                "type": "BridgeDestroyed",
            }
            deferred.append((app, event))
        self.fake._notify()
        return Response(status_code=204), deferred

    def _channels_param(self, request: Request) -> list[str]:
        return [c for k, v in request.query_params.multi_items() if k == "channel" for c in v.split(",") if c]

    async def _h_add(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        bridge = self._live_bridge(pp["bridgeId"])
        if bridge is None:
            return _error(404, "Bridge not found"), []
        ids = self._channels_param(request)
        chans: list[FakeChannel] = []
        for cid in ids:
            chan = self.fake._live(cid)
            if chan is None:
                return _error(400, "Channel not found"), []
            if not chan.in_stasis:
                return _error(422, "Channel not in Stasis application"), []
            chans.append(chan)
        deferred: _Deferred = []
        for chan in chans:
            if chan.id in bridge.channels:
                continue
            other = self.bridge_of(chan.id)
            if other is not None:
                deferred.extend(self.leave(chan))
            bridge.channels.append(chan.id)
            bridge.apps.add(chan.app)
            bridge.history.append(("enter", chan.id))
            deferred.append(self._bridge_event(bridge, "ChannelEnteredBridge", chan))
        deferred.extend(self._peer_events(bridge))
        self.fake._notify()
        return Response(status_code=204), deferred

    def _peer_events(self, bridge: FakeBridge) -> _Deferred:
        """BRIDGEPEER and connected line of a two-party bridge (websocket-client-ulaw.json)."""
        if len(bridge.channels) != 2:
            return []
        a, b = (self.fake.channels[c] for c in bridge.channels)
        events: _Deferred = []
        for chan, peer in ((a, b), (b, a)):
            events.append(
                (
                    chan.app,
                    self.fake._event(chan.app, "ChannelVarset", chan, variable="BRIDGEPEER", value=peer.name),
                )
            )
        for chan in (b, a):
            events.append((chan.app, self.fake._event(chan.app, "ChannelConnectedLine", chan)))
        return events

    async def _h_remove(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        bridge = self._live_bridge(pp["bridgeId"])
        if bridge is None:
            return _error(404, "Bridge not found"), []
        chans: list[FakeChannel] = []
        for cid in self._channels_param(request):
            chan = self.fake._live(cid)
            if chan is None:
                return _error(400, "Channel not found"), []
            if cid not in bridge.channels:
                return _error(422, "Channel not in this bridge"), []
            chans.append(chan)
        deferred: _Deferred = []
        for chan in chans:
            deferred.extend(self.leave(chan))
        self.fake._notify()
        return Response(status_code=204), deferred

    # ---------------------------------------------------------------- playbacks

    async def _h_play(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        chan, err = self.fake._find_control(pp["channelId"])
        if chan is None:
            assert err is not None
            return err, []
        params = request.query_params
        media = [m for k, v in params.multi_items() if k == "media" for m in v.split(",") if m]
        if not media:
            return _error(400, "media parameter is required"), []
        playback_id = pp.get("playbackId") or params.get("playbackId") or str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        ok = all(m.startswith(PLAYABLE_SCHEMES) for m in media)
        playback = FakePlayback(
            id=playback_id,
            media_uri=media[0],
            channel_id=chan.id,
            language=params.get("lang", "en"),
            state="playing",
            started=loop.time(),
        )
        self.playbacks.append(playback)
        chan.operations.append(("play", ",".join(media), playback_id))
        started = self.fake._event_plain(chan.app, "PlaybackStarted", playback=playback.to_json())
        duration = sum(self.sound_durations.get(m, self.sound_duration_s) for m in media) if ok else 0.0
        task = asyncio.create_task(self._finish_later(chan.app, playback, duration, ok))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        response = JSONResponse(playback.to_json(), status_code=201)
        response.headers["Location"] = f"/playbacks/{playback_id}"
        return response, [(chan.app, started)]

    async def _finish_later(self, app: str, playback: FakePlayback, duration_s: float, ok: bool) -> None:
        await asyncio.sleep(duration_s)
        self._finish(app, playback, "done" if ok else "failed")

    def _finish(self, app: str, playback: FakePlayback, state: str) -> None:
        if playback.finished is not None:
            return
        playback.state = state
        playback.finished = asyncio.get_running_loop().time()
        self.fake._dispatch(app, self.fake._event_plain(app, "PlaybackFinished", playback=playback.to_json()))
        self.fake._notify()

    def _find_playback(self, playback_id: str) -> FakePlayback | None:
        for playback in self.playbacks:
            if playback.id == playback_id and playback.finished is None:
                return playback
        return None

    async def _h_playback_get(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        playback = self._find_playback(pp["playbackId"])
        if playback is None:
            return _error(404, "Playback not found"), []
        return JSONResponse(playback.to_json()), []

    async def _h_playback_stop(
        self, request: Request, op: AriOperation, pp: dict[str, str], body: Any | None
    ) -> tuple[Response, _Deferred]:
        playback = self._find_playback(pp["playbackId"])
        if playback is None:
            return _error(404, "Playback not found"), []
        chan = self.fake.channels[playback.channel_id]
        self._finish(chan.app, playback, "done")
        return Response(status_code=204), []
