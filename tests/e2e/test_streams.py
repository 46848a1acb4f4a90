"""SSE streams against real `ferry web` processes (SPEC 9): open streams never starve the
web tier, the per-account cap holds across processes, a stream ends after its lifetime and
the client resumes with Last-Event-ID.

The bounds on answer times below are functional (a request that waits behind streams
never answers at all), not benchmarks: each is a request timeout of several seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import redis
import requests
from sqlalchemy import Engine

from shared.keys import Keys
from shared.settings import Settings
from shared.store.accounts import create_account, issue_token
from shared.store.db import libpq_dsn
from shared.store.seed import seed_timeline
from tests.conftest import TEST_REDIS_URL
from tests.e2e.harness import Stack
from tests.polling import wait_for

# A request that has to wait behind open streams never answers; one that is served answers
# in milliseconds. Several seconds apart from either, on a busy two-core machine.
ANSWER_WITHIN = 5.0
CAP = 8  # FERRY_MAX_STREAMS_PER_ACCOUNT's default
ACCOUNTS = 8  # 8 accounts x 8 streams = 64 open streams


@dataclass(frozen=True)
class Person:
    account_id: str
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]


def new_person(engine: Engine) -> Person:
    account = create_account(engine, f"streams-{uuid.uuid4().hex[:8]}")
    return Person(account.id, issue_token(engine, account.id, role="user"))


def export(base: str, person: Person) -> str:
    """Queue an export (no worker runs it here unless the test starts one); its id."""
    response = requests.post(
        f"{base}/api/v1/exports",
        json={"type": "archive"},
        headers=person.headers(),
        timeout=ANSWER_WITHIN,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job"]["id"])


def open_stream(
    base: str,
    person: Person,
    job_id: str,
    last_event_id: int | None = None,
    *,
    read_timeout: float = ANSWER_WITHIN,
) -> requests.Response:
    """GET the job's events; returns once the headers arrived (the body stays unread).
    The headers come with the stream's first line, at once, so they too are bounded."""
    extra = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    return requests.get(
        f"{base}/api/v1/jobs/{job_id}/events",
        headers=person.headers(**extra),
        stream=True,
        timeout=(ANSWER_WITHIN, read_timeout),
    )


def read_events(response: requests.Response) -> Iterator[Event]:
    """The stream's events, with their ids, until it closes."""
    fields: dict[str, str] = {}
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if "event" in fields:
                yield Event(int(fields["id"]), fields["event"], orjson.loads(fields["data"]))
            fields = {}
            continue
        name, _, value = line.partition(":")
        if name in ("id", "event", "data"):
            fields[name] = value.strip()


def served(url: str, **kwargs: Any) -> requests.Response:
    """GET `url`, which must answer within ANSWER_WITHIN seconds."""
    return requests.get(url, timeout=ANSWER_WITHIN, **kwargs)


def test_given_64_open_streams_when_others_ask_then_they_are_served_and_the_cap_holds(
    stack: Stack, settings: Settings, engine: Engine
) -> None:
    """Given two `ferry web` processes (one with two workers) and 8 accounts that each try
    10 streams through both, When the streams stay open, Then each account gets exactly
    8 (the cap, counted across processes), the 16 others are 429 `too_many_streams` with
    Retry-After, every open stream carries its snapshot, and meanwhile /healthz, /readyz
    and another account's requests on both processes answer; closing one stream lets that
    account open another."""
    stack.start_web(workers=2)
    _, second_port = stack.launch_web(workers=1)
    bases = [stack.base_url, f"http://127.0.0.1:{second_port}"]
    people = [new_person(engine) for _ in range(ACCOUNTS)]
    bystander = new_person(engine)
    jobs = {p.account_id: export(bases[0], p) for p in [*people, bystander]}

    held: list[tuple[Person, requests.Response]] = []
    refused: list[tuple[int, dict[str, Any], str | None]] = []
    for person in people:
        for attempt in range(CAP + 2):
            response = open_stream(bases[attempt % 2], person, jobs[person.account_id])
            if response.status_code == 200:
                held.append((person, response))
            else:
                refused.append(
                    (response.status_code, response.json(), response.headers.get("Retry-After"))
                )
                response.close()
    try:
        assert len(held) == ACCOUNTS * CAP == 64
        for person in people:
            assert sum(1 for p, _ in held if p == person) == CAP
        assert len(refused) == 2 * ACCOUNTS
        for status, body, retry_after in refused:
            assert status == 429, body
            assert body["error"]["code"] == "too_many_streams", body
            assert retry_after is not None and int(retry_after) >= 1
        client = redis.Redis.from_url(TEST_REDIS_URL)
        keys = Keys(settings.redis_prefix)
        assert [client.zcard(keys.streams(p.account_id)) for p in people] == [CAP] * ACCOUNTS
        client.close()
        for _, response in held:
            first = next(read_events(response))
            assert first.name == "snapshot" and first.id == 1, first

        for _ in range(6):  # a few rounds, so both workers of the first process answer
            for base in bases:
                assert served(f"{base}/healthz").status_code == 200
                ready = served(f"{base}/readyz")
                assert ready.status_code == 200, ready.text
                job = served(
                    f"{base}/api/v1/jobs/{jobs[bystander.account_id]}",
                    headers=bystander.headers(),
                )
                assert job.status_code == 200, job.text
                assert job.json()["job"]["id"] == jobs[bystander.account_id]
                listed = served(f"{base}/api/v1/jobs", headers=people[0].headers())
                assert listed.status_code == 200, listed.text
        assert export(bases[1], bystander)

        person, closing = held.pop(0)
        closing.close()

        def another_opens() -> requests.Response | None:
            response = open_stream(bases[1], person, jobs[person.account_id])
            if response.status_code == 200:
                return response
            assert response.status_code == 429, response.text
            response.close()
            return None

        # The server notices the closed connection at its next keep-alive write.
        held.append((person, wait_for(another_opens, timeout=30, interval=0.5, what="a slot")))
    finally:
        for _, response in held:
            response.close()


def test_given_a_request_stuck_on_the_database_when_health_is_asked_then_it_answers(
    stack: Stack, engine: Engine, settings: Settings
) -> None:
    """Given one `ferry web` worker whose GET /jobs/{id} waits on a lock in PostgreSQL,
    When /healthz and /readyz are asked meanwhile, Then they answer (the database wait
    yields to other requests), and the stuck request completes once the lock goes."""
    stack.start_web(workers=1)
    person = new_person(engine)
    job_id = export(stack.base_url, person)
    answers: list[requests.Response] = []

    with psycopg.connect(libpq_dsn(settings.database_url)) as locker:
        locker.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        stuck = threading.Thread(
            target=lambda: answers.append(
                requests.get(
                    f"{stack.base_url}/api/v1/jobs/{job_id}", headers=person.headers(), timeout=60
                )
            ),
            daemon=True,
        )
        stuck.start()

        def waiting_on_the_lock() -> bool:
            with psycopg.connect(libpq_dsn(settings.database_url)) as probe:
                row = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
                return bool(row and row[0])

        wait_for(waiting_on_the_lock, timeout=20, what="GET /jobs/{id} to wait on the lock")
        assert served(f"{stack.base_url}/healthz").status_code == 200
        assert served(f"{stack.base_url}/readyz").status_code == 200
        assert answers == []
        locker.rollback()

    stuck.join(timeout=30)
    assert [a.status_code for a in answers] == [200]


def test_given_a_long_job_when_its_stream_reaches_its_lifetime_then_the_client_resumes(
    settings: Settings, engine: Engine, tmp_path: Any
) -> None:
    """Given FERRY_STREAM_SECONDS=2, one stream per account and an export that runs for
    several seconds, When a client follows it and reconnects with Last-Event-ID whenever
    the stream closes, Then each stream closes after about its lifetime without `end`, each
    reconnect is served at once (the slot was freed) and starts with a fresh snapshot, the
    ids go on without a gap across streams, and the last stream ends with `end`
    (succeeded)."""
    lifetime = 2.0
    stack = Stack(
        settings.with_overrides(
            stream_seconds=lifetime, max_streams_per_account=1, max_rows_per_second=400.0
        ),
        tmp_path / "lifetime-logs",
    )
    person = new_person(engine)
    seed_timeline(
        settings.database_url,
        person.account_id,
        days=6,
        samples_per_day=500,
        seed=5,
        start=datetime(2024, 12, 28, tzinfo=UTC),
    )
    try:
        stack.start_web()
        stack.start_worker()
        job_id = export(stack.base_url, person)
        streams: list[tuple[float, list[Event]]] = []
        last_id: int | None = None
        deadline = time.monotonic() + 180
        while not streams or streams[-1][1][-1].name != "end":
            assert time.monotonic() < deadline, f"the export never ended: {streams}"
            opened = time.monotonic()
            with open_stream(stack.base_url, person, job_id, last_id, read_timeout=30) as resp:
                assert resp.status_code == 200, resp.text
                got = list(read_events(resp))
            streams.append((time.monotonic() - opened, got))
            last_id = got[-1].id
    except BaseException:
        print(stack.dump_logs())
        raise
    finally:
        stack.stop()

    assert len(streams) >= 3, [len(events) for _, events in streams]
    ids = [event.id for _, events in streams for event in events]
    assert ids == list(range(1, len(ids) + 1))
    for _, events in streams:
        assert events[0].name == "snapshot", events[0]
    for seconds, events in streams[:-1]:
        assert "end" not in [e.name for e in events]
        assert lifetime <= seconds < lifetime + 15, seconds
    final = streams[-1][1][-1]
    assert final.name == "end" and final.data["job"]["status"] == "succeeded", final
    overall = [
        e.data["progress"]["overall"] for _, ev in streams for e in ev if e.name == "progress"
    ]
    assert overall and overall == sorted(overall)
