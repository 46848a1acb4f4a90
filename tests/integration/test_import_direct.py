"""A confirmed import writes its samples straight into `samples` (shared/archive/direct.py).

The staged path (preview, then confirm) is the reference: for every archive here, an
import with confirm=true into one account and a previewed-then-confirmed import into an
account in the same state must show the same preview, report the same result and leave
the same rows. Where the outcome is known from the archive alone (references nulled),
the rows are also checked against the fixture's own record of every field. Each case
also says which path ran (the accounts whose samples went in directly are recorded), so
a test of the direct path cannot silently run the staged one.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.archive.direct import LiveSamples, SampleItems
from shared.jobs.store import Job
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import raw_connection
from tests.arc_fixtures import (
    InProcess,
    Timeline,
    arc_archive,
    arc_timeline,
    assert_rows_match,
    expected_rows,
    insert_timeline,
    load_account,
    new_id,
    plant_bad_references,
    staging_tables,
)


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> InProcess:
    return InProcess(settings=settings, engine=engine)


@pytest.fixture
def went_direct(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Accounts whose import validated its samples into `samples` to the end (the staged
    fallback never gets as far as nulling references there)."""
    accounts: set[str] = set()
    original = SampleItems.null_references

    def null_references(self: SampleItems, conn: Any, account_id: str) -> None:
        accounts.add(account_id)
        original(self, conn, account_id)

    monkeypatch.setattr(SampleItems, "null_references", null_references)
    return accounts


def _account(engine: Engine) -> Account:
    return create_account(engine, f"direct-{uuid.uuid4().hex[:8]}")


def _preview(job: Job) -> dict[str, Any]:
    preview = copy.deepcopy(dict(job.preview or {}))
    preview.get("archive", {}).pop("imported_at", None)  # each job's own request time
    return preview


def _result(job: Job) -> dict[str, Any]:
    marks = {"apply_xid": None, "apply_xmin": None}
    return {**(job.result or {}), **marks}


def _both(
    ferry: InProcess,
    engine: Engine,
    path: Path,
    *,
    prepare: Any = None,
    skip_invalid: bool = False,
) -> tuple[tuple[Account, Job], tuple[Account, Job]]:
    """The archive imported confirm=true, and previewed then confirmed, into two accounts
    that `prepare(account)` put in the same state."""
    direct, staged = _account(engine), _account(engine)
    if prepare is not None:
        prepare(direct)
        prepare(staged)
    confirmed = ferry.import_archive(direct.id, path, confirm=True, skip_invalid=skip_invalid)
    waiting = ferry.import_archive(staged.id, path)
    assert waiting.status == "awaiting_confirmation", waiting.error
    previewed = ferry.confirm(waiting.id, staged.id, skip_invalid=skip_invalid)
    return (direct, confirmed), (staged, previewed)


def _assert_agree(settings: Settings, one: tuple[Account, Job], other: tuple[Account, Job]) -> None:
    (a, job_a), (b, job_b) = one, other
    assert job_a.status == job_b.status, (job_a.error, job_b.error)
    assert _preview(job_a) == _preview(job_b)
    assert _result(job_a) == _result(job_b)
    assert load_account(settings.database_url, a.id) == load_account(settings.database_url, b.id)


def _deleted_item_with_samples(timeline: Timeline, samples: list[dict[str, Any]]) -> str:
    """Mark an item deleted that `samples` refer to; they must lose their reference."""
    item = next(
        i for i in timeline.items if any(s.get("timeline_item_id") == i["id"] for s in samples)
    )
    item["deleted"] = True
    return item["id"]


def test_given_bad_references_when_confirmed_then_direct_and_staged_agree_with_the_archive(
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    went_direct: set[str],
) -> None:
    timeline = arc_timeline(seed=61)
    planted = plant_bad_references(timeline)
    deleted = _deleted_item_with_samples(timeline, timeline.samples)
    path = arc_archive(timeline).write(tmp_path / "refs.zip")

    direct, staged = _both(ferry, engine, path)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id in went_direct and staged[0].id not in went_direct
    _assert_agree(settings, direct, staged)
    expected = expected_rows(timeline, nulled=planted)
    on_deleted = [s for s in expected["samples"].values() if s["timeline_item_id"] == deleted]
    assert on_deleted
    for sample in on_deleted:
        sample["timeline_item_id"] = None
    assert_rows_match(expected, load_account(settings.database_url, direct[0].id))
    reasons = [w["reason"] for w in (direct[1].preview or {})["warnings"]]
    assert any("the item is deleted" in r for r in reasons)
    assert any(r.startswith("no such item in the archive or the account") for r in reasons)
    assert staging_tables(settings.database_url, direct[1].id) == []


def test_given_an_account_with_items_only_when_confirmed_then_its_items_resolve_references(
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    went_direct: set[str],
) -> None:
    """Samples on items only the account has: kept; on an item the account deleted:
    nulled with a warning, as the staged check decides."""
    timeline = arc_timeline(seed=62)
    held = Timeline(places=timeline.places, items=timeline.items, samples=[])
    gone = _deleted_item_with_samples(held, timeline.samples)
    archive_only = Timeline(places=[], items=[], samples=timeline.samples)
    path = arc_archive(archive_only).write(tmp_path / "samples-only.zip")

    def prepare(account: Account) -> None:
        insert_timeline(settings.database_url, account.id, held)

    direct, staged = _both(ferry, engine, path, prepare=prepare)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id in went_direct and staged[0].id not in went_direct
    _assert_agree(settings, direct, staged)
    rows = load_account(settings.database_url, direct[0].id)["samples"]
    assert len(rows) == len(timeline.samples)
    on_gone = [s for s in timeline.samples if s.get("timeline_item_id") == gone]
    assert on_gone and all(rows[s["id"]]["timeline_item_id"] is None for s in on_gone)
    kept = [s for s in timeline.samples if s.get("timeline_item_id") not in (None, gone)]
    assert kept and all(rows[s["id"]]["timeline_item_id"] == s["timeline_item_id"] for s in kept)
    assert (direct[1].preview or {})["counts"]["samples"]["references_nulled"] == len(on_gone)


def test_given_a_sample_twice_when_confirmed_then_it_is_staged_and_reported(
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    went_direct: set[str],
) -> None:
    """A repeated sample id is a unique violation of the direct COPY: the import rolls
    back and stages the samples, which keeps the newest copy with a warning."""
    timeline = arc_timeline(seed=63)
    archive = arc_archive(timeline)
    path_name = sorted(p for p in archive.files if p.startswith("samples/"))[-1]
    stale = copy.deepcopy(archive.files[path_name][0])
    archive.add(sorted(p for p in archive.files if p.startswith("samples/"))[0], stale)
    newest = archive.files[path_name][0]
    newest["lastSaved"] = "2030-01-01T00:00:00Z"  # the copy in the last file is newer
    path = archive.write(tmp_path / "twice.zip")

    direct, staged = _both(ferry, engine, path)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id not in went_direct
    _assert_agree(settings, direct, staged)
    preview = direct[1].preview or {}
    assert preview["counts"]["samples"]["older_copies"] == 1
    assert sum(1 for w in preview["warnings"] if w["field"] == "id") == 1
    assert len(load_account(settings.database_url, direct[0].id)["samples"]) == len(
        timeline.samples
    )


def test_given_an_account_with_samples_when_confirmed_then_the_samples_are_staged(
    ferry: InProcess,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    went_direct: set[str],
) -> None:
    """Conflicts with the account's samples are the staged path's work (on_conflict)."""
    timeline = arc_timeline(seed=64)
    path = arc_archive(timeline).write(tmp_path / "again.zip")

    def prepare(account: Account) -> None:
        insert_timeline(settings.database_url, account.id, timeline)

    direct, staged = _both(ferry, engine, path, prepare=prepare)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id not in went_direct
    _assert_agree(settings, direct, staged)
    counts = (direct[1].preview or {})["counts"]["samples"]
    assert counts["existing"] == len(timeline.samples)


def _with_invalid_samples(tmp_path: Path) -> tuple[Timeline, Path]:
    """An archive with two refused samples: one out of range, one new with a bad date."""
    timeline = arc_timeline(seed=65)
    archive = arc_archive(timeline)
    first = sorted(p for p in archive.files if p.startswith("samples/"))[0]
    archive.files[first][3]["latitude"] = 123.0
    bad = copy.deepcopy(archive.files[first][4])
    bad["id"], bad["date"] = new_id().upper(), "not a date"
    archive.add(first, bad)
    return timeline, archive.write(tmp_path / "invalid.zip")


def test_given_invalid_samples_when_confirmed_with_skip_invalid_then_the_valid_ones_go_in(
    ferry: InProcess, settings: Settings, tmp_path: Path, went_direct: set[str]
) -> None:
    timeline, path = _with_invalid_samples(tmp_path)

    direct, staged = _both(ferry, ferry.engine, path, skip_invalid=True)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id in went_direct
    _assert_agree(settings, direct, staged)
    assert (direct[1].preview or {})["error_count"] == 2
    rows = load_account(settings.database_url, direct[0].id)
    assert len(rows["samples"]) == len(timeline.samples) - 1


def test_given_invalid_samples_when_confirmed_then_it_fails_with_the_preview_and_writes_nothing(
    ferry: InProcess, settings: Settings, tmp_path: Path
) -> None:
    """The direct transaction rolls back; the preview is the one a previewed import shows."""
    _, path = _with_invalid_samples(tmp_path)
    person, other = _account(ferry.engine), _account(ferry.engine)

    failed = ferry.import_archive(person.id, path, confirm=True)
    waiting = ferry.import_archive(other.id, path)

    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "validation_failed"
    assert waiting.status == "awaiting_confirmation"
    assert _preview(failed) == _preview(waiting)
    assert _preview(failed)["error_count"] == 2
    rows = load_account(settings.database_url, person.id)
    assert all(not found for found in rows.values())
    assert staging_tables(settings.database_url, failed.id) == []


def test_given_a_direct_import_when_the_samples_are_being_written_then_nothing_is_visible(
    ferry: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, went_direct: set[str]
) -> None:
    """Until the commit, another session sees no sample of the import (one transaction),
    on both ways a sample is written: in a block decoded whole, and on its own."""
    timeline = arc_timeline(seed=66)
    # One sample file in the record-by-record path: a sample lacking a key with a default.
    archive = arc_archive(timeline, layout="lines")
    first = sorted(p for p in archive.files if p.startswith("samples/"))[0]
    archive.files[first][0].pop("source", None)
    path = archive.write(tmp_path / "unseen.zip")
    person = _account(ferry.engine)
    seen: dict[str, list[int]] = {"block": [], "row": []}

    def visible() -> int:
        with raw_connection(ferry.settings.database_url) as other:
            row = other.execute(
                "SELECT count(*) FROM samples WHERE account_id = %s", (person.id,)
            ).fetchone()
            return int(row[0]) if row else -1

    block, one = LiveSamples.block, LiveSamples.row

    def spy_block(self: LiveSamples, fast: Any) -> None:
        block(self, fast)
        seen["block"].append(visible())

    def spy_row(self: LiveSamples, file_no: int, index: int, row: tuple[Any, ...]) -> None:
        one(self, file_no, index, row)
        if len(seen["row"]) < 5:
            seen["row"].append(visible())

    monkeypatch.setattr(LiveSamples, "block", spy_block)
    monkeypatch.setattr(LiveSamples, "row", spy_row)
    done = ferry.import_archive(person.id, path, confirm=True)

    assert done.status == "succeeded", done.error
    assert person.id in went_direct
    assert seen["block"] and set(seen["block"]) == {0}
    assert seen["row"] and set(seen["row"]) == {0}
    assert len(load_account(ferry.settings.database_url, person.id)["samples"]) == len(
        timeline.samples
    )


def test_given_an_empty_samples_file_when_confirmed_then_the_direct_import_takes_the_rest(
    ferry: InProcess, settings: Settings, tmp_path: Path, went_direct: set[str]
) -> None:
    """An empty line-per-object file (`[`, `]`) is a block of no records: nothing to
    write, and the other files' samples still go in (the staged path's outcome)."""
    timeline = arc_timeline(seed=67)
    archive = arc_archive(timeline, layout="lines")
    archive.files["samples/2030-W01.json.gz"] = []
    archive.layout["samples/2030-W01.json.gz"] = "lines"
    path = archive.write(tmp_path / "empty-file.zip")

    direct, staged = _both(ferry, ferry.engine, path)

    assert direct[1].status == "succeeded", direct[1].error
    assert direct[0].id in went_direct
    _assert_agree(settings, direct, staged)
    assert_rows_match(expected_rows(timeline), load_account(settings.database_url, direct[0].id))


def test_given_a_row_limit_when_a_direct_import_applies_then_its_samples_are_paced_once(
    ferry: InProcess,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    went_direct: set[str],
) -> None:
    """Under FERRY_MAX_ROWS_PER_SECOND the samples are paced as they are written; the
    stage and apply phases count them without a pause, which would hold the account's
    lock and the open transaction idle."""
    from shared.jobs.attempt import JobContext

    timeline = arc_timeline(seed=68)
    path = arc_archive(timeline).write(tmp_path / "paced.zip")
    person = _account(ferry.engine)
    paced: dict[str, int] = {}

    def throttle(self: JobContext, rows: int, limit: float) -> None:
        phase = self.tracker.phase.name
        paced[phase] = paced.get(phase, 0) + rows

    monkeypatch.setattr(JobContext, "_throttle", throttle)
    slow = settings.with_overrides(max_rows_per_second=1_000_000.0)
    done = ferry.run(ferry.submit(person.id, path, confirm=True), settings=slow)

    assert done.status == "succeeded", done.error
    assert person.id in went_direct
    counts = timeline.counts()
    assert paced["validate"] == sum(counts.values())
    others = counts["places"] + counts["items"]
    assert paced.get("stage", 0) <= others and paced.get("apply", 0) <= others
