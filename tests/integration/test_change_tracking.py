"""Incremental exports by what Ferry wrote and when (SPEC 4), on real PostgreSQL.

An incremental export holds every record written in the account since the previous
successful full or incremental export, whatever its `lastSaved` says, and lists the
records deleted since in `metadata.json` `deletedIds`. These tests change the account in
the ways that fooled a `lastSaved` rule (an import keeps the archive's old dates, a long
transaction commits after the export looked, a range export ran in between) and check the
archive record by record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from shared.timefmt import parse_iso
from tests.arc_fixtures import InProcess
from tests.archive_check import Archive, Expected, check_archive, load_rows, read_archive
from tests.integration.test_export_archive import Ferry

START = datetime(2023, 5, 1, tzinfo=UTC)
NO_DELETIONS = {"places": [], "items": [], "samples": []}


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> Ferry:
    """Exports (and, through `_import`, imports) run in this process."""
    return Ferry(settings=settings, engine=engine, store=JobStore(engine))


def _seed(settings: Settings, account_id: str, *, seed: int, start: datetime = START) -> None:
    seed_timeline(
        settings.database_url, account_id, days=6, samples_per_day=120, seed=seed, start=start
    )


def _ids(database_url: str, account_id: str) -> dict[str, set[str]]:
    return {kind: set(rows) for kind, rows in load_rows(database_url, account_id).items()}


def _incremental(ferry: Ferry, account_id: str, expected: Expected) -> Archive:
    job = ferry.export(account_id, incremental=True)
    return check_archive(
        ferry.zip_path(job),
        ferry.settings.database_url,
        account_id,
        export_type="incremental",
        expected=expected,
        job_id=job.id,
    )


def _import(ferry: Ferry, account_id: str, archive: Path) -> dict[str, Any]:
    """An archive import run in-process (as a worker would), confirmed; its result."""
    done = InProcess(settings=ferry.settings, engine=ferry.engine).import_archive(
        account_id, archive, confirm=True
    )
    assert done.status == "succeeded", done.error
    assert done.result is not None
    return done.result


def _sql(database_url: str, statement: str, *params: Any) -> int:
    with raw_connection(database_url) as conn:
        count = conn.execute(statement, params).rowcount
        conn.commit()
    return count


def test_given_an_import_of_old_records_when_exported_incrementally_then_all_of_them_are_in_it(
    ferry: Ferry, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """An import keeps the archive's lastSaved (months old here), yet it is a write by
    Ferry after the last export: every imported record is in the next incremental. A
    range export in between is not its base."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, seed=1)
    source = create_account(engine, f"source-{uuid.uuid4().hex[:6]}")
    _seed(settings, source.id, seed=2, start=START - timedelta(days=60))
    source_zip = ferry.zip_path(ferry.export(source.id))
    base = ferry.export(person.id)
    assert base.result is not None
    own = _ids(url, person.id)

    result = _import(ferry, person.id, source_zip)
    ranged = ferry.export(person.id, start=START, end=START + timedelta(days=2))

    assert ranged.status == "succeeded"
    imported = {k: v - own[k] for k, v in _ids(url, person.id).items()}
    assert sum(result["written"].values()) == sum(len(v) for v in imported.values()) > 0
    assert imported == _ids(url, source.id)
    archive = _incremental(
        ferry,
        person.id,
        Expected(*(frozenset(imported[k]) for k in ("places", "items", "samples"))),
    )
    assert archive.metadata["deletedIds"] == NO_DELETIONS
    # What a lastSaved rule would have judged by: every imported record looks older than
    # the base export.
    started = parse_iso(base.result["session_start"])
    rows = load_rows(url, person.id)
    assert all(rows[k][i]["last_saved"] < started for k in imported for i in imported[k])


def test_given_a_transaction_open_during_an_export_when_it_commits_later_then_the_next_has_it(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """A long transaction (an import, say) that started before an export, wrote rows dated
    before it, and committed after it: the export could not see them, so the next
    incremental must hold them, however old their lastSaved."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, seed=3)
    place_id, sample_id = str(uuid.uuid4()), str(uuid.uuid4())
    touched = sorted(load_rows(url, person.id)["items"])[:2]
    with raw_connection(url) as long_running:
        long_running.execute(
            "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved)"
            " VALUES (%s, %s, 'Late', 1, 2, now() - interval '1 day')",
            (person.id, place_id),
        )
        long_running.execute(
            "INSERT INTO samples (account_id, id, date, last_saved)"
            " VALUES (%s, %s, %s, now() - interval '1 day')",
            (person.id, sample_id, START + timedelta(hours=5)),
        )
        long_running.execute(
            "UPDATE timeline_items SET step_count = 4242 WHERE account_id = %s AND id = ANY(%s)",
            (person.id, touched),
        )
        first = ferry.export(person.id)  # runs while the transaction is open
        long_running.commit()

    assert place_id not in read_archive(ferry.zip_path(first)).ids("places")
    archive = _incremental(
        ferry,
        person.id,
        Expected(frozenset({place_id}), frozenset(touched), frozenset({sample_id})),
    )
    assert {archive.records["items"][i]["base"]["stepCount"] for i in touched} == {4242}


def test_given_records_deleted_after_the_base_when_exported_then_deleted_ids_list_them(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """deletedIds lists what went since the base, upper case, per kind; an id deleted and
    written again is a record of the archive instead; the next incremental starts from
    this one, so it holds nothing and lists nothing."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, seed=4)
    place, item = str(uuid.uuid4()), str(uuid.uuid4())  # nothing references either
    _sql(
        url,
        "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved)"
        " VALUES (%s, %s, 'X', 1, 1, now())",
        person.id,
        place,
    )
    _sql(
        url,
        "INSERT INTO timeline_items (account_id, id, is_visit, start_date, end_date, last_saved,"
        " distance, speed, uncertain_activity_type, trip_last_saved)"
        " VALUES (%s, %s, false, %s, %s, now(), 0, 0, true, now())",
        person.id,
        item,
        START,
        START + timedelta(minutes=3),
    )
    samples = sorted(load_rows(url, person.id)["samples"])[:3]
    back_again, deleted_samples = samples[0], samples[1:]
    ferry.export(person.id)  # the base

    _sql(url, "DELETE FROM places WHERE account_id = %s AND id = %s", person.id, place)
    _sql(url, "DELETE FROM timeline_items WHERE account_id = %s AND id = %s", person.id, item)
    _sql(url, "DELETE FROM samples WHERE account_id = %s AND id = ANY(%s)", person.id, samples)
    _sql(
        url,
        "INSERT INTO samples (account_id, id, date, last_saved) VALUES (%s, %s, %s, now())",
        person.id,
        back_again,
        START,
    )

    archive = _incremental(
        ferry, person.id, Expected(frozenset(), frozenset(), frozenset({back_again}))
    )
    assert archive.metadata["deletedIds"] == {
        "places": [place.upper()],
        "items": [item.upper()],
        "samples": sorted(s.upper() for s in deleted_samples),
    }

    again = _incremental(ferry, person.id, Expected(frozenset(), frozenset(), frozenset()))
    assert again.metadata["deletedIds"] == NO_DELETIONS


def test_given_only_range_and_failed_exports_when_exported_incrementally_then_all_is_in_it(
    ferry: Ferry, settings: Settings, account: tuple[Account, str]
) -> None:
    """No base (a range export is none, nor is a failed export): the incremental holds
    everything the account has, and lists no deletions."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, seed=5)
    assert ferry.export(person.id, start=START, end=START + timedelta(days=1)).status == "succeeded"
    failed = ferry.create(person.id)
    _sql(
        url,
        "UPDATE jobs SET status = 'failed', finished_at = now(),"
        ' result = \'{"snapshot": "1:1:"}\'::jsonb WHERE id = %s',
        failed.id,
    )
    everything = _ids(url, person.id)

    archive = _incremental(
        ferry,
        person.id,
        Expected(*(frozenset(everything[k]) for k in ("places", "items", "samples"))),
    )

    assert archive.metadata["deletedIds"] == NO_DELETIONS
    assert "incrementalSince" not in archive.metadata["appMetadata"]


def test_given_rows_written_and_deleted_when_read_back_then_each_carries_its_transaction(
    settings: Settings, account: tuple[Account, str]
) -> None:
    """The mechanism itself: inserts take the writing transaction's id from the column
    default, updates from the trigger; one DELETE of many rows records each of them, with
    the key of the bucket it was in."""
    person, _ = account
    url = settings.database_url
    _seed(settings, person.id, seed=6)
    with raw_connection(url) as conn:
        row = conn.execute(
            "SELECT min(written_xid::text), max(written_xid::text) FROM samples"
            " WHERE account_id = %s",
            (person.id,),
        ).fetchone()
        assert row is not None and row[0] == row[1]  # one seed transaction
        seeded = int(row[0])
        updater = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert updater is not None
        conn.execute(
            "UPDATE samples SET heart_rate = 60 WHERE account_id = %s"
            " AND id = (SELECT min(id::text)::uuid FROM samples WHERE account_id = %s)",
            (person.id, person.id),
        )
        gone = conn.execute(
            "DELETE FROM samples WHERE account_id = %s AND date < %s RETURNING id, date",
            (person.id, START + timedelta(days=1)),
        ).fetchall()
        conn.commit()
        written = dict(
            conn.execute(
                "SELECT written_xid::text, count(*) FROM samples WHERE account_id = %s GROUP BY 1",
                (person.id,),
            ).fetchall()
        )
        recorded = conn.execute(
            "SELECT id, bucket_at, deleted_xid::text FROM deleted_records"
            " WHERE account_id = %s AND kind = 'samples'",
            (person.id,),
        ).fetchall()

    assert int(updater[0]) > seeded
    assert set(written) <= {str(seeded), updater[0]}
    assert len(gone) > 100
    assert sorted((str(i), d) for i, d, _ in recorded) == sorted((str(i), d) for i, d in gone)
    assert {x for _, _, x in recorded} == {updater[0]}
