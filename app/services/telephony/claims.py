"""Per-channel ownership claims in Redis, so N gateway processes never recover each other's calls."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class ChannelClaims:
    """Which gateway process owns the turn of each channel, in Redis (best effort).

    ``<prefix>owner:<channel_id>`` holds the owning process's id, with a TTL, from
    `StasisStart` until the channel is continued. A gateway that (re)connects and finds
    channels in the Stasis application skips those another live process still owns
    (a rolling restart: the old process finishes its turns) and recovers only the
    unowned ones (a crash). Redis failures are logged and ignored: without claims,
    recovery treats every unowned channel as parked.
    """

    def __init__(self, redis: Redis, *, prefix: str, instance_id: str, ttl_seconds: float) -> None:
        """Claims are written as `instance_id`, expiring after `ttl_seconds` (s)."""
        self._redis = redis
        self._prefix = prefix
        self.instance_id = instance_id
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))

    def _key(self, channel_id: str) -> str:
        return f"{self._prefix}owner:{channel_id}"

    async def claim(self, channel_id: str) -> None:
        """Mark `channel_id` as this process's."""
        try:
            await self._redis.set(self._key(channel_id), self.instance_id, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            logger.debug("channel=%s claim not written: %s", channel_id, exc)

    async def release(self, channel_id: str) -> None:
        """Drop the claim on `channel_id` (it was continued or is gone)."""
        try:
            await self._redis.delete(self._key(channel_id))
        except (RedisError, OSError) as exc:
            logger.debug("channel=%s claim not removed: %s", channel_id, exc)

    async def owned_elsewhere(self, channel_ids: list[str]) -> dict[str, float]:
        """The channels another process claims, with the seconds left on each claim."""
        if not channel_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for cid in channel_ids:
                    pipe.get(self._key(cid))
                    pipe.pttl(self._key(cid))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("could not read channel claims (%s); treating channels as unowned", exc)
            return {}
        owned: dict[str, float] = {}
        for i, cid in enumerate(channel_ids):
            owner, pttl = replies[2 * i], replies[2 * i + 1]
            if owner is not None and owner.decode() != self.instance_id and pttl and pttl > 0:
                owned[cid] = pttl / 1000.0
        return owned
