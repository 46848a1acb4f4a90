"""The live store contract against a real Redis (the same tests as the unit tier's fakes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shared.jobs.live import RedisLiveStore
from shared.keys import CANCEL_TTL_SECONDS, PROGRESS_TTL_SECONDS, Keys
from tests.conftest import TEST_REDIS_URL
from tests.unit.test_live_contract import PROGRESS, LiveStoreContract, new_job_id


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A client on the test Redis."""
    found = redis.Redis.from_url(TEST_REDIS_URL, socket_timeout=10, socket_connect_timeout=2)
    yield found
    found.close()


@pytest.fixture
def store(redis_prefix: str, client: redis.Redis) -> RedisLiveStore:
    """A Redis live store under this test's own key prefix."""
    return RedisLiveStore(client, keys=Keys(redis_prefix))


class TestRealRedisLiveStore(LiveStoreContract):
    """The contract against RedisLiveStore on the real Redis."""


def test_given_progress_and_a_cancel_flag_then_they_expire_and_stay_under_the_prefix(
    store: RedisLiveStore, client: redis.Redis, redis_prefix: str
) -> None:
    """Nothing durable lives only in Redis: live keys carry a TTL and the test's prefix."""
    job = new_job_id()

    store.put_progress(job, PROGRESS)
    store.request_cancel(job)

    keys = sorted(key.decode() for key in client.scan_iter(match=f"{redis_prefix}*"))
    assert keys == sorted([store.keys.progress(job), store.keys.cancel(job)])
    assert 0 < client.ttl(store.keys.progress(job)) <= PROGRESS_TTL_SECONDS
    assert 0 < client.ttl(store.keys.cancel(job)) <= CANCEL_TTL_SECONDS


def test_given_a_store_made_from_a_url_then_it_answers(redis_prefix: str) -> None:
    """`from_url` is how web and worker build their store."""
    store = RedisLiveStore.from_url(TEST_REDIS_URL, prefix=redis_prefix)
    job = new_job_id()

    store.put_progress(job, PROGRESS)

    assert store.ping() is True
    assert store.get_progress(job) == PROGRESS
    store.client.close()
