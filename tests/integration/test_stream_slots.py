"""Counting open SSE streams per account in real Redis (SPEC 9): what the cap relies on.

Two `StreamSlots` on their own clients stand for two web processes; a slot that is never
refreshed nor released is what a process that died leaves behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from shared.keys import Keys
from tests.conftest import TEST_REDIS_URL
from tests.polling import wait_for
from web.streams import StreamSlots, TooManyStreams

MakeSlots = Callable[..., StreamSlots]


@pytest.fixture
def make_slots(redis_prefix: str) -> Iterator[MakeSlots]:
    """Build `StreamSlots` on fresh clients (one per simulated web process)."""
    made: list[StreamSlots] = []

    def make(*, limit: int = 3, lifetime: float = 300.0, ttl: float = 30.0) -> StreamSlots:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        slots = StreamSlots(
            client,
            keys=Keys(redis_prefix),
            limit=limit,
            lifetime_seconds=lifetime,
            ttl_seconds=ttl,
        )
        made.append(slots)
        return slots

    yield make
    for slots in made:
        slots.client.close()


def account() -> str:
    return str(uuid.uuid4())


def test_given_two_processes_when_an_account_opens_streams_then_the_cap_counts_both(
    make_slots: MakeSlots,
) -> None:
    """Given two web processes, When one account opens streams through both, Then together
    they grant exactly the cap; the next is refused with a Retry-After within the stream
    lifetime, and another account is not affected."""
    first, second = make_slots(limit=3, lifetime=120), make_slots(limit=3, lifetime=120)
    person = account()

    taken = [first.take(person), second.take(person), first.take(person)]
    with pytest.raises(TooManyStreams) as refused:
        second.take(person)

    assert len({slot.member for slot in taken}) == 3
    assert refused.value.limit == 3
    assert 1 <= refused.value.retry_after <= 120
    assert first.open_count(person) == 3
    assert second.take(account()) is not None


def test_given_a_full_account_when_refused_then_retry_after_is_when_a_slot_surely_frees(
    make_slots: MakeSlots,
) -> None:
    """Given an account at its cap with streams of a 5 s lifetime (slots lapsing in 2 s),
    When one more is asked, Then Retry-After is within those 5 s: by then the oldest
    stream has ended if alive, or lapsed if its process died."""
    slots = make_slots(limit=2, lifetime=5.0, ttl=2.0)
    person = account()
    slots.take(person)
    slots.take(person)

    with pytest.raises(TooManyStreams) as refused:
        slots.take(person)

    assert 1 <= refused.value.retry_after <= 5


def test_given_a_full_account_when_a_stream_ends_then_its_slot_is_free_again(
    make_slots: MakeSlots,
) -> None:
    """Given an account at its cap, When one stream releases its slot (twice, as a close
    after an end does), Then exactly one new stream may open."""
    slots = make_slots(limit=2)
    person = account()
    one, _ = slots.take(person), slots.take(person)

    one.release()
    one.release()

    slots.take(person)
    with pytest.raises(TooManyStreams):
        slots.take(person)


def test_given_a_process_that_died_holding_slots_when_their_ttl_passes_then_they_lapse(
    make_slots: MakeSlots,
) -> None:
    """Given slots whose process died (never refreshed nor released), When their ttl
    passes, Then the account may open streams again, while a stream that kept refreshing
    its slot still counts."""
    slots = make_slots(limit=2, ttl=1.0)
    person = account()
    dead = slots.take(person)
    alive = slots.take(person)
    with pytest.raises(TooManyStreams):
        slots.take(person)

    def dead_one_lapsed() -> bool:
        alive.refresh()
        return slots.open_count(person) == 1

    wait_for(dead_one_lapsed, timeout=10, interval=0.1, what="the dead slot to lapse")
    assert dead.member != alive.member
    slots.take(person)
    with pytest.raises(TooManyStreams):
        slots.take(person)


def test_given_a_stalled_stream_whose_slot_lapsed_when_it_refreshes_then_it_counts_again(
    make_slots: MakeSlots,
) -> None:
    """Given a stream whose slot lapsed while its process was stalled, When it refreshes,
    Then its slot is back in the count (a live stream always counts)."""
    slots = make_slots(limit=1, ttl=0.3)
    person = account()
    stalled = slots.take(person)
    wait_for(lambda: slots.open_count(person) == 0, timeout=10, what="the slot to lapse")

    time.sleep(0.2)  # past ttl/3, so the refresh is not skipped as too recent
    stalled.refresh()

    assert slots.open_count(person) == 1
    with pytest.raises(TooManyStreams):
        slots.take(person)
