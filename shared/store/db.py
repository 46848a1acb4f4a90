"""Database engines and raw psycopg connections (for COPY)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# Every session speaks UTC with ISO dates and shortest-exact floats, so timestamps and
# numbers format the same everywhere (the export's SQL builds JSON from their text).
_CONNECT_OPTIONS = "-c timezone=UTC -c datestyle=ISO,YMD -c extra_float_digits=1"
# How long a connection attempt may take before it fails (and the caller retries).
CONNECT_TIMEOUT_SECONDS = 10
# TCP keepalives on both ends of every connection: a peer that vanished without closing
# (machine lost, network cut) is noticed after 30 s of silence plus 3 probes 10 s apart,
# and data sent but never acknowledged fails the connection after 60 s. The server's side
# matters most: it is what ends the session of a lost worker and releases its locks.
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
_SERVER_KEEPALIVE = (
    "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
    " -c tcp_user_timeout=60000"
)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Server-side limits of one kind of session, in milliseconds (0: none).

    Which apply where is explained in docs/design.md ("Database timeouts").
    """

    statement_ms: int = 0
    lock_ms: int = 0
    idle_in_transaction_ms: int = 0

    def options(self) -> str:
        """The `-c` options that set these limits for a session."""
        return (
            f"{_CONNECT_OPTIONS} {_SERVER_KEEPALIVE}"
            f" -c statement_timeout={self.statement_ms} -c lock_timeout={self.lock_ms}"
            f" -c idle_in_transaction_session_timeout={self.idle_in_transaction_ms}"
        )


# Short queries: the web's reads and writes, the job store's claims, heartbeats and state
# changes, the sweeper. None of them should ever run long or wait long for a lock.
SHORT = SessionLimits(statement_ms=30_000, lock_ms=10_000, idle_in_transaction_ms=60_000)
# A job's data work: COPY streams, the export's snapshot, the import's apply, which may
# run for many minutes and wait for another import's per-account lock (that wait is how
# imports into one account take turns; a cancel interrupts it). Only a transaction left
# idle is ended: a Ferry data transaction is never idle for long (throttled jobs pause
# between statements, hence the margin), so one that is belongs to a frozen worker.
LONG = SessionLimits(idle_in_transaction_ms=600_000)


def _uuids_as_text(conn: psycopg.Connection) -> None:
    # Ferry passes ids around as strings (JSON, URLs, file names); load them that way.
    conn.adapters.register_loader("uuid", TextLoader)


def _connect_args(limits: SessionLimits, name: str) -> dict[str, Any]:
    return {
        "options": limits.options(),
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": name,
        **_KEEPALIVE,
    }


def make_engine(
    database_url: str, *, pool_size: int = 5, limits: SessionLimits = SHORT, name: str = "ferry"
) -> Engine:
    """An engine for `database_url` (SQLAlchemy URL, psycopg 3 driver), for short queries."""
    engine = create_engine(
        _normalise(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args=_connect_args(limits, name),
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: psycopg.Connection, _record: object) -> None:
        _uuids_as_text(dbapi_connection)

    return engine


def _normalise(database_url: str) -> str:
    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def libpq_dsn(database_url: str) -> str:
    """The libpq form of a SQLAlchemy URL, for psycopg.connect and psql."""
    url = make_url(_normalise(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextmanager
def raw_connection(
    database_url: str,
    *,
    autocommit: bool = False,
    limits: SessionLimits = LONG,
    name: str = "ferry",
) -> Iterator[psycopg.Connection]:
    """A dedicated psycopg connection (COPY streams, long snapshots), closed on exit."""
    conn = psycopg.connect(
        libpq_dsn(database_url), autocommit=autocommit, **_connect_args(limits, name)
    )
    _uuids_as_text(conn)
    try:
        yield conn
    finally:
        conn.close()


def attempt_session_name(job_id: str, attempt: int) -> str:
    """The `application_name` of an attempt's data sessions (seen in pg_stat_activity)."""
    return f"ferry:{job_id}:{attempt}"


def end_attempt_sessions(conn: psycopg.Connection, job_id: str, *, up_to_attempt: int) -> int:
    """End the data sessions of a job's attempts up to `up_to_attempt`; how many ended.

    Whoever takes a job from an attempt whose lease expired calls this: a frozen worker's
    open transaction would otherwise keep its locks (an import's per-account lock, its
    staging tables) until the worker wakes or `idle_in_transaction_session_timeout` ends it.
    Its writes are fenced anyway; this only stops it from blocking the next attempt.
    """
    rows = conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND starts_with(application_name, %s)"
        " AND split_part(application_name, ':', 3) ~ '^[0-9]+$'"
        " AND split_part(application_name, ':', 3)::int <= %s",
        (f"ferry:{job_id}:", up_to_attempt),
    ).fetchall()
    return sum(1 for (ended,) in rows if ended)


def database_name(database_url: str) -> str:
    """The database part of a URL."""
    name = make_url(database_url).database
    if not name:
        raise ValueError(f"no database named in {database_url!r}")
    return name


def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database when it does not exist; True when it was created."""
    name = database_name(database_url)
    admin = make_url(_normalise(database_url)).set(database="postgres")
    dsn = libpq_dsn(admin.render_as_string(hide_password=False))
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(
            psycopg.sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(
                psycopg.sql.Identifier(name)
            )
        )
        return True
