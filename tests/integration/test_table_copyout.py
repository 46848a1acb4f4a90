"""`copy_out`: COPY TO STDOUT read straight from libpq, against psycopg's own COPY."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from shared.store.db import raw_connection
from shared.tables.copyout import copy_out

STATEMENT = (
    "COPY (SELECT n, repeat('x', mod(n, 50)) || E'\\n' || n AS t"
    " FROM generate_series(1, %(rows)s) n) TO STDOUT (FORMAT csv)"
)


def test_given_a_copy_when_read_then_the_records_are_psycopgs_and_the_connection_goes_on(
    database_url: str,
) -> None:
    with raw_connection(database_url) as conn:
        with conn.cursor() as cursor, cursor.copy(STATEMENT, {"rows": 20_000}) as copy:
            expected = [bytes(record) for record in copy]

        batches = list(copy_out(conn, STATEMENT, {"rows": 20_000}, batch_bytes=64 * 1024))
        found = [bytes(record) for batch in batches for record in batch.records()]

        assert found == expected and len(found) == 20_000
        assert len(batches) > 3 and all(len(b.data) <= 64 * 1024 + 100 for b in batches)
        row = conn.execute("SELECT 41 + 1").fetchone()
        assert row is not None and row[0] == 42, "the connection is ready for more"


def test_given_an_error_mid_copy_when_read_then_psycopgs_error_class_is_raised(
    database_url: str,
) -> None:
    statement = "COPY (SELECT 1 / (n - 3000) FROM generate_series(1, 5000) n) TO STDOUT"
    with raw_connection(database_url) as conn, pytest.raises(psycopg.errors.DivisionByZero):
        for _ in copy_out(conn, statement, {}):
            pass


def test_given_a_cancel_while_the_server_works_when_read_then_the_copy_stops(
    database_url: str,
) -> None:
    """The watcher thread's conn.cancel_safe() ends a COPY that is still waiting."""
    statement = "COPY (SELECT pg_sleep(30)) TO STDOUT"
    with raw_connection(database_url) as conn:
        threading.Timer(0.3, conn.cancel_safe).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            for _ in copy_out(conn, statement, {}):
                pass
        assert time.monotonic() - started < 10


def test_given_parameters_when_copied_then_they_are_bound_as_values(database_url: str) -> None:
    statement = "COPY (SELECT %(text)s::text, %(n)s::int) TO STDOUT (FORMAT csv)"
    with raw_connection(database_url) as conn:
        found = list(copy_out(conn, statement, {"text": "it's; DROP", "n": 7}))
    assert [[bytes(r) for r in batch.records()] for batch in found] == [[b"it's; DROP,7\n"]]
