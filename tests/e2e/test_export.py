"""Archive export end to end: real `ferry web`, `ferry worker` and the `ferry` CLI.

A person seeds a timeline, asks for an export over HTTP, follows it (polling and SSE),
downloads the zip and gets every record they own, checked against the database with
`tests.archive_check`. Nobody else can see the job, its events or its file.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.store.seed import seed_timeline
from tests.archive_check import check_archive
from tests.e2e.harness import ROOT, Stack, wait_for

START = datetime(2024, 12, 28, tzinfo=UTC)
PHASES = ("prepare", "places", "items", "samples", "finalize")
# Slow enough that an export of the seeded timeline takes a few seconds of samples phase.
ROWS_PER_SECOND = 1200.0


@pytest.fixture
def slow_stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    """web + worker whose exports are throttled, so progress can be watched."""
    running = Stack(
        settings.with_overrides(max_rows_per_second=ROWS_PER_SECOND), tmp_path / "slow-logs"
    )
    try:
        yield running
    finally:
        running.stop()


def _seed(settings: Settings, account_id: str, *, days: int = 6) -> None:
    seed_timeline(
        settings.database_url, account_id, days=days, samples_per_day=500, seed=3, start=START
    )


def _events(response: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE stream, in order."""
    name: str | None = None
    data: list[str] = []
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line:
            if name is not None:
                yield name, orjson.loads("\n".join(data))
            name, data = None, []
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())


def test_given_a_timeline_when_exported_over_http_then_progress_rises_and_the_zip_verifies(
    slow_stack: Stack, settings: Settings, account: tuple[Account, str]
) -> None:
    """Phases in order, overall never falls and is 1 only at success; the zip is exact."""
    person, token = account
    _seed(settings, person.id)
    slow_stack.start_web()
    slow_stack.start_worker()
    api = slow_stack.api(token)

    response = api.post("/exports", json={"type": "archive"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    assert response.headers["Location"].endswith(f"/jobs/{job_id}")
    seen: list[tuple[str, dict[str, Any] | None]] = []

    def finished() -> dict[str, Any] | None:
        job = api.job(job_id)
        seen.append((job["status"], job["progress"]))
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_for(finished, timeout=90, interval=0.05, what="the export to end")
    assert job is not None

    assert job["status"] == "succeeded", job["error"]
    progress = [(status, p) for status, p in seen if p is not None]
    phases = [p["phase"] for _, p in progress]
    assert [PHASES.index(name) for name in phases] == sorted(PHASES.index(n) for n in phases)
    assert all(p["phase_index"] == PHASES.index(p["phase"]) for _, p in progress)
    assert all(p["phase_count"] == len(PHASES) for _, p in progress)
    assert "samples" in phases and len(set(phases)) >= 2, phases
    overall = [p["overall"] for _, p in progress]
    assert overall == sorted(overall)
    assert all((p["overall"] == 1.0) == (status == "succeeded") for status, p in progress), progress
    assert len({value for value in overall if value < 1}) >= 3
    download = api.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "application/zip"
    archive = check_archive(download.content, settings.database_url, person.id, job_id=job_id)
    assert f"filename={archive.folder}.zip" in download.headers["Content-Disposition"]
    assert job["result"]["stats"] == archive.metadata["stats"]
    assert job["result"]["bytes"] == len(download.content)
    assert job["result"]["files"] == len(archive.infos)
    assert job["progress"]["rows_done"] == job["progress"]["rows_total"]
    assert job["progress"]["rows_done"] == sum(archive.stats().values())
    assert archive.stats()["sampleCount"] > 2000


def test_given_an_export_when_another_account_or_nobody_asks_then_it_is_not_revealed(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Another account's token gets 404 for job, events and download; no token gets 401."""
    person, token = account
    stranger = create_account(engine, f"stranger-{uuid.uuid4().hex[:6]}")
    stranger_token = issue_token(engine, stranger.id)
    _seed(settings, person.id, days=2)
    stack.start_web()
    stack.start_worker()
    owner = stack.api(token)
    response = owner.post("/exports", json={"type": "archive"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]
    owner.wait_status(job_id, "succeeded", timeout=60)

    other = stack.api(stranger_token)
    nobody = stack.api(None)
    forged = stack.api("not-a-real-token")
    paths = (f"/jobs/{job_id}", f"/jobs/{job_id}/events", f"/jobs/{job_id}/download")

    for path in paths:
        assert other.get(path).status_code == 404, path
        assert nobody.get(path).status_code == 401, path
        assert forged.get(path).status_code == 401, path
    assert nobody.post("/exports", json={"type": "archive"}).status_code == 401
    assert all(j["id"] != job_id for j in other.get("/jobs").json()["jobs"])
    assert owner.get(f"/jobs/{job_id}/download").status_code == 200


def test_given_an_export_when_followed_over_sse_then_a_snapshot_comes_first_and_end_last(
    slow_stack: Stack, settings: Settings, account: tuple[Account, str]
) -> None:
    """The event stream opens with `snapshot`, shows progress, and ends with `end`: succeeded."""
    person, token = account
    _seed(settings, person.id)
    slow_stack.start_web()
    slow_stack.start_worker()
    api = slow_stack.api(token)
    response = api.post("/exports", json={"type": "archive"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job"]["id"]

    with api.get(f"/jobs/{job_id}/events", stream=True) as stream:
        assert stream.status_code == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = list(_events(stream))

    names = [name for name, _ in events]
    assert names[0] == "snapshot"
    assert names[-1] == "end"
    assert names.count("end") == 1
    assert events[0][1]["job"]["id"] == job_id
    final = events[-1][1]["job"]
    assert final["status"] == "succeeded"
    assert final["progress"]["overall"] == 1.0
    progress = [data["progress"] for name, data in events if name == "progress"]
    assert progress, names
    overall = [p["overall"] for p in progress]
    assert overall == sorted(overall)
    assert all(value < 1 for value in overall[:-1])
    assert api.job(job_id)["status"] == "succeeded"


def test_given_an_account_when_exported_with_the_cli_then_the_saved_zip_verifies(
    stack: Stack, settings: Settings, account: tuple[Account, str], tmp_path: Path
) -> None:
    """`ferry export ACCOUNT --out PATH` waits for the job and writes a verified zip."""
    person, _ = account
    _seed(settings, person.id, days=3)
    stack.start_worker()
    target = tmp_path / "mine.zip"

    done = subprocess.run(
        [sys.executable, "-m", "cli", "export", person.name, "--out", str(target)],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert target.is_file()
    assert str(target) in done.stdout
    archive = check_archive(target, settings.database_url, person.id)
    assert archive.stats()["sampleCount"] > 0
