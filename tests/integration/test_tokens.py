"""`ferry tokens list ACCOUNT` and `ferry tokens revoke ID` (SPEC 10), against a real app.

The CLI runs as its own process (`python -m cli`) on this test's database; the app is a
real one on the same database, so "a revoked token is a 401 at once" is what a client of
a running server sees.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from web import create_app

ROOT = Path(__file__).resolve().parents[2]


def ferry(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ferry ARGS` on this test's database."""
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(settings, live=MemoryLiveStore(), publisher=RecordingPublisher())
    yield app.test_client()
    app.extensions["ferry"].engine.dispose()


def columns(line: str) -> list[str]:
    """The cells of one line of the CLI's table (columns are two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


def token_ids(engine: Engine, account_id: str) -> dict[str, str]:
    """name -> id of the account's tokens."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT name, id FROM api_tokens WHERE account_id = :a"), {"a": account_id}
        )
        return {r.name: r.id for r in rows}


def test_given_an_account_with_tokens_when_listed_then_each_shows_but_never_its_secret(
    settings: Settings, engine: Engine, client: FlaskClient
) -> None:
    """Given an account with a user token (used once) and an ops token, When `ferry tokens
    list` runs (by name, then by id), Then one row each with id, name, role, created, last
    used (only the used one) and revoked (none) — and neither the token nor its hash."""
    person = create_account(engine, f"lister-{uuid.uuid4().hex[:6]}")
    used = issue_token(engine, person.id, role="user", name="phone")
    unused = issue_token(engine, person.id, role="ops", name="laptop")
    answer = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {used}"})
    assert answer.status_code == 200
    ids = token_ids(engine, person.id)
    with engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]

    by_name = ferry(settings, "tokens", "list", person.name)
    by_id = ferry(settings, "tokens", "list", person.id)

    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == by_id.stdout
    header, *rows = [columns(line) for line in by_name.stdout.strip().splitlines()]
    assert header == ["ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"]
    assert sorted(row[0] for row in rows) == sorted(ids.values())
    phone = next(r for r in rows if r[0] == ids["phone"])
    laptop = next(r for r in rows if r[0] == ids["laptop"])
    assert phone[1:3] == ["phone", "user"]
    assert laptop[1:3] == ["laptop", "ops"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", phone[3])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", phone[4])  # used once
    assert laptop[4] == "-"  # never used
    assert phone[5] == laptop[5] == "-"  # neither revoked
    for secret in (used, unused, *hashes):
        assert secret not in by_name.stdout


def test_given_a_token_when_revoked_with_the_cli_then_its_next_request_is_a_401_at_once(
    settings: Settings, engine: Engine, client: FlaskClient, account: tuple[Account, str]
) -> None:
    """Given a token that just worked on a running app, When `ferry tokens revoke ID` runs,
    Then the very next request with it is a 401 (no cache outlives the revoke), the
    account's other token still works, and the listing says when it was revoked."""
    person, token = account
    other = issue_token(engine, person.id, role="user", name="other")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    revoked_id = token_ids(engine, person.id)["user"]

    done = ferry(settings, "tokens", "revoke", revoked_id)

    assert done.returncode == 0, done.stderr
    assert f"revoked token {revoked_id}" in done.stdout
    refused = client.get("/api/v1/jobs", headers=headers)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    posted = client.post("/api/v1/exports", json={"type": "archive"}, headers=headers)
    assert posted.status_code == 401
    still = client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {other}"})
    assert still.status_code == 200
    listed = ferry(settings, "tokens", "list", person.name)
    row = next(columns(r) for r in listed.stdout.splitlines() if r.startswith(revoked_id))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[5]), row

    again = ferry(settings, "tokens", "revoke", revoked_id)
    assert again.returncode == 0
    assert "already revoked" in again.stdout


@pytest.mark.parametrize("token_id", ["not-an-id", "00000000-0000-0000-0000-000000000000"])
def test_given_an_unknown_token_id_when_revoked_then_an_error_and_nothing_changes(
    settings: Settings, engine: Engine, account: tuple[Account, str], token_id: str
) -> None:
    """Given no token with that id (or no id at all), When revoked, Then a clear error on
    stderr, a non-zero exit, and every token is as it was."""
    with engine.connect() as conn:
        before = conn.execute(text("SELECT id, revoked_at FROM api_tokens ORDER BY id")).all()

    done = ferry(settings, "tokens", "revoke", token_id)

    assert done.returncode != 0
    assert "not_found" in done.stderr
    with engine.connect() as conn:
        after = conn.execute(text("SELECT id, revoked_at FROM api_tokens ORDER BY id")).all()
    assert after == before
