"""Table imports end to end: real web and worker processes, over HTTP and with the CLI.

A person exports samples as CSV, edits the file in a spreadsheet's way (own header names, a
bad cell), and brings it back: with `ferry import --table` and a mapping (the preview is
printed, the job waits; confirming with skip_invalid applies the valid rows), and over
HTTP with `curl`'s multipart form and a remap.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.seed import seed_timeline
from tests.e2e.harness import ROOT, Stack
from tests.polling import wait_for
from tests.table_check import db_rows

_TRACKING = {"account_id", "written_xid", "created_xid"}


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


def _rows(settings: Settings, account_id: str) -> dict[str, dict[str, Any]]:
    return {
        str(r["id"]): {k: v for k, v in r.items() if k not in _TRACKING}
        for r in db_rows(settings.database_url, account_id, "samples")
    }


def test_given_an_edited_export_when_imported_with_the_cli_then_preview_confirm_and_rows(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> None:
    person, _ = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=1,
        samples_per_day=300,
        seed=3,
        start=datetime(2024, 5, 1, tzinfo=UTC),
    )
    stack.start_worker()
    exported = tmp_path / "samples.csv"
    done = _ferry(
        stack,
        "export",
        person.name,
        "--table",
        "samples",
        "--format",
        "csv",
        "--out",
        str(exported),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The spreadsheet user renames two columns and spoils one cell (row 5).
    records = list(csv.reader(io.StringIO(exported.read_text(), newline="")))
    header = records[0]
    header[header.index("id")] = "Sample ID"
    header[header.index("date")] = "When"
    records[4][header.index("speed")] = "fast"
    edited = tmp_path / "edited.csv"
    with edited.open("w", newline="") as out:
        csv.writer(out, lineterminator="\r\n").writerows(records)
    target = create_account(engine, f"target-{uuid.uuid4().hex[:6]}")
    mapping = json.dumps({"Sample ID": "id", "When": "date"})

    previewed = _ferry(
        stack,
        "import",
        target.name,
        str(edited),
        "--table",
        "samples",
        "--mapping",
        mapping,
        "--preview",
    )

    assert previewed.returncode == 0, previewed.stdout + previewed.stderr
    out = previewed.stdout
    assert "file: csv, encoding utf-8, delimiter ','" in out
    assert "Sample ID -> id" in out and "When -> date" in out
    assert f"rows {len(records) - 1}: valid {len(records) - 2}, invalid 1" in out
    assert "error: row 5, speed: not a number ('fast')" in out
    job_id = out.split("import ", 1)[1].split(" queued", 1)[0]
    assert f"ferry jobs confirm {job_id} --skip-invalid" in out
    assert _rows(settings, target.id) == {}

    refused = _ferry(stack, "jobs", "confirm", job_id)
    assert refused.returncode != 0
    confirmed = _ferry(stack, "jobs", "confirm", job_id, "--skip-invalid")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr

    store = JobStore(engine)
    final = wait_for(
        lambda: (j := store.get(job_id)).status in ("succeeded", "failed") and j,
        timeout=60,
        what="the import to finish",
    )
    assert final.status == "succeeded", final.error
    assert final.result is not None
    assert final.result["counts"]["created"] == len(records) - 2
    source, imported = _rows(settings, person.id), _rows(settings, target.id)
    spoiled = records[4][header.index("Sample ID")]
    assert set(imported) == set(source) - {spoiled}
    # The target account has no items: each sample's link is a warning, set to null.
    assert all(imported[k] == {**source[k], "timeline_item_id": None} for k in imported)


def test_given_a_table_file_when_posted_over_http_then_remap_and_confirm_apply_it(
    stack: Stack, settings: Settings, account: tuple[Account, str]
) -> None:
    person, token = account
    stack.start_web()
    stack.start_worker()
    api = stack.api(token)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    data = "Key\tAt\tLat\r\n" + "".join(
        f"{k}\t2024-02-0{i + 1} 08:00:00\t{50 + i}\r\n" for i, k in enumerate(ids)
    )

    posted = api.post(
        "/imports",
        data={"type": "table", "table": "samples", "timezone": "Europe/Berlin"},
        files={"file": ("mine.txt", data.encode())},
    )

    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job"]["id"]
    waiting = api.wait_status(job_id, {"awaiting_confirmation"}, timeout=60)
    assert waiting["preview"]["format"] == "tsv"
    assert waiting["preview"]["unmapped"] == ["Key", "At", "Lat"]
    remapped = api.post(
        f"/jobs/{job_id}/remap", json={"mapping": {"Key": "id", "At": "date", "Lat": "latitude"}}
    )
    assert remapped.status_code == 202, remapped.text
    again = api.wait_status(job_id, {"awaiting_confirmation"}, timeout=60)
    assert again["preview"]["error_total"] == 0
    assert again["preview"]["counts"]["would_create"] == 3
    assert api.post(f"/jobs/{job_id}/confirm").status_code == 202
    api.wait_status(job_id, {"succeeded"}, timeout=60)
    stored = _rows(settings, person.id)
    assert set(stored) == set(ids)
    assert stored[ids[0]]["date"] == datetime(2024, 2, 1, 7, 0, tzinfo=UTC)
    assert stored[ids[2]]["latitude"] == 52.0
