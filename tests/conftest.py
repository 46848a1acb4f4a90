"""Fixtures shared by every tier.

Isolation: each test that touches PostgreSQL gets its own database, cloned from a
template migrated once per schema version; each test that touches Redis gets its own key
prefix (and Celery queue names). Services that are not answering make those tests fail
when CI=true, and skip otherwise (a developer without Redis can still run unit tests).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.db import make_engine

ROOT = Path(__file__).resolve().parent.parent
CI = os.environ.get("CI", "").lower() == "true"
ADMIN_DSN = os.environ.get(
    "FERRY_TEST_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
TEST_REDIS_URL = os.environ.get("FERRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not answering ({exc}); start it (see README) to run this test"
    if CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)


def _url(dbname: str) -> str:
    params = dict(p.split("=", 1) for p in ADMIN_DSN.split())
    host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params["user"]
    return f"postgresql+psycopg://{user}@{host}:{port}/{dbname}"


def _schema_version() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "migrations").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@pytest.fixture(scope="session")
def postgres_template() -> str:
    """A database migrated to head, reused as the template of every test database."""
    try:
        conn = _admin()
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    name = f"ferry_test_tpl_{_schema_version()}"
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            from shared.store.migrate import upgrade

            building = f"{name}_build_{os.getpid()}"
            conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            upgrade(_url(building))
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


@pytest.fixture
def database_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = f"ferry_test_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield _url(name)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on this test's database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; its keys are deleted afterwards."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _unavailable("Redis", exc)
    prefix = f"ferrytest-{uuid.uuid4().hex[:10]}"
    yield prefix
    # Celery's broker also keeps queue bindings as `_kombu.binding.<queue>`.
    for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    client.close()


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    """A storage folder of this test's own."""
    root = tmp_path / "storage"
    root.mkdir()
    return f"file://{root}"


@pytest.fixture
def settings(database_url: str, redis_prefix: str, storage_url: str) -> Settings:
    """Settings on this test's database, Redis prefix and storage, with short timings."""
    return Settings(
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        storage_url=storage_url,
        redis_prefix=redis_prefix,
        lease_seconds=3.0,
        sweep_seconds=1.0,
        max_attempts=3,
        retry_base_seconds=0.2,
    )


@pytest.fixture
def account(engine: Engine) -> tuple[Account, str]:
    """An account and a user token for it."""
    found = create_account(engine, f"person-{uuid.uuid4().hex[:6]}")
    return found, issue_token(engine, found.id, role="user")
