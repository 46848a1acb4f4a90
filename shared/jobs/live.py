"""Live job state in Redis: progress snapshots, status events, cancel flags (SPEC 6, 7).

Nothing here is durable: Postgres holds the truth, Redis makes it fast. Each store is a
Protocol with the Redis implementation and an in-memory one side by side; one contract
test runs against both.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import redis

from shared.keys import CANCEL_TTL_SECONDS, PROGRESS_TTL_SECONDS, Keys

log = logging.getLogger(__name__)


class Subscription(Protocol):
    """An open subscription to one job's events."""

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None when `timeout` seconds pass without one."""

    def close(self) -> None:
        """Stop listening."""


class _RedisSubscription:
    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            message = self._pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "message":
                return orjson.loads(message["data"])

    def close(self) -> None:
        self._pubsub.close()


class _QueueSubscription:
    def __init__(self, box: queue.Queue[dict[str, Any]], on_close: Callable[[], None]) -> None:
        self._box = box
        self._on_close = on_close

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self._box.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._on_close()


class LiveStore(Protocol):
    """Where live progress, status events and cancel flags of jobs go."""

    def put_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Store the latest progress of a job and announce it on the job's channel."""

    def get_progress(self, job_id: str) -> dict[str, Any] | None:
        """The latest progress of a job, or None when Redis has none."""

    def announce(self, job_id: str, event: dict[str, Any]) -> None:
        """Send an event (e.g. a status change) on the job's channel."""

    def subscribe(self, job_id: str) -> Subscription:
        """Start listening to the job's channel (before reading state, to miss nothing)."""

    def request_cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag."""

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job's cancel flag is up."""

    def ping(self) -> bool:
        """Whether the store answers."""

    def clear_cancel(self, job_id: str) -> None:
        """Lower the job's cancel flag (after it ended or was restarted)."""


class RedisLiveStore:
    """`LiveStore` on Redis: a string per job for progress and the flag, pub/sub for events."""

    def __init__(self, client: redis.Redis, *, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisLiveStore:
        """A store on a new client for `url`."""
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
        return cls(client, keys=Keys(prefix))

    def put_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Store the latest progress of a job and announce it on the job's channel."""
        body = orjson.dumps(progress)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.keys.progress(job_id), body, ex=PROGRESS_TTL_SECONDS)
        pipe.publish(self.keys.channel(job_id), b'{"type":"progress","progress":' + body + b"}")
        pipe.execute()

    def get_progress(self, job_id: str) -> dict[str, Any] | None:
        """The latest progress of a job, or None when Redis has none."""
        raw = self.client.get(self.keys.progress(job_id))
        return None if raw is None else orjson.loads(raw)

    def announce(self, job_id: str, event: dict[str, Any]) -> None:
        """Send an event (e.g. a status change) on the job's channel."""
        self.client.publish(self.keys.channel(job_id), orjson.dumps(event))

    def subscribe(self, job_id: str) -> Subscription:
        """Start listening to the job's channel (before reading state, to miss nothing)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.channel(job_id))
        return _RedisSubscription(pubsub)

    def request_cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag."""
        self.client.set(self.keys.cancel(job_id), b"1", ex=CANCEL_TTL_SECONDS)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job's cancel flag is up."""
        return bool(self.client.exists(self.keys.cancel(job_id)))

    def clear_cancel(self, job_id: str) -> None:
        """Lower the job's cancel flag (after it ended or was restarted)."""
        self.client.delete(self.keys.cancel(job_id))

    def ping(self) -> bool:
        """Whether Redis answers."""
        return bool(self.client.ping())


def announce_status(live: LiveStore, job_id: str, status: str, attempt: int) -> None:
    """Tell followers of a job that its status changed; best effort (Redis may be down,
    and SSE and `ferry jobs watch` re-read the row when it is quiet)."""
    try:
        live.announce(job_id, {"type": "status", "status": status, "attempt": attempt})
    except Exception:
        log.debug("job %s: status event not sent (Redis unreachable)", job_id)


class MemoryLiveStore:
    """`LiveStore` in process memory, for unit tests (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[str, dict[str, Any]] = {}
        self._flags: set[str] = set()
        self._subscribers: dict[str, list[queue.Queue[dict[str, Any]]]] = defaultdict(list)

    def put_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Store the latest progress of a job and announce it on the job's channel."""
        with self._lock:
            self._progress[job_id] = dict(progress)
        self.announce(job_id, {"type": "progress", "progress": dict(progress)})

    def get_progress(self, job_id: str) -> dict[str, Any] | None:
        """The latest progress of a job, or None when none was stored."""
        with self._lock:
            found = self._progress.get(job_id)
            return None if found is None else dict(found)

    def announce(self, job_id: str, event: dict[str, Any]) -> None:
        """Send an event to every current subscriber of the job."""
        with self._lock:
            subscribers = list(self._subscribers[job_id])
        for box in subscribers:
            box.put(event)

    def subscribe(self, job_id: str) -> Subscription:
        """Start listening to the job's channel."""
        box: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._subscribers[job_id].append(box)

        def close() -> None:
            with self._lock:
                if box in self._subscribers[job_id]:
                    self._subscribers[job_id].remove(box)

        return _QueueSubscription(box, close)

    def request_cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag."""
        with self._lock:
            self._flags.add(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job's cancel flag is up."""
        with self._lock:
            return job_id in self._flags

    def clear_cancel(self, job_id: str) -> None:
        """Lower the job's cancel flag."""
        with self._lock:
            self._flags.discard(job_id)

    def ping(self) -> bool:
        """Always reachable."""
        return True
