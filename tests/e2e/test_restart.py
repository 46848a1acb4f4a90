"""Imports that can be restarted, imports that overlap, and incremental exports after an
import, with real web, worker and scheduler processes (SPEC 4, 8).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account
from tests.archive_check import read_archive
from tests.e2e.harness import Api, Stack, wait_for
from tests.e2e.import_helpers import (
    KINDS,
    SEED_START,
    TERMINAL,
    archive_ids,
    assert_same_records,
    export_zip,
    new_account,
    record_counts,
    records,
    seed,
    staging_tables,
    start_import,
    throttle,
    wait_for_phase,
)
from tests.e2e.test_cancel import events, leftovers

pytestmark = pytest.mark.e2e
SLOW_ROWS_PER_SECOND = 1000.0


def _imported_like_the_source(
    settings: Settings, engine: Engine, source: Account, target: Account, content: bytes
) -> None:
    ids = archive_ids(content)
    got = records(settings, target.id)
    for kind in KINDS:
        assert set(got[kind]) == ids[kind], kind
    assert_same_records(got, records(settings, source.id))
    assert staging_tables(engine) == []


def _retry(api: Api, job_id: str) -> dict[str, object]:
    response = api.post(f"/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    return dict(response.json()["job"])


def test_given_a_cancelled_import_when_retried_then_it_runs_again_and_succeeds(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Cancelled mid-validation, then restarted over the API: the kept upload is imported."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    throttle(stack, SLOW_ROWS_PER_SECOND)
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    job_id = start_import(api, content, confirm="true")
    wait_for_phase(api, job_id, "validate")
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    cancelled = api.wait_status(job_id, TERMINAL, timeout=30)
    assert cancelled["status"] == "cancelled", cancelled
    # Staging and the work folder went with the cancel; the upload stays for a restart.
    assert staging_tables(engine) == []
    assert leftovers(settings, job_id) == [f"uploads/{job_id}", f"uploads/{job_id}/upload"]

    restarted = _retry(api, job_id)
    job = api.wait_status(job_id, TERMINAL, timeout=90)

    assert restarted["status"] == "queued" and restarted["attempt"] == 2
    assert job["status"] == "succeeded", job
    assert job["result"]["written"] == record_counts(content)
    _imported_like_the_source(settings, engine, source, target, content)
    assert leftovers(settings, job_id) == []


def test_given_an_import_failed_for_good_when_retried_then_it_succeeds(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Its only attempt lost (kill -9, FERRY_MAX_ATTEMPTS=1): the sweeper fails it as
    `interrupted`. An operator restarts it once a worker is back: it succeeds."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    throttle(stack, SLOW_ROWS_PER_SECOND)
    stack.env["FERRY_MAX_ATTEMPTS"] = "1"
    stack.start_web()
    stack.start_scheduler()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    job_id = start_import(api, content, confirm="true")
    # In validate: a confirmed import into an empty account passes through its short
    # stage phase inside one transaction (shared/archive/direct.py), validate is long.
    wait_for_phase(api, job_id, "validate")
    stack.kill_workers()
    failed = api.wait_status(job_id, TERMINAL, timeout=60)
    assert failed["status"] == "failed" and failed["error"]["code"] == "interrupted", failed
    wait_for(
        lambda: staging_tables(engine) == [], timeout=30, what="the failed job's staging to go"
    )
    assert (settings.storage_root / "uploads" / job_id / "upload").is_file()

    stack.start_worker()
    _retry(api, job_id)
    job = api.wait_status(job_id, TERMINAL, timeout=90)

    assert job["status"] == "succeeded", job
    assert [e["kind"] for e in events(engine, job_id, "restarted")] == ["restarted"]
    _imported_like_the_source(settings, engine, source, target, content)


def test_given_an_import_ended_past_the_upload_retention_when_retried_then_409(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """After FERRY_UPLOAD_RETENTION_HOURS the sweeper removes a cancelled import's upload;
    a restart then answers 409 conflict at once (no job is queued to fail later)."""
    source, source_token = account
    seed(settings, source.id, days=2, per_day=50)
    stack.env["FERRY_UPLOAD_RETENTION_HOURS"] = str(3 / 3600)  # 3 seconds
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    stack.kill_workers()  # the import stays queued, so the cancel is at once
    stack.start_scheduler()
    api = stack.api(source_token)
    job_id = start_import(api, content)
    assert api.post(f"/jobs/{job_id}/cancel").json()["job"]["status"] == "cancelled"
    upload = settings.storage_root / "uploads" / job_id
    wait_for(lambda: not upload.exists(), timeout=60, what="the sweeper to remove the upload")
    history = events(engine, job_id)

    response = api.post(f"/jobs/{job_id}/retry")

    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["message"] == "upload expired; upload the file again"
    assert api.job(job_id)["status"] == "cancelled"
    assert events(engine, job_id) == history


def test_given_two_overlapping_imports_when_both_confirmed_then_both_succeed_once(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """One archive uploaded twice into an empty account, both previewed (nothing exists),
    both confirmed: the second keeps what the first wrote (on_conflict=skip), and says so."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    first, second = start_import(api, content), start_import(api, content)
    for job_id in (first, second):
        waiting = api.wait_status(job_id, "awaiting_confirmation", timeout=60)
        assert {k: waiting["preview"]["counts"][k]["existing"] for k in KINDS} == dict.fromkeys(
            KINDS, 0
        )

    for job_id in (first, second):
        assert api.post(f"/jobs/{job_id}/confirm").status_code == 202
    done = {job_id: api.wait_status(job_id, TERMINAL, timeout=90) for job_id in (first, second)}

    assert [done[j]["status"] for j in (first, second)] == ["succeeded", "succeeded"], done
    counts = record_counts(content)
    results = sorted(
        (done[j]["result"] for j in (first, second)), key=lambda r: -sum(r["written"].values())
    )
    assert results[0]["written"] == counts
    assert results[1]["written"] == dict.fromkeys(KINDS, 0)
    assert results[1]["kept_existing"] == counts
    _imported_like_the_source(settings, engine, source, target, content)


def test_given_an_import_after_the_last_export_when_exported_incrementally_then_it_has_them(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """An import keeps the archive's (old) lastSaved, yet the next incremental export holds
    every imported record and nothing else; the range export in between is not its base."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    seed(settings, target.id, days=3, per_day=100, s=99)
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    export_zip(api)  # the target's full export: the base
    job_id = start_import(api, content, confirm="true")
    assert api.wait_status(job_id, TERMINAL, timeout=90)["status"] == "succeeded"
    ranged = api.post(
        "/exports",
        json={
            "type": "archive",
            "from": SEED_START.isoformat(),
            "to": (SEED_START + timedelta(days=1)).isoformat(),
        },
    )
    assert ranged.status_code == 202, ranged.text
    assert api.wait_status(ranged.json()["job"]["id"], TERMINAL)["status"] == "succeeded"

    response = api.post("/exports", json={"type": "archive", "incremental": True})
    assert response.status_code == 202, response.text
    incremental = api.wait_status(response.json()["job"]["id"], TERMINAL, timeout=90)
    assert incremental["status"] == "succeeded", incremental
    download = api.get(f"/jobs/{incremental['id']}/download")

    archive = read_archive(download.content)
    assert archive.metadata["exportType"] == "incremental"
    assert {kind: archive.ids(kind) for kind in KINDS} == archive_ids(content)
    assert archive.metadata["deletedIds"] == {"places": [], "items": [], "samples": []}
