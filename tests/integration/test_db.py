"""Database sessions (SPEC 8): every connection has a connect timeout and TCP keepalives,
short queries have statement and lock limits, long data work has none but an idle one, and
a transaction left idle (a frozen worker's) is ended by the server."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import text

from shared.store.db import (
    LONG,
    SHORT,
    SessionLimits,
    attempt_session_name,
    make_engine,
    raw_connection,
)

SETTINGS = (
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "tcp_user_timeout",
    "application_name",
)


def _show(conn: psycopg.Connection) -> dict[str, str]:
    found = {}
    for name in SETTINGS:
        row = conn.execute(f"SHOW {name}").fetchone()
        assert row is not None
        found[name] = str(row[0])
    return found


def test_given_an_engine_when_it_connects_then_its_sessions_have_the_short_limits(
    database_url: str,
) -> None:
    """The web's and the job store's sessions: no query runs or waits long."""
    engine = make_engine(database_url, name="ferry-test")
    try:
        with engine.connect() as conn:
            found = {n: str(conn.execute(text(f"SHOW {n}")).scalar_one()) for n in SETTINGS}
    finally:
        engine.dispose()

    assert found == {
        "statement_timeout": "30s",
        "lock_timeout": "10s",
        "idle_in_transaction_session_timeout": "1min",
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "60000",
        "application_name": "ferry-test",
    }
    assert SHORT.statement_ms == 30_000


def test_given_a_job_data_connection_when_open_then_only_an_idle_transaction_is_limited(
    database_url: str,
) -> None:
    """COPY streams and the import's apply may run and wait (for the account's lock) as
    long as they need; the session is named after the attempt, for the sweeper."""
    name = attempt_session_name("6f1c3b0e-0000-4000-8000-000000000001", 2)
    with raw_connection(database_url, name=name) as conn:
        found = _show(conn)
        params = conn.info.get_parameters()

    assert found["statement_timeout"] == "0"
    assert found["lock_timeout"] == "0"
    assert found["idle_in_transaction_session_timeout"] == "10min"
    assert found["tcp_keepalives_idle"] == "30"
    assert found["application_name"] == name
    assert LONG.idle_in_transaction_ms == 600_000
    # The client side too: a dead server is noticed, a connect attempt gives up.
    assert params["keepalives"] == "1" and params["connect_timeout"] == "10"


def test_given_a_transaction_left_idle_when_the_limit_passes_then_the_server_ends_it(
    database_url: str,
) -> None:
    """What ends a frozen worker's transaction, and releases its locks."""
    quick = SessionLimits(idle_in_transaction_ms=200)
    with raw_connection(database_url, limits=quick) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(42)")
        time.sleep(0.6)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            conn.execute("SELECT 1")
    with raw_connection(database_url) as other:
        assert other.execute("SELECT pg_try_advisory_xact_lock(42)").fetchone() == (True,)
