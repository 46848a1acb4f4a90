"""Open SSE streams per account, counted in Redis across every web process (SPEC 9).

Each open stream holds a slot: a member of the account's sorted set, scored by the time
the slot lapses. A live stream pushes that time forward while it runs (`Slot.refresh`); a
stream whose process died stops doing so, and its slot lapses `STREAM_SLOT_TTL_SECONDS`
later, so a crash never keeps an account's slots for long. Taking a slot is one Lua
script (drop lapsed members, count, add under the cap), so two processes can never both
take the last one; every time in it is Redis's clock, so web hosts need not agree on
theirs. A member is `<end of the stream's lifetime in ms>:<random id>`, which lets a
refusal say when a slot will surely be free (`Retry-After`).
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from typing import Any

import redis

from shared.keys import STREAM_SLOT_TTL_SECONDS, Keys

log = logging.getLogger(__name__)

# KEYS[1] the account's set; ARGV: cap, slot ttl ms, stream lifetime ms, random id.
# Answers {1, member} when a slot was taken, else {0, ms until a slot is free at the
# latest}.
_TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local cap, ttl, life = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local open = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
if #open / 2 >= cap then
  local soonest = nil
  for i = 1, #open, 2 do
    -- A live stream renews its lapse and frees its slot at its lifetime's end; a dead
    -- one frees it at its lapse. Which it is cannot be told, so take the later.
    local ends = tonumber(string.match(open[i], '^(%d+):')) or now + life
    local frees = math.max(ends, tonumber(open[i + 1]))
    if soonest == nil or frees < soonest then soonest = frees end
  end
  return {0, math.max(soonest - now, 0)}
end
local member = string.format('%d:%s', now + life, ARGV[4])
redis.call('ZADD', KEYS[1], now + ttl, member)
redis.call('PEXPIRE', KEYS[1], ttl)
return {1, member}
"""

# KEYS[1] the account's set; ARGV: member, slot ttl ms. Re-adds a member that lapsed
# while its process was stalled: the stream is alive, so it counts again.
_REFRESH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class TooManyStreams(Exception):
    """Raised when an account already holds every stream slot it may."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"{limit} event streams are already open")
        self.limit = limit
        self.retry_after = retry_after


class Slot:
    """One open stream's place in its account's count."""

    def __init__(self, slots: StreamSlots, key: str, member: str) -> None:
        self._slots = slots
        self._key = key
        self.member = member
        self._renewed = time.monotonic()
        self._released = False

    def refresh(self) -> None:
        """Keep the slot from lapsing (cheap to call often: renews every ttl/3 at most)."""
        if self._released or time.monotonic() - self._renewed < self._slots.ttl_seconds / 3:
            return
        try:
            self._slots.renew(self._key, self.member)
            self._renewed = time.monotonic()
        except redis.RedisError:
            # The stream goes on without Redis (it re-reads the job row); the slot is
            # renewed again, re-added if it lapsed, once Redis answers.
            log.debug("stream slot %s not renewed (Redis unreachable)", self.member)

    def release(self) -> None:
        """Give the slot back (idempotent; a lost release lapses by itself)."""
        if self._released:
            return
        self._released = True
        try:
            self._slots.client.zrem(self._key, self.member)
        except redis.RedisError:
            log.debug("stream slot %s not released (Redis unreachable)", self.member)


class StreamSlots:
    """At most `limit` open streams per account, however many web processes serve them."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        keys: Keys,
        limit: int,
        lifetime_seconds: float,
        ttl_seconds: float = STREAM_SLOT_TTL_SECONDS,
    ) -> None:
        self.client = client
        self.keys = keys
        self.limit = limit
        self.lifetime_seconds = lifetime_seconds
        self.ttl_seconds = ttl_seconds
        self._take: Any = client.register_script(_TAKE)
        self._refresh: Any = client.register_script(_REFRESH)

    @classmethod
    def from_url(cls, url: str, *, prefix: str, limit: int, lifetime_seconds: float) -> StreamSlots:
        """Slots on a new client for `url`."""
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
        return cls(client, keys=Keys(prefix), limit=limit, lifetime_seconds=lifetime_seconds)

    def take(self, account_id: str) -> Slot:
        """A slot for a new stream of `account_id`; `TooManyStreams` when none is free.
        A Redis error propagates: the stream cannot be counted, so it is not opened."""
        key = self.keys.streams(account_id)
        taken, value = self._take(
            keys=[key],
            args=[
                self.limit,
                _ms(self.ttl_seconds),
                _ms(self.lifetime_seconds),
                secrets.token_hex(8),
            ],
        )
        if int(taken) != 1:
            retry_after = max(1, math.ceil(int(value) / 1000))
            raise TooManyStreams(self.limit, retry_after)
        member = value.decode() if isinstance(value, bytes) else str(value)
        return Slot(self, key, member)

    def renew(self, key: str, member: str) -> None:
        """Push a slot's lapse `ttl_seconds` into the future (re-adding it if it lapsed)."""
        self._refresh(keys=[key], args=[member, _ms(self.ttl_seconds)])

    def open_count(self, account_id: str) -> int:
        """How many slots of `account_id` have not lapsed (operators and tests)."""
        seconds, micros = self.client.time()
        now = seconds * 1000 + micros // 1000
        return int(self.client.zcount(self.keys.streams(account_id), f"({now}", "+inf"))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
