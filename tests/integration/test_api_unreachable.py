"""The API when PostgreSQL or Redis cannot be reached (SPEC 9): 503 with Retry-After, never 500.

Nothing is mocked: the app talks to a PostgreSQL port nobody listens on, or to a real
`redis-server` process that this test starts and then stops.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore, RedisLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.db import make_engine
from tests.integration.routes import every_route
from tests.integration.test_api import closed_port
from tests.polling import wait_for
from web import create_app
from web.queue import CeleryPublisher

# Routes that touch neither the database nor Redis, and so answer as usual.
NEEDS_NOTHING = {"/healthz", "/api/v1/openapi.json"}


def call(app: Flask, method: str, url: str, token: str) -> Any:
    """Call a route the way a client would (a small valid body where it takes one)."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    if url.endswith("/imports"):
        form = {"file": (io.BytesIO(b"PK\x05\x06" + b"\0" * 18), "export.zip")}
        return client.post(url, data=form, headers=headers, content_type="multipart/form-data")
    if url.endswith("/exports"):
        return client.post(url, json={"type": "archive"}, headers=headers)
    return client.open(url, method=method, headers=headers)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    error = response.get_json()["error"]
    assert error["code"] == "database_error", error
    assert error["message"]


def test_given_postgresql_unreachable_when_any_endpoint_is_called_then_503_with_retry_after(
    settings: Settings,
) -> None:
    """Given an app whose database URL names a port nobody listens on, When every route is
    called (with a token, as a client would), Then each answers 503 database_error with a
    Retry-After header — /readyz says 503 too, and only /healthz and the OpenAPI document,
    which need neither, answer 200."""
    dead = settings.with_overrides(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/ferry"
    )
    app = create_app(dead, live=MemoryLiveStore(), publisher=RecordingPublisher())
    try:
        routes = every_route(app)
        assert len(routes) >= 12
        for method, url in routes:
            response = call(app, method, url, "fy_some-token")
            if url in NEEDS_NOTHING:
                assert response.status_code == 200, (url, response.get_data(as_text=True))
            elif url == "/readyz":
                assert response.status_code == 503
                assert int(response.headers["Retry-After"]) > 0
                assert response.get_json()["checks"]["database"].startswith("unreachable")
            else:
                assert_unavailable(response)
    finally:
        app.extensions["ferry"].engine.dispose()


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = closed_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    wait_for(answers, timeout=10, what="redis-server to answer")
    client.close()
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_given_redis_stops_when_every_endpoint_is_called_then_none_answers_500(
    settings: Settings,
    engine: Engine,
    account: tuple[Account, str],
    redis_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    """Given an app on a real Redis (live store and Celery broker) that is then stopped,
    When every route is called, Then none answers 500: an export is still accepted (its
    row is committed as queued, and the sweeper publishes it once Redis is back), a job
    still reads (from its stored snapshot), and /readyz says 503."""
    process, url = redis_process
    _, token = account
    live = RedisLiveStore.from_url(url, prefix=settings.redis_prefix)
    app = create_app(
        settings.with_overrides(redis_url=url),
        live=live,
        publisher=CeleryPublisher(url, settings.jobs_queue),
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    before = client.post("/api/v1/exports", json={"type": "archive"}, headers=headers)
    assert before.status_code == 202
    process.terminate()
    process.wait(timeout=10)

    export = client.post("/api/v1/exports", json={"type": "archive"}, headers=headers)
    assert export.status_code == 202, export.get_data(as_text=True)
    job_id = export.get_json()["job"]["id"]
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id})
        assert status.scalar_one() == "queued"
    read = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert read.status_code == 200
    assert client.get("/readyz").status_code == 503
    for method, route in every_route(app, job_id=str(uuid.uuid4())):
        response = call(app, method, route, token)
        assert response.status_code != 500, (method, route, response.get_data(as_text=True))
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0
    app.extensions["ferry"].engine.dispose()


def test_given_the_database_goes_away_mid_life_when_called_then_503_not_500(
    settings: Settings, account: tuple[Account, str]
) -> None:
    """Given an app whose pooled connections worked, When the server then cuts them and the
    database can no longer be connected to, Then the next requests answer 503 with
    Retry-After; once it is back, the same app answers 200 again."""
    _, token = account
    engine = make_engine(settings.database_url)
    app = create_app(
        settings, engine=engine, live=MemoryLiveStore(), publisher=RecordingPublisher()
    )
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    name = engine.url.database
    admin = make_engine(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # As a failover would: every connection cut, and no new one let in.
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )

        assert_unavailable(client.get("/api/v1/jobs", headers=headers))
        created = client.post("/api/v1/exports", json={"type": "archive"}, headers=headers)
        assert_unavailable(created)
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    engine.dispose()
