"""The undo recorder (shared/undo/recorder.py) on real PostgreSQL: the before-images an
import keeps of the rows it is about to replace read back as exactly those rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from sqlalchemy import Engine

from shared.store.accounts import Account, create_account
from shared.store.changes import TABLES
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.undo.recorder import apply_marks, forget_unwritten, record_replaced

START = datetime(2024, 3, 4, tzinfo=UTC)


def _ids(conn: psycopg.Connection, table: str, account_id: str, n: int) -> list[str]:
    rows = conn.execute(
        f"SELECT id FROM {table} WHERE account_id = %s ORDER BY id LIMIT %s", (account_id, n)
    )
    return [str(r[0]) for r in rows]


def _staging(conn: psycopg.Connection, ids: list[str]) -> str:
    conn.execute("CREATE TEMP TABLE stage_ids (id uuid, last_saved timestamptz)")
    with conn.cursor().copy("COPY stage_ids (id) FROM STDIN") as copy:
        for one in ids:
            copy.write_row((one,))
    return "pg_temp.stage_ids"


def _restored(conn: psycopg.Connection, table: str, job_id: str, kind: str) -> dict[str, Any]:
    """The before-images as rows of the live table's type (what a rollback puts back)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f"SELECT r.* FROM import_undo_rows u,"
            f" jsonb_populate_record(NULL::{table}, u.before) r"
            " WHERE u.job_id = %s AND u.kind = %s",
            (job_id, kind),
        )
        return {str(r["id"]): r for r in cursor}


def _live(conn: psycopg.Connection, table: str, account_id: str, ids: list[str]) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            f"SELECT * FROM {table} WHERE account_id = %s AND id = ANY(%s::uuid[])",
            (account_id, ids),
        )
        return {str(r["id"]): r for r in cursor}


@pytest.fixture
def seeded(database_url: str, account: tuple[Account, str]) -> str:
    person, _ = account
    seed_timeline(database_url, person.id, days=2, samples_per_day=60, seed=3, start=START)
    return person.id


@pytest.mark.parametrize("kind", list(TABLES))
def test_given_rows_about_to_be_replaced_when_recorded_then_their_images_are_the_rows_exactly(
    database_url: str, seeded: str, kind: str
) -> None:
    table = TABLES[kind]
    job_id = str(uuid.uuid4())
    with raw_connection(database_url) as conn:
        existing = _ids(conn, table, seeded, 5)
        staging = _staging(conn, [*existing, str(uuid.uuid4())])  # one id the account lacks

        count = record_replaced(conn, job_id=job_id, account_id=seeded, kind=kind, staging=staging)
        before = _live(conn, table, seeded, existing)
        conn.execute(f"UPDATE {table} SET source = 'changed' WHERE account_id = %s", (seeded,))
        images = _restored(conn, table, job_id, kind)
        conn.commit()

    assert count == len(existing) == 5
    assert set(images) == set(existing)
    for row_id, image in images.items():
        # Field for field, the row as it was (account_id is the batch's, kept apart).
        assert {k: v for k, v in image.items() if k != "account_id"} == {
            k: v for k, v in before[row_id].items() if k != "account_id"
        }


def test_given_another_account_with_the_same_ids_when_recorded_then_only_this_accounts_rows(
    database_url: str, engine: Engine, seeded: str
) -> None:
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    with raw_connection(database_url) as conn:
        ids = _ids(conn, "places", seeded, 3)
        conn.execute(
            "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved)"
            " SELECT %s, id, 'copy', 1, 1, now() FROM places WHERE account_id = %s"
            " AND id = ANY(%s::uuid[])",
            (other.id, seeded, ids),
        )
        staging = _staging(conn, ids)

        count = record_replaced(
            conn, job_id=str(uuid.uuid4()), account_id=other.id, kind="places", staging=staging
        )
        names = conn.execute(
            "SELECT DISTINCT before->>'name' FROM import_undo_rows WHERE account_id = %s",
            (other.id,),
        ).fetchall()
        conn.commit()

    assert count == 3
    assert names == [("copy",)]


def test_given_newer_only_when_recorded_then_only_rows_older_than_the_staged_copy(
    database_url: str, seeded: str
) -> None:
    with raw_connection(database_url) as conn:
        ids = _ids(conn, "timeline_items", seeded, 4)
        staging = _staging(conn, ids)
        # Two staged copies are newer than the account's rows, two are older.
        conn.execute(
            "UPDATE pg_temp.stage_ids s SET last_saved = l.last_saved"
            " + CASE WHEN s.id = ANY(%s::uuid[]) THEN interval '1 day' ELSE interval '-1 day' END"
            " FROM timeline_items l WHERE l.account_id = %s AND l.id = s.id",
            (ids[:2], seeded),
        )

        count = record_replaced(
            conn,
            job_id=str(uuid.uuid4()),
            account_id=seeded,
            kind="items",
            staging=staging,
            newer_only=True,
        )
        recorded = {str(r[0]) for r in conn.execute("SELECT id FROM import_undo_rows")}
        conn.commit()

    assert count == 2
    assert recorded == set(ids[:2])


def test_given_a_row_recorded_twice_when_recorded_then_the_first_image_stays(
    database_url: str, seeded: str
) -> None:
    job_id = str(uuid.uuid4())
    with raw_connection(database_url) as conn:
        ids = _ids(conn, "samples", seeded, 1)
        staging = _staging(conn, ids)
        first = record_replaced(
            conn, job_id=job_id, account_id=seeded, kind="samples", staging=staging
        )
        conn.execute("UPDATE samples SET source = 'second' WHERE id = %s", (ids[0],))

        again = record_replaced(
            conn, job_id=job_id, account_id=seeded, kind="samples", staging=staging
        )
        source = conn.execute("SELECT before->>'source' FROM import_undo_rows").fetchone()
        conn.commit()

    assert (first, again) == (1, 0)
    assert source is not None and source[0] != "second"


def test_given_recorded_rows_the_import_left_alone_when_forgotten_then_only_written_ones_stay(
    database_url: str, seeded: str
) -> None:
    job_id = str(uuid.uuid4())
    with raw_connection(database_url) as conn:
        ids = _ids(conn, "places", seeded, 3)
        staging = _staging(conn, ids)
        record_replaced(conn, job_id=job_id, account_id=seeded, kind="places", staging=staging)
        conn.execute("UPDATE places SET name = 'written' WHERE id = %s", (ids[0],))

        dropped = forget_unwritten(conn, job_id=job_id)
        kept = [str(r[0]) for r in conn.execute("SELECT id FROM import_undo_rows")]
        marks = apply_marks(conn)
        xid = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        conn.commit()

    assert dropped == 2
    assert kept == [ids[0]]
    assert xid is not None and marks["apply_xid"] == xid[0]
    assert int(marks["apply_xmin"]) <= int(marks["apply_xid"])


def test_given_an_unknown_kind_when_recorded_then_it_is_refused(database_url: str) -> None:
    with raw_connection(database_url) as conn, pytest.raises(ValueError, match="unknown kind"):
        record_replaced(conn, job_id=str(uuid.uuid4()), account_id="x", kind="bogus", staging="t")
