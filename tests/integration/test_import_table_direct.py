"""A confirmed table import of samples writes its rows straight into `samples`
(shared/tables/direct.py).

The staged path (preview, then confirm) is the reference: for each file here, the import
with confirm=true into one account and the previewed-then-confirmed import into an
account in the same state must show the same preview (errors, warnings, counts, sample
rows), report the same result and leave the same rows. A spy records which accounts took
the direct path, so a case cannot silently run the other one.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.tables.direct import LiveRows
from tests.arc_fixtures import staging_tables
from tests.integration.test_import_table import Ferry, _rows, _seed


@pytest.fixture
def ferry(settings: Settings, engine: Engine) -> Ferry:
    return Ferry(settings=settings, engine=engine, store=JobStore(engine))


@pytest.fixture
def went_direct(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Accounts whose rows went into `samples` to the end of the file."""
    accounts: set[str] = set()
    original = LiveRows.null_references

    def null_references(self: LiveRows, conn: Any) -> None:
        accounts.add(self.account_id)
        original(self, conn)

    monkeypatch.setattr(LiveRows, "null_references", null_references)
    return accounts


def _account(engine: Engine) -> Account:
    return create_account(engine, f"direct-{uuid.uuid4().hex[:8]}")


def _source(ferry: Ferry, engine: Engine) -> tuple[Account, bytes, bytes, bytes]:
    """A seeded account and its places, items and samples as Ferry's CSV."""
    person = _account(engine)
    _seed(ferry.settings, person.id)
    return (
        person,
        ferry.export(person.id, table="places", format="csv"),
        ferry.export(person.id, table="items", format="csv"),
        ferry.export(person.id, table="samples", format="csv"),
    )


def _with_items(ferry: Ferry, engine: Engine, places: bytes, items: bytes) -> Account:
    """An account holding the places and items (no samples)."""
    target = _account(engine)
    for table, data in (("places", places), ("items", items)):
        done = ferry.import_(target.id, data, f"{table}.csv", table=table, confirm=True)
        assert done.status == "succeeded", done.error
    return target


def _edit(data: bytes, change: Any) -> bytes:
    """The CSV with `change(rows)` applied to its data rows (a list of dicts)."""
    text = data.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    change(rows)
    out = io.StringIO(newline="")
    names = [n for n in reader.fieldnames or [] if n in rows[0]]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _both(
    ferry: Ferry, engine: Engine, places: bytes, items: bytes, data: bytes, **fields: Any
) -> tuple[tuple[Account, Any], tuple[Account, Any]]:
    one = _with_items(ferry, engine, places, items)
    other = _with_items(ferry, engine, places, items)
    confirmed = ferry.import_(one.id, data, "samples.csv", table="samples", confirm=True, **fields)
    waiting = ferry.import_(other.id, data, "samples.csv", table="samples", **fields)
    assert waiting.status == "awaiting_confirmation", waiting.error
    previewed = ferry.confirm(waiting, skip_invalid=bool(fields.get("skip_invalid")))
    return (one, confirmed), (other, previewed)


def _result(job: Any) -> dict[str, Any]:
    return {**(job.result or {}), "apply_xid": None, "apply_xmin": None}


def _assert_agree(ferry: Ferry, one: tuple[Account, Any], other: tuple[Account, Any]) -> None:
    (a, job_a), (b, job_b) = one, other
    assert job_a.status == job_b.status == "succeeded", (job_a.error, job_b.error)
    assert job_a.preview == job_b.preview
    assert _result(job_a) == _result(job_b)
    assert _rows(ferry.settings, a.id, "samples") == _rows(ferry.settings, b.id, "samples")


def test_given_missing_items_and_bad_cells_when_confirmed_then_direct_and_staged_agree(
    ferry: Ferry, engine: Engine, went_direct: set[str]
) -> None:
    person, places, items, samples = _source(ferry, engine)
    orphan = str(uuid.uuid4())

    def change(rows: list[dict[str, str]]) -> None:
        rows[2]["timeline_item_id"] = orphan.upper()  # no such item: nulled, a warning
        rows[5]["latitude"] = "123"  # out of range: refused
        rows[7]["date"] = "not a date"

    data = _edit(samples, change)

    direct, staged = _both(ferry, engine, places, items, data, skip_invalid=True)

    assert direct[0].id in went_direct and staged[0].id not in went_direct
    _assert_agree(ferry, direct, staged)
    preview = direct[1].preview
    assert preview["error_total"] == 2
    assert [w["value"] for w in preview["warnings"]] == [orphan]
    assert preview["warnings"][0]["row"] == 4  # the header is row 1
    assert len(preview["sample"]) == 20
    rows = _rows(ferry.settings, direct[0].id, "samples")
    source = _rows(ferry.settings, person.id, "samples")
    assert len(rows) == len(source) - 2
    nulled = [r for r in rows.values() if r["timeline_item_id"] is None]
    assert len(nulled) == 1 + sum(1 for r in source.values() if r["timeline_item_id"] is None)


def test_given_an_id_twice_when_confirmed_then_the_rows_are_staged_and_the_duplicate_reported(
    ferry: Ferry, engine: Engine, went_direct: set[str]
) -> None:
    """A unique violation of the direct COPY: the file is read again into staging."""
    _, places, items, samples = _source(ferry, engine)

    def change(rows: list[dict[str, str]]) -> None:
        rows.append(dict(rows[3]))

    data = _edit(samples, change)

    direct, staged = _both(ferry, engine, places, items, data, skip_invalid=True)

    assert direct[0].id not in went_direct
    _assert_agree(ferry, direct, staged)
    errors = direct[1].preview["errors"]
    assert len(errors) == 1 and errors[0]["reason"].startswith("duplicate id")


def test_given_bad_cells_without_skip_invalid_when_confirmed_then_it_fails_and_writes_nothing(
    ferry: Ferry, engine: Engine, went_direct: set[str]
) -> None:
    _, places, items, samples = _source(ferry, engine)

    def change(rows: list[dict[str, str]]) -> None:
        rows[1]["moving_state"] = "7"

    data = _edit(samples, change)
    one = _with_items(ferry, engine, places, items)
    other = _with_items(ferry, engine, places, items)

    failed = ferry.import_(one.id, data, "samples.csv", table="samples", confirm=True)
    waiting = ferry.import_(other.id, data, "samples.csv", table="samples")

    assert one.id in went_direct
    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "validation_failed"
    assert waiting.status == "awaiting_confirmation"
    assert failed.preview == waiting.preview and failed.preview["error_total"] == 1
    assert _rows(ferry.settings, one.id, "samples") == {}
    assert staging_tables(ferry.settings.database_url, failed.id) == []


@pytest.mark.parametrize("case", ["account has samples", "a column missing"])
def test_given_what_the_direct_path_cannot_take_when_confirmed_then_it_stages(
    ferry: Ferry, engine: Engine, went_direct: set[str], case: str
) -> None:
    """An account with samples (conflicts are the staged checks' work), a file without
    every column (defaults and updates are the staged apply's)."""
    person, places, items, samples = _source(ferry, engine)
    data = samples
    if case == "a column missing":

        def change(rows: list[dict[str, str]]) -> None:
            for row in rows:
                del row["heart_rate"]

        data = _edit(samples, change)
    target = _with_items(ferry, engine, places, items)
    if case == "account has samples":
        done = ferry.import_(target.id, samples, "samples.csv", table="samples", confirm=True)
        assert done.status == "succeeded", done.error
        went_direct.clear()

    done = ferry.import_(target.id, data, "samples.csv", table="samples", confirm=True)

    assert done.status == "succeeded", done.error
    assert target.id not in went_direct
    assert _rows(ferry.settings, target.id, "samples").keys() == (
        _rows(ferry.settings, person.id, "samples").keys()
    )
