"""Database engines and raw psycopg connections (for COPY)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.types.string import TextLoader
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# Every session speaks UTC with ISO dates and shortest-exact floats, so timestamps and
# numbers format the same everywhere (the export's SQL builds JSON from their text).
_CONNECT_OPTIONS = "-c timezone=UTC -c datestyle=ISO,YMD -c extra_float_digits=1"


def _uuids_as_text(conn: psycopg.Connection) -> None:
    # Ferry passes ids around as strings (JSON, URLs, file names); load them that way.
    conn.adapters.register_loader("uuid", TextLoader)


def make_engine(database_url: str, *, pool_size: int = 5) -> Engine:
    """An engine for `database_url` (SQLAlchemy URL, psycopg 3 driver)."""
    engine = create_engine(
        _normalise(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"options": _CONNECT_OPTIONS},
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
def raw_connection(database_url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A dedicated psycopg connection (COPY streams, long snapshots), closed on exit."""
    conn = psycopg.connect(libpq_dsn(database_url), options=_CONNECT_OPTIONS, autocommit=autocommit)
    _uuids_as_text(conn)
    try:
        yield conn
    finally:
        conn.close()


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
