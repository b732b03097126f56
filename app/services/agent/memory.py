"""Conversation memory in Redis, keyed by UNIQUEID, and a per-conversation lock.

Layout (prefix from `REDIS_KEY_PREFIX`, default ``aigw:``):

* ``<prefix>conv:<uniqueid>`` - a Redis list, one element per turn. Each element is
  the JSON of that turn's LangChain messages (`messages_to_dict`), so the human
  message, the AI tool calls, the tool messages and the final answer survive
  faithfully and a turn is never split when old turns are trimmed.
* ``<prefix>lock:<uniqueid>`` - a redis-py `Lock`, so two turns of one conversation
  run one after the other even across gateway processes.

Every write sets the TTL (`CONVERSATION_TTL_SECONDS`) and trims to the newest
`CONVERSATION_MAX_TURNS` turns. Redis failures raise `MemoryUnavailable`.
"""

from __future__ import annotations

import json
import logging
import uuid

import orjson
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_from_dict, messages_to_dict
from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

logger = logging.getLogger(__name__)


class MemoryUnavailable(Exception):
    """Redis could not be reached or answered with an error."""


def serialize_turn(messages: list[BaseMessage]) -> bytes:
    """Serialise one turn's messages to JSON bytes (LangChain `messages_to_dict`).

    orjson, except for what it cannot encode (integers beyond 64 bits in tool
    arguments), which goes through the standard library's json.
    """
    data = messages_to_dict(messages)
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, default=str).encode()


def deserialize_turn(data: bytes | str) -> list[BaseMessage]:
    """Inverse of `serialize_turn`.

    Parsed with the standard library's json, which keeps integers of any size exact
    (orjson would turn one beyond 64 bits into a float).

    Raises:
        ValueError: the data is not a serialised turn.
    """
    try:
        return messages_from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt conversation entry: {exc}") from exc


#: Append one turn, trim, refresh the TTL and release the conversation lock if this
#: turn still holds it, atomically and in one round trip (EVALSHA). The unlock is
#: redis-py `Lock`'s own release check (token compare, then DEL).
#: KEYS: history, lock. ARGV: entry, max_turns, ttl_seconds, lock token ('' = no lock).
#: Returns 1 when the lock was released (or none was given), 0 when it was not held.
_SAVE_AND_UNLOCK = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[4] == '' then return 1 end
if redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


class ConversationMemory:
    """History of each conversation, as LangChain messages, in Redis."""

    def __init__(
        self, redis: Redis, *, prefix: str = "aigw:", ttl_seconds: int = 3600, max_turns: int = 20
    ) -> None:
        """Use the shared client `redis`; keys start with `prefix`."""
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._max_turns = max_turns
        self._save_and_unlock = redis.register_script(_SAVE_AND_UNLOCK)

    def key(self, uniqueid: str) -> str:
        """Redis key of the conversation `uniqueid`."""
        return f"{self._prefix}conv:{uniqueid}"

    async def load(self, uniqueid: str) -> list[BaseMessage]:
        """All kept messages of the conversation, oldest first ([] for a new one).

        A corrupt element is skipped (and logged) rather than failing the turn.

        Raises:
            MemoryUnavailable: Redis failed.
        """
        try:
            entries = await self._redis.lrange(self.key(uniqueid), 0, -1)
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"load failed: {type(exc).__name__}") from exc
        return self._decode(uniqueid, entries)

    @staticmethod
    def _decode(uniqueid: str, entries: list[bytes] | list[bytes | str]) -> list[BaseMessage]:
        messages: list[BaseMessage] = []
        for entry in entries:
            try:
                messages.extend(deserialize_turn(entry))
            except ValueError:
                logger.warning("uniqueid=%s skipping a corrupt history entry", uniqueid)
        return messages

    async def append_turn(
        self, uniqueid: str, messages: list[BaseMessage], *, unlock: Lock | None = None
    ) -> None:
        """Append one turn, trim to the newest `max_turns` turns and refresh the TTL.

        One Lua script (atomic, one round trip; the script is loaded once per Redis
        server, again after a restart). With `unlock`, the same script releases that
        conversation lock if this turn still holds it (a lock that expired meanwhile
        is logged, as `release_lock` does). Without messages only the lock is released.

        Raises:
            MemoryUnavailable: Redis failed (the lock, if any, is left to expire).
        """
        if not messages:
            await self.release_lock(unlock)
            return
        token = unlock.local.token if unlock is not None else None
        lock_name = str(unlock.name) if unlock is not None else ""
        try:
            released = await self._save_and_unlock(
                keys=[self.key(uniqueid), lock_name or self.key(uniqueid)],
                args=[serialize_turn(messages), self._max_turns, self._ttl, token or b""],
            )
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"save failed: {type(exc).__name__}") from exc
        if unlock is not None:
            unlock.local.token = None
            if not released:
                logger.warning("could not release conversation lock %s", lock_name)

    async def record_interrupted(
        self, uniqueid: str, user_input: str, answer: str, *, wait_seconds: float = 5.0
    ) -> None:
        """Keep only what the caller heard of the answer to `user_input` (a voice barge-in).

        The turn may already be saved in full (the barge-in came while its audio was
        still playing) or not at all (it was cancelled mid-stream). Under the
        conversation lock (so a save still in flight lands first, and the next turn
        reads the rewritten history), the newest entry is rewritten when its human
        message is `user_input`: its tool calls and tool results stay, its spoken answer
        becomes `answer`. Otherwise a new entry ``[human, answer]`` is appended. The
        answer is an `AIMessage` with ``additional_kwargs={"interrupted": True}``.

        Args:
            uniqueid: the conversation key.
            user_input: the caller's words, as the turn saved them (cleaned).
            answer: what the caller heard, with the interruption marker.
            wait_seconds: how long to wait for the conversation lock, in s.

        Raises:
            MemoryUnavailable: Redis failed.
        """
        spoken = AIMessage(content=answer, additional_kwargs={"interrupted": True})
        lock = await self.acquire_lock(uniqueid, wait_seconds=wait_seconds, hold_seconds=wait_seconds + 5)
        key = self.key(uniqueid)
        try:
            last = await self._redis.lindex(key, -1)
            turn = self._decode(uniqueid, [last]) if last is not None else []
            if turn and isinstance(turn[0], HumanMessage) and turn[0].content == user_input:
                while len(turn) > 1 and isinstance(turn[-1], AIMessage) and not turn[-1].tool_calls:
                    turn.pop()
                await self._redis.lset(key, -1, serialize_turn([*turn, spoken]))  # type: ignore[arg-type]
                await self._redis.expire(key, self._ttl)
            else:
                entry = serialize_turn([HumanMessage(content=user_input), spoken])
                await self._save_and_unlock(keys=[key, key], args=[entry, self._max_turns, self._ttl, b""])
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"rewrite failed: {type(exc).__name__}") from exc
        finally:
            await self.release_lock(lock)

    async def clear(self, uniqueid: str) -> None:
        """Forget a conversation.

        Raises:
            MemoryUnavailable: Redis failed.
        """
        try:
            await self._redis.delete(self.key(uniqueid))
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"clear failed: {type(exc).__name__}") from exc

    async def acquire_lock(self, uniqueid: str, *, wait_seconds: float, hold_seconds: float) -> Lock | None:
        """Take the conversation's lock (a redis-py `Lock`), for `release_lock` later.

        Args:
            uniqueid: the conversation key.
            wait_seconds: how long to wait for another turn to finish, in seconds.
            hold_seconds: lock expiry, in seconds, so a crashed holder cannot
                block the conversation forever.

        Returns:
            The held lock; None when Redis failed or the wait ran out (the turn
            then runs unlocked rather than leave the caller waiting).
        """
        lock = self._redis.lock(
            f"{self._prefix}lock:{uniqueid}",
            timeout=hold_seconds,
            blocking_timeout=max(wait_seconds, 0.01),
            sleep=0.02,
        )
        try:
            return lock if await lock.acquire() else None
        except (RedisError, OSError):
            return None

    async def acquire_and_load(
        self, uniqueid: str, *, wait_seconds: float, hold_seconds: float
    ) -> tuple[Lock | None, list[BaseMessage]]:
        """Take the conversation's lock and read its history, in one round trip when free.

        A pipeline sends ``SET <lock> <token> NX PX`` and ``LRANGE <history>`` together;
        the history is used only if the lock was free. Otherwise it waits for the lock
        like `acquire_lock` (up to `wait_seconds`, s) and reads the history after.

        Returns:
            The held lock (None when not taken; see `acquire_lock`) and the history.

        Raises:
            MemoryUnavailable: Redis failed while reading the history (a lock taken
                before the failure is released first).
        """
        lock = self._redis.lock(
            f"{self._prefix}lock:{uniqueid}",
            timeout=hold_seconds,
            blocking_timeout=max(wait_seconds, 0.01),
            sleep=0.02,
        )
        token = uuid.uuid4().hex.encode()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(lock.name, token, nx=True, px=max(1, int(hold_seconds * 1000)))
                pipe.lrange(self.key(uniqueid), 0, -1)
                got, entries = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise MemoryUnavailable(f"load failed: {type(exc).__name__}") from exc
        if got:
            lock.local.token = token
            return lock, self._decode(uniqueid, entries)
        held = await self.acquire_lock(uniqueid, wait_seconds=wait_seconds, hold_seconds=hold_seconds)
        try:
            return held, await self.load(uniqueid)
        except MemoryUnavailable:
            await self.release_lock(held)
            raise

    async def release_lock(self, lock: Lock | None) -> None:
        """Release a lock from `acquire_lock` (None is ignored; failures are logged)."""
        if lock is None:
            return
        try:
            await lock.release()
        except (LockError, RedisError, OSError):
            logger.warning("could not release conversation lock %s", lock.name)

    async def ping(self) -> bool:
        """True when Redis answers PING."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False
