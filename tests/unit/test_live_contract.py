"""The live store contract (SPEC 6, 7): one set of tests for every `LiveStore`.

`LiveStoreContract` holds the tests; a tier subclasses it and provides a `store` fixture.
Here they run against the in-memory store and the Redis store on fakeredis;
tests/integration/test_live_redis.py runs the same class against a real Redis, so the
fake cannot drift from the real thing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from shared.jobs.live import LiveStore, MemoryLiveStore, RedisLiveStore
from shared.keys import Keys

# Generous: a shared 2-core machine may be slow to deliver a pub/sub message.
ARRIVES_WITHIN = 10.0
# How long to listen before concluding that nothing is coming.
QUIET_FOR = 0.3

PROGRESS: dict[str, Any] = {
    "phase": "samples",
    "phase_index": 3,
    "phase_count": 5,
    "phase_done": 120000,
    "phase_total": 1000000,
    "rows_done": 131000,
    "rows_total": 1011000,
    "overall": 0.42,
    "eta_seconds": 12.5,
    "updated_at": "2026-11-22T10:15:03.12Z",
}


def new_job_id() -> str:
    return str(uuid.uuid4())


class LiveStoreContract:
    """What web, worker and CLI rely on from a live store. Subclasses provide `store`."""

    def test_given_no_progress_stored_then_there_is_none(self, store: LiveStore) -> None:
        """An unknown job has no live progress (callers fall back to Postgres)."""
        assert store.get_progress(new_job_id()) is None

    def test_given_progress_put_then_get_returns_it_unchanged(self, store: LiveStore) -> None:
        """A status poll reads exactly what the worker last wrote."""
        job = new_job_id()

        store.put_progress(job, PROGRESS)

        assert store.get_progress(job) == PROGRESS

    def test_given_progress_put_twice_then_the_latest_wins(self, store: LiveStore) -> None:
        """Only the newest snapshot is kept."""
        job = new_job_id()
        store.put_progress(job, {**PROGRESS, "overall": 0.1})

        store.put_progress(job, {**PROGRESS, "overall": 0.2, "eta_seconds": None})

        assert store.get_progress(job) == {**PROGRESS, "overall": 0.2, "eta_seconds": None}

    def test_given_progress_of_one_job_then_another_job_does_not_see_it(
        self, store: LiveStore
    ) -> None:
        """Jobs never read each other's progress."""
        job, other = new_job_id(), new_job_id()

        store.put_progress(job, PROGRESS)

        assert store.get_progress(other) is None

    def test_given_a_subscriber_when_progress_is_put_then_a_progress_event_arrives(
        self, store: LiveStore
    ) -> None:
        """SSE clients see progress as it is written."""
        job = new_job_id()
        subscription = store.subscribe(job)
        try:
            store.put_progress(job, PROGRESS)

            event = subscription.next_event(timeout=ARRIVES_WITHIN)
        finally:
            subscription.close()

        assert event == {"type": "progress", "progress": PROGRESS}

    def test_given_a_subscriber_when_an_event_is_announced_then_it_arrives_as_sent(
        self, store: LiveStore
    ) -> None:
        """Status changes reach subscribers as sent."""
        job = new_job_id()
        status = {"type": "status", "status": "cancelling", "attempt": 2}
        subscription = store.subscribe(job)
        try:
            store.announce(job, status)

            event = subscription.next_event(timeout=ARRIVES_WITHIN)
        finally:
            subscription.close()

        assert event == status

    def test_given_several_events_then_they_arrive_in_the_order_sent(
        self, store: LiveStore
    ) -> None:
        """A client never sees `succeeded` before the progress that preceded it."""
        job = new_job_id()
        subscription = store.subscribe(job)
        try:
            store.announce(job, {"type": "status", "status": "running", "attempt": 1})
            store.put_progress(job, {**PROGRESS, "overall": 0.5})
            store.put_progress(job, {**PROGRESS, "overall": 0.9})
            store.announce(job, {"type": "status", "status": "succeeded", "attempt": 1})

            events = [subscription.next_event(timeout=ARRIVES_WITHIN) for _ in range(4)]
        finally:
            subscription.close()

        assert events == [
            {"type": "status", "status": "running", "attempt": 1},
            {"type": "progress", "progress": {**PROGRESS, "overall": 0.5}},
            {"type": "progress", "progress": {**PROGRESS, "overall": 0.9}},
            {"type": "status", "status": "succeeded", "attempt": 1},
        ]

    def test_given_two_subscribers_then_both_receive_each_event(self, store: LiveStore) -> None:
        """Two browser tabs watching one job both update."""
        job = new_job_id()
        first, second = store.subscribe(job), store.subscribe(job)
        try:
            store.announce(job, {"type": "status", "status": "running", "attempt": 1})

            received = [
                first.next_event(timeout=ARRIVES_WITHIN),
                second.next_event(timeout=ARRIVES_WITHIN),
            ]
        finally:
            first.close()
            second.close()

        assert received == [{"type": "status", "status": "running", "attempt": 1}] * 2

    def test_given_events_sent_before_subscribing_then_none_of_them_arrive(
        self, store: LiveStore
    ) -> None:
        """Pub/sub is live only: a late subscriber reads state first, then listens."""
        job = new_job_id()
        store.put_progress(job, PROGRESS)
        store.announce(job, {"type": "status", "status": "running", "attempt": 1})

        subscription = store.subscribe(job)
        try:
            event = subscription.next_event(timeout=QUIET_FOR)
        finally:
            subscription.close()

        assert event is None
        assert store.get_progress(job) == PROGRESS

    def test_given_events_of_another_job_then_they_do_not_arrive(self, store: LiveStore) -> None:
        """A subscriber hears only its own job."""
        job, other = new_job_id(), new_job_id()
        subscription = store.subscribe(job)
        try:
            store.put_progress(other, PROGRESS)
            store.announce(other, {"type": "status", "status": "running", "attempt": 1})
            store.announce(job, {"type": "status", "status": "queued", "attempt": 1})

            first = subscription.next_event(timeout=ARRIVES_WITHIN)
            then = subscription.next_event(timeout=QUIET_FOR)
        finally:
            subscription.close()

        assert first == {"type": "status", "status": "queued", "attempt": 1}
        assert then is None

    def test_given_a_quiet_channel_then_next_event_returns_none_after_the_timeout(
        self, store: LiveStore
    ) -> None:
        """A waiting SSE stream wakes up to send keep-alives."""
        subscription = store.subscribe(new_job_id())
        try:
            assert subscription.next_event(timeout=QUIET_FOR) is None
        finally:
            subscription.close()

    def test_given_no_cancel_requested_then_the_flag_is_down(self, store: LiveStore) -> None:
        """A fresh job is not being cancelled."""
        assert store.cancel_requested(new_job_id()) is False

    def test_given_a_cancel_request_then_the_flag_is_up_for_that_job_only(
        self, store: LiveStore
    ) -> None:
        """The worker sees the cancel of its own job (SPEC 7), not of others."""
        job, other = new_job_id(), new_job_id()

        store.request_cancel(job)

        assert store.cancel_requested(job) is True
        assert store.cancel_requested(other) is False

    def test_given_a_cancel_request_twice_then_the_flag_is_up_once(self, store: LiveStore) -> None:
        """Requesting cancel again is harmless, and one clear lowers it."""
        job = new_job_id()
        store.request_cancel(job)
        store.request_cancel(job)

        store.clear_cancel(job)

        assert store.cancel_requested(job) is False

    def test_given_a_raised_flag_when_cleared_then_it_is_down(self, store: LiveStore) -> None:
        """A restarted job does not inherit the cancel of its earlier attempt (SPEC 8)."""
        job = new_job_id()
        store.request_cancel(job)

        store.clear_cancel(job)

        assert store.cancel_requested(job) is False

    def test_given_no_flag_when_cleared_then_nothing_happens(self, store: LiveStore) -> None:
        """Clearing is safe to repeat."""
        job = new_job_id()

        store.clear_cancel(job)

        assert store.cancel_requested(job) is False

    def test_given_a_reachable_store_then_ping_says_so(self, store: LiveStore) -> None:
        """/readyz relies on ping."""
        assert store.ping() is True


@pytest.fixture(params=["memory", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[LiveStore]:
    """The in-memory store, and the Redis store on an in-process fake Redis."""
    if request.param == "memory":
        yield MemoryLiveStore()
        return
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield RedisLiveStore(client, keys=Keys(f"ferrytest-{uuid.uuid4().hex[:10]}"))
    client.close()


class TestLiveStoreContract(LiveStoreContract):
    """The contract against MemoryLiveStore and RedisLiveStore on fakeredis."""


def test_given_two_prefixes_on_one_redis_then_their_keys_never_meet() -> None:
    """Tests and tenants sharing a Redis are isolated by the key prefix."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    first = RedisLiveStore(client, keys=Keys("a"))
    second = RedisLiveStore(client, keys=Keys("b"))
    job = new_job_id()

    first.put_progress(job, PROGRESS)
    first.request_cancel(job)

    assert second.get_progress(job) is None
    assert second.cancel_requested(job) is False
    assert all(key.startswith(b"a:") for key in client.keys("*"))
