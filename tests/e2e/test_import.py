"""Archive import end to end (SPEC 4, 6-11): real `ferry web`, `ferry worker`,
`ferry scheduler` and the `ferry` CLI, on Postgres and Redis.

A person exports their timeline, uploads the zip into another (empty) account, reads the
validation report while the job waits, confirms, and gets every record back, field for
field. Cancels and crashes in the middle leave the account exactly as before or complete,
never half; a report with errors needs `skip_invalid` to go on.
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from shared.settings import Settings
from shared.store.accounts import Account
from tests.e2e.harness import ROOT, Stack, wait_for
from tests.e2e.import_helpers import (
    KINDS,
    TERMINAL,
    archive_ids,
    assert_progress_in_order,
    assert_same_records,
    digest,
    export_zip,
    new_account,
    plant_bad_latitude,
    record_counts,
    records,
    repack_flat_zip,
    repack_tar_gz,
    repack_with_writestr,
    row_counts,
    seed,
    sse_events,
    staging_tables,
    start_import,
    throttle,
    wait_for_phase,
    watch,
)
from tests.e2e.test_cancel import events, leftovers

pytestmark = pytest.mark.e2e
EMPTY = dict.fromkeys(KINDS, 0)
# With ~2,500 rows, each row phase (export, validate, stage, apply) lasts a few seconds.
SLOW_ROWS_PER_SECOND = 1000.0


def _assert_preview_matches(preview: dict[str, Any], counts: dict[str, int]) -> None:
    """The report counts every record of the archive as valid, new, and without problems."""
    assert preview["error_count"] == 0, preview["errors"]
    assert preview["errors"] == []
    assert preview["warning_count"] == 0, preview["warnings"]
    for kind in KINDS:
        found = preview["counts"][kind]
        assert found["records"] == counts[kind], (kind, found, counts)
        assert found["valid"] == counts[kind], (kind, found, counts)
        assert found.get("invalid", 0) == 0, (kind, found)
        assert found.get("existing", 0) == 0, (kind, found)


# --- 1. round trip -----------------------------------------------------------------------------


def test_given_an_exported_zip_when_uploaded_unconfirmed_then_it_waits_and_confirm_imports_all(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Upload without confirm: unpack, validate, stage in order, then a report that matches
    the archive and nothing written; confirm: succeeded, and every record equals the source."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    throttle(stack, SLOW_ROWS_PER_SECOND)
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    counts = record_counts(content)
    api = stack.api(target_token)
    seen: list[dict[str, Any]] = []

    job_id = start_import(api, content)
    waiting = watch(api, job_id, {"awaiting_confirmation"} | TERMINAL, seen=seen)

    assert waiting["status"] == "awaiting_confirmation", waiting
    phases = assert_progress_in_order(seen)
    assert {"validate", "stage"} <= set(phases), phases
    assert set(phases) <= {"unpack", "validate", "stage"}, phases
    assert waiting["progress"]["phase"] == "stage"
    assert 0 < waiting["progress"]["overall"] < 1
    _assert_preview_matches(waiting["preview"], counts)
    assert waiting["result"] is None
    assert row_counts(engine, target.id) == EMPTY, "the import wrote before it was confirmed"
    assert waiting["params"]["confirm"] is False

    response = api.post(f"/jobs/{job_id}/confirm")

    assert response.status_code == 202, response.text
    assert response.json()["job"]["status"] in ("queued", "running", "succeeded")
    after: list[dict[str, Any]] = []
    job = watch(api, job_id, TERMINAL, seen=after)
    assert job["status"] == "succeeded", job
    assert job["progress"]["overall"] == 1.0
    assert job["result"]["written"] == counts, job["result"]
    assert_same_records(records(settings, target.id), records(settings, source.id))
    assert staging_tables(engine) == []
    assert leftovers(settings, job_id) == []
    again = api.post(f"/jobs/{job_id}/confirm")
    assert again.status_code == 409, again.text
    # SPEC 6: overall never decreases within an attempt; confirming does not start a new one.
    assert {j["attempt"] for j in seen + after} == {1}
    after_phases = assert_progress_in_order(seen + after)
    assert "apply" in after_phases, after_phases


@pytest.mark.parametrize("shape", ["tar.gz", "zip without a folder", "zip by zipfile.writestr"])
def test_given_the_archive_repacked_when_imported_with_confirm_then_every_record_arrives(
    shape: str, stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """A .tar.gz of the folder, a zip with the files at its top, or a zip rewritten with
    Python's zipfile imports like Ferry's own zip."""
    source, source_token = account
    seed(settings, source.id, days=4, per_day=150)
    target, target_token = new_account(engine, "target")
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    if shape == "tar.gz":
        repacked, name = repack_tar_gz(content), "export.tar.gz"
    elif shape == "zip without a folder":
        repacked, name = repack_flat_zip(content), "export.zip"
    else:
        repacked, name = repack_with_writestr(content), "export.zip"
    api = stack.api(target_token)

    job_id = start_import(api, repacked, filename=name, confirm="true")
    job = api.wait_status(job_id, TERMINAL | {"awaiting_confirmation"}, timeout=90)

    assert job["status"] == "succeeded", job
    assert job["result"]["written"] == record_counts(content)
    assert_same_records(records(settings, target.id), records(settings, source.id))
    assert leftovers(settings, job_id) == []


# --- 2. SSE ----------------------------------------------------------------------------------


def test_given_an_unconfirmed_import_when_followed_over_sse_then_awaiting_is_a_status_event(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """The stream shows awaiting_confirmation as a status event and stays open; after the
    confirm it carries the job to succeeded and ends."""
    source, source_token = account
    seed(settings, source.id, days=4, per_day=150)
    target, target_token = new_account(engine, "target")
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    for worker in stack.workers():  # the import waits in `queued` until the stream is open
        worker.kill(signal.SIGTERM)
    job_id = start_import(api, content)
    stream = api.get(f"/jobs/{job_id}/events", stream=True)
    assert stream.status_code == 200, stream.text
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    stack.start_worker()
    received: list[tuple[str, dict[str, Any]]] = []
    confirmed: list[int] = []

    for name, data in sse_events(stream):
        received.append((name, data))
        job = data.get("job") or {}
        if name == "status" and job.get("status") == "awaiting_confirmation" and not confirmed:
            confirmed.append(api.post(f"/jobs/{job_id}/confirm").status_code)
        if name == "end":
            break
    stream.close()

    names = [name for name, _ in received]
    assert names[0] == "snapshot" and received[0][1]["job"]["status"] == "queued", received[0]
    statuses = [d["job"]["status"] for n, d in received if n == "status"]
    assert "awaiting_confirmation" in statuses, statuses
    waiting = next(
        d["job"]
        for n, d in received
        if n == "status" and d["job"]["status"] == "awaiting_confirmation"
    )
    assert waiting["preview"]["counts"]["samples"]["records"] == record_counts(content)["samples"]
    assert confirmed == [202]
    assert statuses.index("awaiting_confirmation") < len(statuses) - 1, "stream ended at awaiting"
    assert names[-1] == "end" and received[-1][1]["job"]["status"] == "succeeded", received[-1]
    assert row_counts(engine, target.id) == record_counts(content)


# --- 3. cancel during apply ------------------------------------------------------------------


def test_given_an_import_in_apply_when_cancelled_then_the_account_is_exactly_as_before(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Cancel in `apply`: cancelled, the account's tables unchanged (digest), no staging
    tables or work folder left; the upload is kept for a restart."""
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    seed(settings, target.id, days=3, per_day=100, s=99)  # the target has a timeline of its own
    throttle(stack, SLOW_ROWS_PER_SECOND)
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    before = digest(engine, target.id)
    assert before["samples"][0] > 0

    job_id = start_import(api, content, confirm="true")
    wait_for_phase(api, job_id, "apply")
    response = api.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 202, response.text
    job = api.wait_status(job_id, TERMINAL, timeout=30)
    assert job["status"] == "cancelled", job
    assert job["result"] is None
    assert digest(engine, target.id) == before, "the cancelled import changed the account"
    assert staging_tables(engine) == []
    # Only the upload stays, for a restart (SPEC 8).
    assert leftovers(settings, job_id) == [f"uploads/{job_id}", f"uploads/{job_id}/upload"]
    kinds = [e["kind"] for e in events(engine, job_id)]
    assert "succeeded" not in kinds and kinds.count("cancelled") == 1, kinds


# --- 4. kill -9 during stage and apply -------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "flow"), [("stage", "previewed"), ("apply", "previewed"), ("samples", "confirmed")]
)
def test_given_a_worker_killed_in_an_import_phase_when_a_new_worker_starts_then_it_completes(
    phase: str, flow: str, stack: Stack, engine: Engine, account: tuple[Account, str]
) -> None:
    """kill -9 mid-phase: nothing visible meanwhile; attempt 2 (via the sweeper) ends
    succeeded with every record of the archive exactly once.

    `previewed` (confirmed after its report): killed while staging is checked, attempt 2
    stages again and waits for the confirmation; killed in the apply, staging was
    complete and attempt 2 applies from it without validating again. `samples`,
    `confirmed` (confirm=true into an account without samples): killed while the samples
    go straight into `samples` inside the apply's transaction (shared/archive/direct.py),
    nothing of attempt 1 survives and attempt 2 starts over from the upload."""
    settings = stack.settings
    source, source_token = account
    seed(settings, source.id)
    target, target_token = new_account(engine, "target")
    throttle(stack, SLOW_ROWS_PER_SECOND)
    stack.start_web()
    stack.start_scheduler()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(target_token)
    counts = record_counts(content)

    if flow == "confirmed":
        job_id = start_import(api, content, confirm="true")
        past = counts["places"] + counts["items"] + 100  # samples are being written

        def writing() -> bool:
            job = api.job(job_id)
            assert job["status"] in ("queued", "running"), job["status"]
            progress = job["progress"] or {}
            return progress.get("phase") == "validate" and progress.get("phase_done", 0) > past

        wait_for(writing, timeout=60, interval=0.05, what="the samples to be written")
    else:
        job_id = start_import(api, content)
        if phase == "apply":
            assert api.wait_status(job_id, {"awaiting_confirmation"}, timeout=60)
            assert api.post(f"/jobs/{job_id}/confirm").status_code == 202
        wait_for_phase(api, job_id, phase)
    stack.kill_workers()

    assert row_counts(engine, target.id) == EMPTY, f"a kill in {phase} left rows visible"
    stack.start_worker()
    if phase == "stage":
        waiting = api.wait_status(job_id, {"awaiting_confirmation"}, timeout=90)
        assert waiting["attempt"] == 2
        assert row_counts(engine, target.id) == EMPTY
        assert api.post(f"/jobs/{job_id}/confirm").status_code == 202
    seen: list[dict[str, Any]] = []
    job = watch(api, job_id, TERMINAL, seen=seen)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    resumed = {(j["progress"] or {}).get("phase") for j in seen if j["attempt"] == 2}
    if phase == "apply":
        # SPEC 8: a resumed import restarts from its last checkpoint (staging was complete).
        assert not resumed & {"validate", "stage"}, f"attempt 2 staged again: {resumed}"
    if phase == "samples":
        # Its last checkpoint is the upload: nothing of attempt 1 survived the kill.
        assert "validate" in resumed, f"attempt 2 did not start over: {resumed}"
    # A previewed import's attempt is claimed for its report, then after the confirmation.
    claims = {"samples": [1, 2], "apply": [1, 1, 2], "stage": [1, 2, 2]}[phase]
    assert [e["attempt"] for e in events(engine, job_id, "claimed")] == claims
    assert row_counts(engine, target.id) == record_counts(content)
    ids = archive_ids(content)
    got = records(settings, target.id)
    for kind in KINDS:
        assert set(got[kind]) == ids[kind], kind
    assert_same_records(got, records(settings, source.id))
    assert job["result"]["written"] == record_counts(content)
    assert staging_tables(engine) == []
    assert leftovers(settings, job_id) == []


# --- 5. the CLI -------------------------------------------------------------------------------


def _ferry(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_given_a_zip_when_imported_with_the_cli_then_counts_print_and_preview_waits_for_confirm(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> None:
    """`ferry import` prints the written counts; `--preview` stops at the report and
    `ferry jobs confirm` lets it finish."""
    source, _ = account
    seed(settings, source.id, days=4, per_day=150)
    first, _ = new_account(engine, "cli-first")
    second, _ = new_account(engine, "cli-second")
    stack.start_worker()
    out = tmp_path / "export.zip"
    exported = _ferry(stack, "export", source.name, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    counts = record_counts(out.read_bytes())

    imported = _ferry(stack, "import", first.name, str(out))

    assert imported.returncode == 0, imported.stdout + imported.stderr
    lines = [line for line in imported.stdout.splitlines() if line.startswith("imported: ")]
    assert len(lines) == 1, imported.stdout
    assert ast.literal_eval(lines[0][len("imported: ") :]) == counts
    assert_same_records(records(settings, first.id), records(settings, source.id))

    previewed = _ferry(stack, "import", second.name, str(out), "--preview")

    assert previewed.returncode == 0, previewed.stdout + previewed.stderr
    job_id = previewed.stdout.split("import ", 1)[1].split()[0]
    assert f"ferry jobs confirm {job_id}" in previewed.stdout, previewed.stdout
    assert row_counts(engine, second.id) == EMPTY
    confirmed = _ferry(stack, "jobs", "confirm", job_id)
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    watched = _ferry(stack, "jobs", "watch", job_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert_same_records(records(settings, second.id), records(settings, source.id))


def test_given_an_unpacked_archive_folder_when_imported_with_the_cli_then_every_record_arrives(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> None:
    """`ferry import ACCOUNT FOLDER` takes the `export-…` folder as the Arc apps (and an
    unzipped download) hold it; a folder without metadata.json is refused up front."""
    source, _ = account
    seed(settings, source.id, days=3, per_day=120)
    target, _ = new_account(engine, "cli-folder")
    stack.start_worker()
    out = tmp_path / "export.zip"
    exported = _ferry(stack, "export", source.name, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(unzipped)
    [folder] = list(unzipped.iterdir())
    assert folder.name.startswith("export-") and (folder / "metadata.json").is_file()

    refused = _ferry(stack, "import", target.name, str(unzipped))
    imported = _ferry(stack, "import", target.name, str(folder))

    assert refused.returncode != 0 and "metadata.json" in refused.stderr, refused.stderr
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "0 error(s)" in imported.stdout, imported.stdout
    assert_same_records(records(settings, target.id), records(settings, source.id))


# --- 6. a report with errors -------------------------------------------------------------------


def test_given_a_report_with_errors_when_confirmed_then_409_unless_skip_invalid(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """One sample out of range: the report names it; confirm is a 409 and writes nothing;
    confirm with skip_invalid imports every other record."""
    source, source_token = account
    seed(settings, source.id, days=4, per_day=150)
    target, target_token = new_account(engine, "target")
    stack.start_web()
    stack.start_worker()
    exported = export_zip(stack.api(source_token))
    content, bad = plant_bad_latitude(exported)
    counts = record_counts(exported)
    api = stack.api(target_token)

    job_id = start_import(api, content)
    waiting = api.wait_status(job_id, TERMINAL | {"awaiting_confirmation"}, timeout=60)

    assert waiting["status"] == "awaiting_confirmation", waiting
    preview = waiting["preview"]
    assert preview["error_count"] == 1, preview
    [error] = preview["errors"]
    assert (error["file"], error["index"], error["field"]) == (
        bad["file"],
        bad["index"],
        "latitude",
    )
    assert error["reason"]
    assert preview["counts"]["samples"]["invalid"] == 1

    refused = api.post(f"/jobs/{job_id}/confirm")

    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "conflict"
    assert api.job(job_id)["status"] == "awaiting_confirmation"
    assert row_counts(engine, target.id) == EMPTY

    accepted = api.post(f"/jobs/{job_id}/confirm", json={"skip_invalid": True})

    assert accepted.status_code == 202, accepted.text
    job = api.wait_status(job_id, TERMINAL, timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"]["invalid_skipped"] == 1
    assert row_counts(engine, target.id) == {**counts, "samples": counts["samples"] - 1}
    want = records(settings, source.id)
    del want["samples"][bad["id"]]
    assert_same_records(records(settings, target.id), want)
    assert leftovers(settings, job_id) == []
