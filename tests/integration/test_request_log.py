"""The web process's request log (issue 8, operations): one greppable line per request.

A line names the request id (the client's X-Request-ID, or a new one, returned either
way), method, path, status, duration, account and the job where there is one.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account
from web import create_app

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"request (?P<fields>.*)")


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(settings, live=MemoryLiveStore(), publisher=RecordingPublisher())
    yield app.test_client()
    app.extensions["ferry"].engine.dispose()


def logged(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The fields of each request line logged so far."""
    found = []
    for record in caplog.records:
        if record.name == "web.requests" and record.levelno == logging.INFO:
            match = LINE.fullmatch(record.getMessage())
            assert match, record.getMessage()
            found.append(dict(part.split("=", 1) for part in match["fields"].split(" ")))
    return found


def test_given_requests_when_answered_then_each_is_one_line_with_its_id_account_and_job(
    client: FlaskClient, account: tuple[Account, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Given an export posted with X-Request-ID, then the job read without one, When they
    are answered, Then each response carries its request id (the client's, then a new one)
    and the log has one INFO line per request naming id, method, path, status, duration,
    account and job."""
    person, token = account
    headers = {"Authorization": f"Bearer {token}"}
    caplog.set_level(logging.INFO, logger="web")

    posted = client.post(
        "/api/v1/exports",
        json={"type": "archive"},
        headers={**headers, "X-Request-ID": "client-req-42"},
    )
    job_id = posted.get_json()["job"]["id"]
    read = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    refused = client.get("/api/v1/jobs")

    assert posted.headers["X-Request-ID"] == "client-req-42"
    generated = read.headers["X-Request-ID"]
    assert generated and generated != "client-req-42"
    lines = logged(caplog)
    assert len(lines) == 3
    first, second, third = lines
    assert first["id"] == "client-req-42"
    assert (first["method"], first["path"], first["status"]) == ("POST", "/api/v1/exports", "202")
    assert (first["account"], first["job"]) == (person.name, job_id)
    assert float(first["ms"]) >= 0
    assert second["id"] == generated
    assert (second["method"], second["status"], second["job"]) == ("GET", "200", job_id)
    assert third["id"] == refused.headers["X-Request-ID"]
    assert (third["status"], third["account"], third["job"]) == ("401", "-", "-")


@pytest.mark.parametrize("given", ["a b", "x" * 200, 'say"hi', "a=b", "ünïcode"])
def test_given_an_unsafe_request_id_when_sent_then_a_new_one_is_used(
    client: FlaskClient, caplog: pytest.LogCaptureFixture, given: str
) -> None:
    """Given an X-Request-ID with spaces, quotes, `=`, non-ASCII or 200 characters, When sent,
    Then the server uses an id of its own (so no client can forge log lines)."""
    caplog.set_level(logging.INFO, logger="web")
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] != given
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert logged(caplog)[0]["id"] == response.headers["X-Request-ID"]


def test_given_a_web_process_with_no_logging_set_up_when_a_request_is_answered_then_it_logs(
    settings: Settings,
) -> None:
    """Given a process that only builds the app (as `gunicorn 'web:create_app()'` would,
    with no logging configured), When it answers a request, Then its stderr has the INFO
    request line — the app brings its own handler."""
    script = textwrap.dedent(
        """
        import sys
        from shared.jobs.live import MemoryLiveStore
        from shared.jobs.publisher import RecordingPublisher
        from shared.settings import Settings
        from web import create_app

        app = create_app(Settings.from_env(), live=MemoryLiveStore(),
                         publisher=RecordingPublisher())
        app.test_client().get("/healthz", headers={"X-Request-ID": "probe-1"})
        """
    )
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(
        r"INFO web\.requests: request id=probe-1 method=GET path=/healthz status=200 ms=\S+"
        r" account=- job=-",
        done.stderr,
    ), done.stderr
