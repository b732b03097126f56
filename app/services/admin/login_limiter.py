"""Rate limit for failed admin logins, per client address, in Redis (in-process if Redis fails).

A fixed window: each failed login increments ``<prefix>authfail:<address>``, which
expires `window_seconds` after the first failure. Once `max_failures` is reached the
address is refused, even with the right password, until the window ends.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


class LoginLimiter:
    """Counts failed logins per client address.

    Args:
        redis: the shared client.
        prefix: Redis key prefix (`REDIS_KEY_PREFIX`).
        max_failures: failures allowed per window.
        window_seconds: window length, in s.
    """

    def __init__(self, redis: Redis, *, prefix: str, max_failures: int, window_seconds: int) -> None:
        """Keep the limits; the in-process fallback starts empty."""
        self._redis = redis
        self._prefix = prefix
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._local: dict[str, tuple[int, float]] = {}

    def _key(self, client: str) -> str:
        return f"{self._prefix}authfail:{client}"

    async def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may try now."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._key(client))
                pipe.ttl(self._key(client))
                count, ttl = await pipe.execute()
            if count is not None and int(count) >= self.max_failures:
                return max(1, int(ttl))
            return None
        except (RedisError, OSError):
            count_local, until = self._local.get(client, (0, 0.0))
            left = until - time.monotonic()
            if count_local >= self.max_failures and left > 0:
                return max(1, int(left))
            return None

    async def record_failure(self, client: str) -> None:
        """Count one failed login from `client`."""
        logger.warning("failed admin login from %s", client)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(self._key(client))
                pipe.expire(self._key(client), self.window_seconds, nx=True)
                await pipe.execute()
        except (RedisError, OSError):
            now = time.monotonic()
            count, until = self._local.get(client, (0, 0.0))
            if until <= now:
                count, until = 0, now + self.window_seconds
            self._local[client] = (count + 1, until)
            if len(self._local) > 10_000:
                self._local = {k: v for k, v in self._local.items() if v[1] > now}
