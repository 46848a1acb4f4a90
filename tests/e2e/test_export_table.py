"""Table exports end to end: a real `ferry worker` and the `ferry export --table` command.

An operator exports a table with chosen columns and a time zone; the command queues the
job through the service, follows it to the end, and saves the file, which Python's csv
module and openpyxl read back row by row against the database.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from shared.tables.columns import TABLES
from tests.e2e.harness import ROOT, Stack
from tests.table_check import (
    check_delimited_cell,
    check_xlsx_cell,
    db_rows,
    read_delimited,
    read_xlsx,
)

COLUMNS = ["date", "id", "latitude", "source", "disabled"]


def _ferry(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_given_an_account_when_a_table_is_exported_with_the_cli_then_the_files_read_back(
    stack: Stack, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    person, _ = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=2,
        samples_per_day=400,
        seed=11,
        start=datetime(2024, 3, 30, tzinfo=UTC),
    )
    stack.start_worker()
    rows = db_rows(settings.database_url, person.id, "samples")
    picked = TABLES["samples"].pick(COLUMNS)
    target = tmp_path / "mine.csv"

    done = _ferry(
        stack,
        "export",
        person.name,
        "--table",
        "samples",
        "--format",
        "csv",
        "--columns",
        ",".join(COLUMNS),
        "--timezone",
        "Europe/Berlin",
        "--out",
        str(target),
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"saved {target}" in done.stdout
    header, records = read_delimited(target.read_bytes(), ",")
    assert header == COLUMNS and len(records) == len(rows) > 700
    for record, row in zip(records, rows, strict=True):
        for column, cell in zip(picked, record, strict=True):
            check_delimited_cell(column, cell, row, "Europe/Berlin")

    args = ["export", person.name, "--table", "places", "--format", "xlsx", "--out", str(tmp_path)]
    done = _ferry(stack, *args)

    assert done.returncode == 0, done.stdout + done.stderr
    saved = list(tmp_path.glob("places-*.xlsx"))
    assert len(saved) == 1
    sheet = read_xlsx(saved[0])["places"]
    places = db_rows(settings.database_url, person.id, "places")
    assert sheet[0] == TABLES["places"].names and len(sheet) == len(places) + 1
    for cells, row in zip(sheet[1:], places, strict=True):
        for column, cell in zip(TABLES["places"].columns, cells, strict=True):
            check_xlsx_cell(column, cell, row, "UTC")


def test_given_an_unknown_column_when_exported_with_the_cli_then_it_is_named_and_nothing_runs(
    stack: Stack, account: tuple[Account, str]
) -> None:
    person, _ = account

    done = _ferry(
        stack, "export", person.name, "--table", "items", "--format", "tsv", "--columns", "id,nope"
    )

    assert done.returncode == 1
    assert "validation_failed: columns:" in done.stderr and "'nope'" in done.stderr
    assert "queued" not in done.stdout
