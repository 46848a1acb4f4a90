"""Failing for good and restarting, with real processes (SPEC 5, 8, 9, 10): broken storage
fails a job after FERRY_MAX_ATTEMPTS with nothing partial left; operators find such jobs
across accounts and restart them from the CLI or the ops API; user tokens cannot.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from io import BytesIO

import pytest
from sqlalchemy import Engine

from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.seed import seed_timeline
from tests.e2e.harness import ROOT, Api, Stack
from tests.e2e.test_cancel import events, leftovers, start_export
from worker.celery_app import make_celery
from worker.resources import CeleryPublisher

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


def break_storage(settings: Settings) -> None:
    """Put a regular file where the exports folder belongs (root ignores permissions)."""
    exports = settings.storage_root / "exports"
    if exports.is_dir():
        shutil.rmtree(exports)
    exports.write_text("not a folder\n")


def fix_storage(settings: Settings) -> None:
    """Remove the file that blocked the exports folder."""
    (settings.storage_root / "exports").unlink()


def ferry(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ferry ARGS` (python -m cli) against the stack's database, Redis and storage."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_downloadable(api: Api, job_id: str) -> None:
    """The job's download is a zip holding the archive folder."""
    response = api.get(f"/jobs/{job_id}/download")
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(BytesIO(response.content)) as archive:
        names = archive.namelist()
    assert any(name.endswith("/metadata.json") for name in names), names
    assert any("/samples/" in name for name in names), names


def test_given_broken_storage_when_exporting_then_it_fails_for_good_and_cli_retry_recovers(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """storage_error is retried up to FERRY_MAX_ATTEMPTS, then `ferry jobs retry --failed`."""
    person, token = account
    seed_timeline(settings.database_url, person.id, days=3, samples_per_day=300, seed=13)
    break_storage(settings)
    stack.start_web()
    stack.start_worker()
    api = stack.api(token)

    job_id = start_export(api)
    job = api.wait_status(job_id, TERMINAL, timeout=90)

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "storage_error"
    assert job["error"]["retryable"] is True
    assert job["attempt"] == settings.max_attempts
    retries = events(engine, job_id, "retry_scheduled")
    assert [e["attempt"] for e in retries] == list(range(1, settings.max_attempts))
    assert [e["attempt"] for e in events(engine, job_id, "failed")] == [settings.max_attempts]
    assert leftovers(settings, job_id) == [], "a failed job left partial output"
    assert api.get(f"/jobs/{job_id}/download").status_code == 409

    fix_storage(settings)
    retried = ferry(stack, "jobs", "retry", "--failed")

    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"{job_id} queued (attempt {settings.max_attempts + 1})" in retried.stdout
    job = api.wait_status(job_id, TERMINAL, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == settings.max_attempts + 1
    assert job["error"] is None
    assert_downloadable(api, job_id)
    assert not (settings.storage_root / "work" / job_id).exists()


def test_given_failed_jobs_of_two_accounts_when_operators_act_then_only_ops_tokens_may(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Ops endpoints: 403 for a user token; an ops token lists and restarts across accounts."""
    person, token = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    other_token = issue_token(engine, other.id, role="user")
    operator = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    ops_token = issue_token(engine, operator.id, role="ops")
    for seed, owner in enumerate((person, other)):
        seed_timeline(settings.database_url, owner.id, days=2, samples_per_day=200, seed=seed)
    break_storage(settings)
    stack.start_web()
    stack.start_worker()
    user, neighbour, ops = stack.api(token), stack.api(other_token), stack.api(ops_token)
    first, second = start_export(user), start_export(neighbour)
    # A job Ferry has no pipeline for fails at once with another code (`internal`).
    odd, _ = JobStore(engine).create(account_id=other.id, type="export.table", params={})
    app = make_celery(settings)
    CeleryPublisher(app, settings.jobs_queue).publish(odd.id)
    app.close()
    for job_id, api in ((first, user), (second, neighbour), (odd.id, neighbour)):
        assert api.wait_status(job_id, TERMINAL, timeout=90)["status"] == "failed"
    assert neighbour.job(odd.id)["error"]["code"] == "internal"

    # A user token may not use the ops endpoints, and changes nothing trying.
    for response in (
        user.get("/ops/jobs"),
        user.post(f"/ops/jobs/{first}/retry"),
        user.post("/ops/jobs/retry", json={"error_code": "storage_error"}),
    ):
        assert response.status_code == 403, (response.request.url, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    assert user.job(first)["status"] == "failed"
    assert user.job(first)["attempt"] == settings.max_attempts

    listed = ops.get("/ops/jobs", params={"status": "failed", "error_code": "storage_error"})
    assert listed.status_code == 200, listed.text
    assert {j["id"] for j in listed.json()["jobs"]} == {first, second}
    every_failed = ops.get("/ops/jobs", params={"status": "failed"}).json()["jobs"]
    assert {j["id"] for j in every_failed} == {first, second, odd.id}
    filters = {"status": "failed", "error_code": "storage_error", "account": other.name}
    one_account = ops.get("/ops/jobs", params=filters).json()["jobs"]
    assert [j["id"] for j in one_account] == [second]

    shown = ferry(stack, "jobs", "show", first)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"^status:\s+failed$", shown.stdout, re.M), shown.stdout
    assert "storage_error: " in shown.stdout
    assert user.job(first)["error"]["message"] in shown.stdout
    for attempt in range(1, settings.max_attempts + 1):
        assert re.search(rf"attempt {attempt}\s+claimed", shown.stdout), shown.stdout
    for attempt in range(1, settings.max_attempts):
        assert re.search(rf"attempt {attempt}\s+retry_scheduled", shown.stdout), shown.stdout
    assert re.search(rf"attempt {settings.max_attempts}\s+failed", shown.stdout), shown.stdout

    fix_storage(settings)
    bulk = ops.post("/ops/jobs/retry", json={"status": ["failed"], "error_code": "storage_error"})

    assert bulk.status_code in (200, 202), bulk.text
    assert sorted(bulk.json()["restarted"]) == sorted([first, second])
    for job_id, api in ((first, user), (second, neighbour)):
        job = api.wait_status(job_id, TERMINAL, timeout=90)
        assert job["status"] == "succeeded", job
        assert job["attempt"] == settings.max_attempts + 1
        assert_downloadable(api, job_id)
    untouched = neighbour.job(odd.id)
    assert (untouched["status"], untouched["attempt"]) == ("failed", 1)

    single = ops.post(f"/ops/jobs/{odd.id}/retry")
    assert single.status_code in (200, 202), single.text
    assert single.json()["restarted"] == [odd.id]
    again = neighbour.wait_status(odd.id, TERMINAL, timeout=60)
    assert (again["status"], again["attempt"]) == ("failed", 2)
    assert [e["attempt"] for e in events(engine, odd.id, "restarted")] == [2]
