"""Undo of an import batch (SPEC 13) on real PostgreSQL: the rollback job run in-process by
the real runner and pipelines, the service calls the API and CLI make."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.errors import Conflict, RollbackExpired
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.runner import JobRunner
from shared.jobs.store import Job
from shared.jobs.sweeper import Sweeper
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from shared.store.seed import seed_timeline
from tests.arc_fixtures import InProcess
from tests.archive_check import load_rows, read_archive
from tests.polling import wait_for

START = datetime(2024, 2, 5, tzinfo=UTC)
Rows = dict[str, dict[str, dict[str, Any]]]


@dataclass
class Undo(InProcess):
    """Imports, exports and rollbacks run in this process with every pipeline."""

    def runner(self, pipeline: Any = None, *, settings: Settings | None = None) -> JobRunner:
        return JobRunner(
            settings=settings or self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=self.publisher,
            pipelines=PIPELINES,
            name="test-worker",
        )

    def imported(self, account_id: str, archive: Path, **params: Any) -> Job:
        done = self.import_archive(account_id, archive, confirm=True, **params)
        assert done.status == "succeeded", done.error
        return done

    def rollback(self, import_id: str, account_id: str, **run: Any) -> Job:
        """Ask for the rollback (as the API does) and run its first attempt."""
        job = self.service().request_rollback(import_id, account_id=account_id)
        return self.run(job.id, **run)

    def confirm_rollback(self, job_id: str, account_id: str, modified: str) -> Job:
        self.service().confirm(job_id, account_id=account_id, modified=modified)
        return self.run(job_id)


@pytest.fixture
def undo(settings: Settings, engine: Engine) -> Undo:
    return Undo(settings=settings, engine=engine, live=MemoryLiveStore())


def _sql(database_url: str, statement: str, *params: Any) -> int:
    with raw_connection(database_url) as conn:
        count = conn.execute(statement, params).rowcount
        conn.commit()
    return count


def _without_written(rows: Rows) -> Rows:
    """The rows without `written_xid` (a rollback writes what it puts back)."""
    return {
        kind: {i: {k: v for k, v in r.items() if k != "written_xid"} for i, r in by_id.items()}
        for kind, by_id in rows.items()
    }


def _source(undo: Undo, engine: Engine, *, seed: int = 4) -> tuple[str, Path]:
    """An account with a timeline and its archive."""
    source = create_account(engine, f"source-{uuid.uuid4().hex[:6]}")
    seed_timeline(
        undo.settings.database_url, source.id, days=3, samples_per_day=80, seed=seed, start=START
    )
    return source.id, undo.export(source.id)


@dataclass
class Replacing:
    """An account holding a copy of a source, and an archive of the source changed since
    (newer lastSaved): some rows of every kind replaced, one place new."""

    person: str
    before: Rows
    archive: Path
    changed: dict[str, list[str]]
    new_place: str


@pytest.fixture
def replacing(undo: Undo, engine: Engine, account: tuple[Account, str]) -> Replacing:
    person, _ = account
    url = undo.settings.database_url
    source, first = _source(undo, engine)
    undo.imported(person.id, first)
    changed: dict[str, list[str]] = {}
    with raw_connection(url) as conn:
        for kind, table, change in (
            ("places", "places", "name = name || ' (renamed)'"),
            ("items", "timeline_items", "source = 'edited', previous_item_id = NULL"),
            ("samples", "samples", "altitude = coalesce(altitude, 0) + 7.25"),
        ):
            ids = [
                str(r[0])
                for r in conn.execute(
                    f"UPDATE {table} SET {change}, last_saved = last_saved + interval '1 day'"
                    f" WHERE account_id = %s AND id IN (SELECT id FROM {table}"
                    " WHERE account_id = %s ORDER BY id LIMIT 3) RETURNING id",
                    (source, source),
                )
            ]
            changed[kind] = ids
        new_place = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved)"
            " VALUES (%s, %s, 'Brand new', 10, 20, now())",
            (source, new_place),
        )
        conn.commit()
    before = load_rows(url, person.id)
    return Replacing(person.id, before, undo.export(source), changed, new_place)


def test_given_an_import_into_an_empty_account_when_rolled_back_then_the_account_is_empty(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)

    rolled = undo.rollback(done.id, person.id)

    assert rolled.status == "succeeded", rolled.error
    assert rolled.result is not None and done.result is not None
    assert sum(rolled.result["deleted"].values()) == sum(done.result["written"].values()) > 0
    assert load_rows(undo.settings.database_url, person.id) == {
        "places": {},
        "items": {},
        "samples": {},
    }
    record = undo.service().import_record(done.id, account_id=person.id)
    assert record["rolled_back_at"] is not None
    assert record["rollback_job"] == rolled.id
    assert rolled.progress is not None and rolled.progress["overall"] == 1


def test_given_replaced_rows_when_rolled_back_then_they_are_back_field_for_field(
    undo: Undo, replacing: Replacing
) -> None:
    done = undo.imported(replacing.person, replacing.archive, on_conflict="newer")
    assert done.result is not None
    assert done.result["replaced"] == {"places": 3, "items": 3, "samples": 3}
    assert done.result["written"]["places"] == 1
    after_import = load_rows(undo.settings.database_url, replacing.person)
    assert after_import["places"][replacing.changed["places"][0]]["name"].endswith("(renamed)")

    rolled = undo.rollback(done.id, replacing.person)

    assert rolled.status == "succeeded", rolled.error
    assert rolled.result is not None
    assert rolled.result["restored"] == {"places": 3, "items": 3, "samples": 3}
    assert rolled.result["deleted"] == {"places": 1, "items": 0, "samples": 0}
    now = load_rows(undo.settings.database_url, replacing.person)
    # Every field, edges and created_xid included, as before the import.
    assert _without_written(now) == _without_written(replacing.before)


def test_given_rows_changed_after_the_import_when_rolled_back_then_the_preview_lists_them(
    undo: Undo, replacing: Replacing
) -> None:
    url = undo.settings.database_url
    done = undo.imported(replacing.person, replacing.archive, on_conflict="newer")
    renamed, sample = replacing.changed["places"][0], replacing.changed["samples"][0]
    _sql(url, "UPDATE places SET name = 'Mine' WHERE id = %s", renamed)
    _sql(url, "UPDATE places SET locality = 'Here' WHERE id = %s", replacing.new_place)
    _sql(url, "DELETE FROM samples WHERE id = %s", sample)

    waiting = undo.rollback(done.id, replacing.person)

    assert waiting.status == "awaiting_confirmation"
    assert waiting.preview is not None
    assert waiting.preview["modified"] == 3
    listed = {(e["kind"], e["id"]): e for e in waiting.preview["ids"]}
    assert listed[("places", renamed)]["change"] == "updated"
    # What `revert` puts back: the import's newer lastSaved, and the name changed since.
    assert listed[("places", renamed)]["fields"] == ["last_saved", "name"]
    assert listed[("places", replacing.new_place)]["revert"] == "delete"
    assert listed[("samples", sample)]["change"] == "deleted"
    # Nothing was undone while it waits.
    assert load_rows(url, replacing.person)["places"][renamed]["name"] == "Mine"


@pytest.mark.parametrize("choice", ["keep", "revert"])
def test_given_a_rollback_waiting_on_changed_rows_when_confirmed_then_they_are_kept_or_undone(
    undo: Undo, replacing: Replacing, choice: str
) -> None:
    url = undo.settings.database_url
    done = undo.imported(replacing.person, replacing.archive, on_conflict="newer")
    renamed, sample = replacing.changed["places"][0], replacing.changed["samples"][0]
    _sql(url, "UPDATE places SET name = 'Mine' WHERE id = %s", renamed)
    _sql(url, "UPDATE places SET locality = 'Here' WHERE id = %s", replacing.new_place)
    _sql(url, "DELETE FROM samples WHERE id = %s", sample)
    waiting = undo.rollback(done.id, replacing.person)

    rolled = undo.confirm_rollback(waiting.id, replacing.person, choice)

    assert rolled.status == "succeeded", rolled.error
    now = _without_written(load_rows(url, replacing.person))
    before = _without_written(replacing.before)
    if choice == "revert":
        assert now == before
        return
    assert now["places"][renamed]["name"] == "Mine"
    assert now["places"][replacing.new_place]["locality"] == "Here"
    assert sample not in now["samples"]
    # The rest is undone.
    for kind in ("places", "items", "samples"):
        for row_id in replacing.changed[kind]:
            if row_id not in (renamed, sample):
                assert now[kind][row_id] == before[kind][row_id]


def test_given_a_rolled_back_import_when_rolled_back_again_then_409_conflict_and_nothing_changes(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    assert undo.rollback(done.id, person.id).status == "succeeded"
    undo.imported(person.id, archive)  # the same records again, a new batch
    rows = load_rows(undo.settings.database_url, person.id)

    with pytest.raises(Conflict, match="rolled back already"):
        undo.service().request_rollback(done.id, account_id=person.id)

    assert load_rows(undo.settings.database_url, person.id) == rows


def test_given_two_rollbacks_queued_at_once_when_both_run_then_only_the_first_undoes(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    """Two rollback jobs of one batch (a second one queued past the request's check, as
    two workers could race): the restore's mark lets only one through."""
    person, _ = account
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    first = undo.service().request_rollback(done.id, account_id=person.id)
    second, _ = undo.store.create(
        account_id=person.id,
        type="import.rollback",
        params={"import_id": done.id, "confirm": False, "modified": None},
    )
    assert undo.run(first.id).status == "succeeded"
    undo.imported(person.id, archive)
    rows = load_rows(undo.settings.database_url, person.id)

    late = undo.run(second.id)

    assert late.status == "failed"
    assert late.error is not None and late.error["code"] == "conflict"
    assert load_rows(undo.settings.database_url, person.id) == rows


def test_given_an_import_past_rollback_until_when_rolled_back_then_409_and_the_sweeper_purges(
    undo: Undo, replacing: Replacing
) -> None:
    url = undo.settings.database_url
    done = undo.imported(replacing.person, replacing.archive, on_conflict="newer")
    queued = undo.service().request_rollback(done.id, account_id=replacing.person)
    _sql(url, "UPDATE jobs SET finished_at = now() - interval '25 hours' WHERE id = %s", done.id)
    rows = load_rows(url, replacing.person)

    with pytest.raises(RollbackExpired):
        undo.service().request_rollback(done.id, account_id=replacing.person)
    late = undo.run(queued.id)  # asked for in time, run too late
    sweeper = Sweeper(
        settings=undo.settings,
        engine=undo.engine,
        live=undo.live,
        storage=undo.storage,
        publisher=RecordingPublisher(),
        pipelines=PIPELINES,
    )
    report = sweeper.sweep()

    assert late.status == "failed"
    assert late.error is not None and late.error["code"] == "rollback_expired"
    assert done.id in report.expired_undo
    with raw_connection(url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM import_undo_rows WHERE job_id = %s", (done.id,)
        ).fetchone()
    assert left == (0,)
    assert sweeper.sweep().expired_undo == []
    assert load_rows(url, replacing.person) == rows
    record = undo.service().import_record(done.id, account_id=replacing.person)
    assert record["rolled_back_at"] is None
    with pytest.raises(RollbackExpired):
        undo.service().request_rollback(done.id, account_id=replacing.person)


def test_given_a_batch_in_time_when_swept_then_its_undo_data_stays(
    undo: Undo, replacing: Replacing
) -> None:
    done = undo.imported(replacing.person, replacing.archive, on_conflict="newer")
    sweeper = Sweeper(
        settings=undo.settings,
        engine=undo.engine,
        live=undo.live,
        storage=undo.storage,
        publisher=RecordingPublisher(),
        pipelines=PIPELINES,
    )

    assert sweeper.sweep().expired_undo == []
    assert undo.rollback(done.id, replacing.person).status == "succeeded"


def test_given_a_rollback_cancelled_mid_restore_when_it_stops_then_the_data_is_unchanged(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    url = undo.settings.database_url
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    rows = load_rows(url, person.id)
    job = undo.service().request_rollback(done.id, account_id=person.id)
    # Slow enough (rows per second) that the restore is still in its transaction.
    slow = undo.settings.with_overrides(max_rows_per_second=50.0)
    runner = undo.runner(settings=slow)
    thread = threading.Thread(target=runner.run, args=(job.id,))
    thread.start()
    try:
        wait_for(
            lambda: (
                (undo.live.get_progress(job.id) or {}).get("phase") == "restore"
                and (undo.live.get_progress(job.id) or {}).get("phase_done", 0) > 0
            ),
            timeout=30,
            what="the restore to be under way",
        )
        undo.service().cancel(job.id, account_id=person.id)
    finally:
        thread.join(timeout=30)

    assert undo.store.get(job.id).status == "cancelled"
    assert load_rows(url, person.id) == rows  # written_xid too: nothing was written
    record = undo.service().import_record(done.id, account_id=person.id)
    assert record["rolled_back_at"] is None
    # The batch can still be undone.
    assert undo.rollback(done.id, person.id).status == "succeeded"


def test_given_a_rollback_when_exported_incrementally_then_removed_records_are_in_deleted_ids(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    url = undo.settings.database_url
    seed_timeline(url, person.id, days=1, samples_per_day=20, seed=9, start=START)
    undo.export(person.id)  # the base
    _, archive = _source(undo, engine)
    done = undo.imported(person.id, archive)
    imported = read_archive(undo.export(person.id, incremental=True))
    assert all(imported.ids(kind) for kind in ("places", "items", "samples"))

    assert undo.rollback(done.id, person.id).status == "succeeded"
    after = read_archive(undo.export(person.id, incremental=True))

    deleted = after.metadata["deletedIds"]
    for kind in ("places", "items", "samples"):
        assert {i.lower() for i in deleted[kind]} == imported.ids(kind)
        assert after.ids(kind) == set()


def test_given_imports_when_listed_then_newest_first_in_pages_of_this_account_only(
    undo: Undo, engine: Engine, account: tuple[Account, str]
) -> None:
    person, _ = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    _, archive = _source(undo, engine)
    first = undo.imported(person.id, archive)
    second = undo.imported(person.id, archive)
    undo.imported(other.id, archive)
    service = undo.service()

    page, cursor = service.imports_page(person.id, limit=1)
    rest, end = service.imports_page(person.id, limit=1, cursor=cursor)

    assert [r["id"] for r in page + rest] == [second.id, first.id]
    assert end is None
    record = page[0]
    assert record["type"] == "archive" and record["table"] is None
    assert record["filename"] == archive.name
    assert record["status"] == "succeeded"
    # The same archive again: every record was there already (on_conflict=skip).
    assert first.result is not None
    total = sum(first.result["written"].values())
    assert record["counts"] == {"created": 0, "updated": 0, "skipped": total, "invalid": 0}
    assert first.finished_at is not None
    until = datetime.fromisoformat(rest[0]["rollback_until"].replace("Z", "+00:00"))
    assert abs(until - (first.finished_at + timedelta(hours=24))) < timedelta(seconds=1)
    assert rest[0]["counts"]["created"] == total
    with pytest.raises(Exception, match="no such import"):
        service.request_rollback(first.id, account_id=other.id)
