"""Helpers of the archive import e2e tests: archives made by Ferry's own export, repacked
or tampered with, and views of an account's rows (as records, counts and a digest).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import requests
from sqlalchemy import Engine, text

from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.seed import SeedStats, seed_timeline
from tests.archive_check import load_rows, read_archive
from tests.e2e.harness import Api, Stack, wait_for

KINDS = ("places", "items", "samples")
TABLES = {"places": "places", "items": "timeline_items", "samples": "samples"}
IMPORT_PHASES = ("unpack", "validate", "stage", "apply", "edges", "finalize")
TERMINAL = {"succeeded", "failed", "cancelled"}
# Two ISO weeks across a month and a year boundary: several item and sample files.
SEED_START = datetime(2024, 12, 25, tzinfo=UTC)


def throttle(stack: Stack, rows_per_second: float) -> None:
    """Processes started from now on run jobs at FERRY_MAX_ROWS_PER_SECOND."""
    stack.settings = stack.settings.with_overrides(max_rows_per_second=rows_per_second)
    stack.env["FERRY_MAX_ROWS_PER_SECOND"] = str(rows_per_second)


def new_account(engine: Engine, label: str) -> tuple[Account, str]:
    """A fresh, empty account and a user token for it."""
    found = create_account(engine, f"{label}-{uuid.uuid4().hex[:6]}")
    return found, issue_token(engine, found.id, role="user")


def seed(
    settings: Settings, account_id: str, *, days: int = 10, per_day: int = 200, s: int = 4
) -> SeedStats:
    """A realistic timeline in the account (same arguments, same records)."""
    return seed_timeline(
        settings.database_url,
        account_id,
        days=days,
        samples_per_day=per_day,
        seed=s,
        start=SEED_START,
    )


def export_zip(api: Api, *, timeout: float = 90.0) -> bytes:
    """Export the token's account over HTTP and download the zip."""
    response = api.post("/exports", json={"type": "archive"})
    assert response.status_code == 202, response.text
    job = api.wait_status(response.json()["job"]["id"], TERMINAL, timeout=timeout)
    assert job["status"] == "succeeded", job
    download = api.get(f"/jobs/{job['id']}/download")
    assert download.status_code == 200, download.text
    return download.content


def upload(
    api: Api, content: bytes, *, filename: str = "archive.zip", **form: str
) -> requests.Response:
    """POST /imports with the archive as `file` and the other form fields as given."""
    return api.post(
        "/imports",
        files={"file": (filename, content, "application/octet-stream")},
        data={"type": "archive", **form},
    )


def start_import(api: Api, content: bytes, *, filename: str = "archive.zip", **form: str) -> str:
    """Upload an archive; the new job's id (asserting a 202)."""
    response = upload(api, content, filename=filename, **form)
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    assert job["type"] == "import.archive", job
    return str(job["id"])


def record_counts(content: bytes) -> dict[str, int]:
    """Records per kind in a Ferry archive (zip with one top folder)."""
    archive = read_archive(content)
    return {kind: len(archive.records[kind]) for kind in KINDS}


def archive_ids(content: bytes) -> dict[str, set[str]]:
    """Ids (lower case) per kind in a Ferry archive."""
    archive = read_archive(content)
    return {kind: archive.ids(kind) for kind in KINDS}


# --- repacking and tampering --------------------------------------------------------------


def _members(content: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist() if not info.is_dir()]


def _rezip(
    members: list[tuple[zipfile.ZipInfo, bytes]],
    *,
    rename: Callable[[str], str] = lambda name: name,
    replace: dict[str, bytes] | None = None,
) -> bytes:
    """A new zip of `members` keeping each entry's attributes (mode, method, time)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, data in members:
            entry = copy.copy(info)
            entry.filename = rename(info.filename)
            archive.writestr(entry, (replace or {}).get(info.filename, data))
    return out.getvalue()


def repack_flat_zip(content: bytes) -> bytes:
    """The same archive as a zip whose members sit at the top (no export-… folder)."""
    return _rezip(_members(content), rename=lambda name: name.split("/", 1)[1])


def repack_with_writestr(content: bytes) -> bytes:
    """The same archive rewritten the plain stdlib way, `ZipFile.writestr(name, data)`
    (Python marks such entries 0o600 with no file-type bits)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in _members(content):
            archive.writestr(info.filename, data)
    return out.getvalue()


def repack_tar_gz(content: bytes) -> bytes:
    """The same archive (with its folder) as a .tar.gz."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for info, data in _members(content):
            entry = tarfile.TarInfo(info.filename)
            entry.size = len(data)
            entry.mtime = 1_700_000_000
            archive.addfile(entry, io.BytesIO(data))
    return out.getvalue()


def plant_bad_latitude(content: bytes) -> tuple[bytes, dict[str, Any]]:
    """Set one sample's latitude out of range (manifest updated, so only the record is bad).

    Returns the new zip and where the bad record is: file (inside the folder), index, id.
    """
    members = _members(content)
    folder = members[0][0].filename.split("/", 1)[0]
    target = sorted(
        info.filename for info, _ in members if info.filename.startswith(f"{folder}/samples/")
    )[0]
    data = dict((info.filename, raw) for info, raw in members)
    raw = data[target]
    records = json.loads(gzip.decompress(raw) if target.endswith(".gz") else raw)
    index = len(records) // 2
    records[index]["latitude"] = 123.0
    body = json.dumps(records).encode()
    data[target] = gzip.compress(body) if target.endswith(".gz") else body
    relative = target.split("/", 1)[1]
    manifest = json.loads(data[f"{folder}/manifest.json"])
    for entry in manifest["files"]:
        if entry["path"] == relative:
            entry["bytes"] = len(data[target])
            entry["sha256"] = hashlib.sha256(data[target]).hexdigest()
    data[f"{folder}/manifest.json"] = json.dumps(manifest).encode()
    where = {"file": relative, "index": index, "id": str(records[index]["id"]).lower()}
    return _rezip(members, replace=data), where


# --- the account's side -----------------------------------------------------------------


_NOT_DATA = ("account_id", "written_xid", "created_xid")


def records(settings: Settings, account_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Every row of the account by kind and id, without the account column (nor the
    change tracking's `written_xid` and the undo's `created_xid`, which are not the
    record's data)."""
    rows = load_rows(settings.database_url, account_id)
    return {
        kind: {
            record_id: {k: v for k, v in row.items() if k not in _NOT_DATA}
            for record_id, row in by_id.items()
        }
        for kind, by_id in rows.items()
    }


def assert_same_records(
    got: dict[str, dict[str, dict[str, Any]]], want: dict[str, dict[str, dict[str, Any]]]
) -> None:
    """Both hold the same ids per kind, and every record is equal field for field."""
    for kind in KINDS:
        missing = sorted(set(want[kind]) - set(got[kind]))
        extra = sorted(set(got[kind]) - set(want[kind]))
        assert not missing and not extra, (
            f"{kind}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}"
        )
        for record_id, row in want[kind].items():
            differ = {k: (got[kind][record_id].get(k), v) for k, v in row.items()}
            differ = {k: pair for k, pair in differ.items() if pair[0] != pair[1]}
            assert not differ, f"{kind} {record_id}: (imported, source) differ: {differ}"


def row_counts(engine: Engine, account_id: str) -> dict[str, int]:
    """Rows per kind the account holds."""
    with engine.connect() as conn:
        return {
            kind: int(
                conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE account_id = :a"), {"a": account_id}
                ).scalar_one()
            )
            for kind, table in TABLES.items()
        }


def digest(engine: Engine, account_id: str) -> dict[str, tuple[int, str]]:
    """(rows, md5 of every row's text in id order) per table of the account."""
    found = {}
    with engine.connect() as conn:
        for kind, table in TABLES.items():
            row = conn.execute(
                text(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), ''))"
                    f" FROM {table} t WHERE t.account_id = :a"
                ),
                {"a": account_id},
            ).one()
            found[kind] = (int(row[0]), str(row[1]))
    return found


def staging_tables(engine: Engine) -> list[str]:
    """Tables left in the ferry_staging schema."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'ferry_staging'")
        )
        return sorted(r[0] for r in rows)


# --- following a job ------------------------------------------------------------------------


def watch(
    api: Api,
    job_id: str,
    until: set[str],
    *,
    seen: list[dict[str, Any]] | None = None,
    timeout: float = 90.0,
) -> dict[str, Any]:
    """Poll the job quickly until its status is in `until`; every view goes into `seen`."""
    log = seen if seen is not None else []

    def there() -> dict[str, Any] | None:
        job = api.job(job_id)
        log.append(job)
        return job if job["status"] in until else None

    return wait_for(there, timeout=timeout, interval=0.03, what=f"{job_id} to reach {until}")


def wait_for_phase(api: Api, job_id: str, phase: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the running job reports `phase` (fails if it went past it unseen)."""
    wanted = IMPORT_PHASES.index(phase)

    def there() -> dict[str, Any] | None:
        job = api.job(job_id)
        assert job["status"] in ("queued", "running"), f"job left before {phase}: {job}"
        current = (job["progress"] or {}).get("phase")
        if current is None or IMPORT_PHASES.index(current) < wanted:
            return None
        assert current == phase, f"the job went past {phase} before the poll saw it: {job}"
        return job

    return wait_for(there, timeout=timeout, interval=0.02, what=f"{job_id} in {phase}")


def assert_progress_in_order(views: list[dict[str, Any]]) -> list[str]:
    """Within each attempt: phases never go back and `overall` never falls; the phases."""
    by_attempt: dict[int, list[dict[str, Any]]] = {}
    for job in views:
        if job["progress"] is not None:
            by_attempt.setdefault(job["attempt"], []).append(job["progress"])
    phases: list[str] = []
    for attempt, progress in by_attempt.items():
        names = [p["phase"] for p in progress]
        path = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
        order = [IMPORT_PHASES.index(n) for n in names]
        assert order == sorted(order), f"attempt {attempt}: phases went back: {path}"
        falls = [
            f"{a['phase']} {a['overall']} -> {b['phase']} {b['overall']}"
            for a, b in pairwise(progress)
            if b["overall"] < a["overall"]
        ]
        assert not falls, f"attempt {attempt}: overall fell: {falls[:3]} (phases {path})"
        assert all(p["phase_index"] == IMPORT_PHASES.index(p["phase"]) for p in progress)
        assert all(p["phase_count"] == len(IMPORT_PHASES) for p in progress)
        phases += names
    return phases


def sse_events(response: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE stream, in order."""
    name: str | None = None
    data: list[str] = []
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if name is not None:
                yield name, json.loads("\n".join(data))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
