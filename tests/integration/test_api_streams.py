"""SSE limits of the API (SPEC 9) through Flask's test client: the per-account cap and its
429, event ids and `Last-Event-ID`, and the stream's lifetime.

The live store and publisher are the in-memory twins; the stream slots are real Redis
(under this test's prefix), as in production.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from web import create_app

LIMIT = 2


@dataclass
class Client:
    http: FlaskClient

    def export(self, token: str) -> str:
        response = self.http.post("/api/v1/exports", json={"type": "archive"}, headers=auth(token))
        assert response.status_code == 202, response.get_data(as_text=True)
        return str(response.get_json()["job"]["id"])

    def cancel(self, token: str, job_id: str) -> None:
        response = self.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(token))
        assert response.status_code == 202, response.get_data(as_text=True)

    def stream(self, token: str, job_id: str, last_event_id: str | None = None) -> Any:
        """Open the job's event stream without reading it (the slot is taken already)."""
        headers = auth(token)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return self.http.get(f"/api/v1/jobs/{job_id}/events", headers=headers, buffered=False)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_all(response: Any, *, timeout: float = 30.0) -> str:
    """The whole body of an open stream, without closing it (as a server's writer would);
    fails when the stream has not ended after `timeout` seconds."""
    chunks: list[str] = []

    def read() -> None:
        for chunk in response.response:
            chunks.append(chunk.decode() if isinstance(chunk, bytes) else chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"the stream did not end within {timeout}s: {chunks}"
    return "".join(chunks)


def events(raw: str) -> list[dict[str, Any]]:
    """Each SSE event of `raw` as {"id", "event", "data"}; comments and `retry:` dropped."""
    found = []
    for block in raw.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            if name in ("id", "event", "data"):
                fields[name] = value.strip()
        if "event" in fields:
            fields["data"] = orjson.loads(fields["data"])
            found.append(fields)
    return found


def make_client(settings: Settings) -> Iterator[Client]:
    app = create_app(settings, live=MemoryLiveStore(), publisher=RecordingPublisher())
    app.config["TESTING"] = True
    yield Client(app.test_client())
    app.extensions["ferry"].engine.dispose()
    app.extensions["ferry"].streams.client.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    yield from make_client(settings.with_overrides(max_streams_per_account=LIMIT))


@pytest.fixture
def short_client(settings: Settings) -> Iterator[Client]:
    """Streams that live half a second."""
    yield from make_client(settings.with_overrides(max_streams_per_account=1, stream_seconds=0.5))


def person(engine: Engine) -> tuple[Account, str]:
    found = create_account(engine, f"p-{uuid.uuid4().hex[:8]}")
    return found, issue_token(engine, found.id, role="user")


def test_given_an_account_at_its_stream_cap_when_one_more_opens_then_429_too_many_streams(
    client: Client, engine: Engine
) -> None:
    """Given an account with FERRY_MAX_STREAMS_PER_ACCOUNT streams open, When it opens one
    more, Then 429 in Ferry's error shape, code `too_many_streams`, with Retry-After; its
    other requests and another account's streams are served; closing one stream lets the
    next one open."""
    _, token = person(engine)
    _, other_token = person(engine)
    job_id = client.export(token)
    held = [client.stream(token, job_id) for _ in range(LIMIT)]
    assert [r.status_code for r in held] == [200] * LIMIT

    refused = client.stream(token, job_id)

    assert refused.status_code == 429
    body = orjson.loads(refused.get_data())
    assert set(body) == {"error"}
    assert body["error"]["code"] == "too_many_streams"
    assert body["error"]["message"]
    assert body["error"]["details"] == {"limit": LIMIT}
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 300
    assert client.http.get(f"/api/v1/jobs/{job_id}", headers=auth(token)).status_code == 200
    theirs = client.stream(other_token, client.export(other_token))
    assert theirs.status_code == 200
    theirs.close()

    held.pop().close()
    again = client.stream(token, job_id)
    assert again.status_code == 200
    for response in [*held, again]:
        response.close()


def test_given_an_unknown_job_when_streams_are_asked_then_404_and_no_slot_is_taken(
    client: Client, engine: Engine
) -> None:
    """Given ids that are not the caller's jobs, When their streams are asked for more often
    than the cap, Then each is a 404 and the caller can still open its own streams."""
    _, token = person(engine)
    for _ in range(LIMIT + 1):
        missing = client.stream(token, str(uuid.uuid4()))
        assert missing.status_code == 404
        missing.close()

    opened = [client.stream(token, client.export(token)) for _ in range(LIMIT)]
    assert [r.status_code for r in opened] == [200] * LIMIT
    for response in opened:
        response.close()


def test_given_a_stream_when_read_then_every_event_has_an_id_counting_from_one(
    client: Client, engine: Engine
) -> None:
    """Given a finished job, When its stream is read, Then its events carry ids 1, 2, …
    in order, and the `retry` hint comes first."""
    _, token = person(engine)
    job_id = client.export(token)
    client.cancel(token, job_id)

    raw = read_all(client.stream(token, job_id))

    assert raw.startswith("retry: ")
    found = events(raw)
    assert [e["event"] for e in found] == ["snapshot", "end"]
    assert [e["id"] for e in found] == ["1", "2"]


@pytest.mark.parametrize(
    ("header", "first"), [("41", "42"), ("0", "1"), ("not-an-id", "1"), ("-3", "1"), ("", "1")]
)
def test_given_a_last_event_id_when_reconnecting_then_ids_go_on_after_it_from_a_snapshot(
    client: Client, engine: Engine, header: str, first: str
) -> None:
    """Given a reconnect with Last-Event-ID, When the stream opens, Then it starts with a
    fresh snapshot numbered right after that id (an id Ferry never sends starts over at
    1)."""
    _, token = person(engine)
    job_id = client.export(token)
    client.cancel(token, job_id)

    found = events(read_all(client.stream(token, job_id, last_event_id=header)))

    assert found[0]["event"] == "snapshot"
    assert found[0]["data"]["job"]["status"] == "cancelled"
    assert found[0]["id"] == first
    assert int(found[1]["id"]) == int(first) + 1


def test_given_a_job_that_goes_on_when_the_stream_lifetime_passes_then_it_closes_for_a_reconnect(
    short_client: Client, engine: Engine
) -> None:
    """Given a queued job (it will not end) and FERRY_STREAM_SECONDS=0.5, When the stream is
    read, Then it closes by itself after the snapshot, without `end`, and its slot is free
    before the last chunk, so an immediate reconnect (cap 1) is served and resumes."""
    _, token = person(engine)
    job_id = short_client.export(token)
    started = time.monotonic()

    first = short_client.stream(token, job_id)
    raw = read_all(first)  # ends by itself; the response is not closed yet

    assert time.monotonic() - started < 30
    found = events(raw)
    assert [e["event"] for e in found] == ["snapshot"]
    assert "reconnect with Last-Event-ID" in raw
    second = short_client.stream(token, job_id, last_event_id=found[-1]["id"])
    assert second.status_code == 200, second.get_data(as_text=True)
    resumed = events(read_all(second))
    assert [(e["event"], e["id"]) for e in resumed] == [("snapshot", "2")]
    first.close()
    second.close()
