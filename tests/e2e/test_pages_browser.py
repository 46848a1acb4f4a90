"""The pages in a real browser (SPEC 14), against real `ferry web` and `ferry worker`
processes on a real PostgreSQL and Redis: a person signs in by keyboard, exports and
watches the bars move without a reload, cancels, downloads, uploads the download as an
import and confirms its preview; an operator filters failed jobs by error code and
restarts all of them. axe-core checks every page; the job page and the failed-jobs page
are saved as screenshots into docs/ for the README.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from tests.e2e.browser import DOCS, assert_accessible, sign_in_by_keyboard
from tests.e2e.harness import Stack
from tests.e2e.import_helpers import new_account, seed, throttle
from tests.e2e.test_cancel import start_export
from tests.e2e.test_ops import break_storage, fix_storage
from tests.polling import wait_for

pytestmark = pytest.mark.e2e
TERMINAL = {"succeeded", "failed", "cancelled"}


def shown_status(page: Any) -> str:
    """The status the job page shows now (updated by the live stream)."""
    return str(page.get_attribute("#progress [data-status]", "data-status"))


def wait_shown(page: Any, wanted: set[str], *, timeout: float = 90) -> str:
    """Wait, without reloading, until the job page shows one of `wanted`."""
    return wait_for(
        lambda: (s := shown_status(page)) in wanted and s,
        timeout=timeout,
        what=f"the page to show {sorted(wanted)}",
    )


def job_id_of(page: Any) -> str:
    """The id of the job whose page the browser is on."""
    assert "/jobs/" in page.url, page.url
    return str(page.url.rsplit("/jobs/", 1)[1].split("?")[0])


def test_given_a_person_when_exporting_in_the_browser_then_progress_moves_live_and_cancel_and_download_work(  # noqa: E501
    stack: Stack, settings: Settings, engine: Engine, page: Any, tmp_path: Path
) -> None:
    person, token = new_account(engine, "walker")
    seeded = seed(settings, person.id, days=8, per_day=300)
    throttle(stack, 250)
    stack.start_web()
    stack.start_worker()
    base = stack.base_url

    # Sign in with the keyboard only.
    page.goto(base + "/")
    assert page.title() == "Sign in · Ferry"
    assert_accessible(page)
    sign_in_by_keyboard(page, base, token)
    assert page.title() == "Jobs · Ferry"
    assert_accessible(page)

    # A new archive export: the form lands on the job's page.
    page.click("text=New export")
    page.wait_for_url("**/exports/new")
    assert page.title() == "New export · Ferry"
    assert_accessible(page)
    page.click("#archive-form button[type=submit]")
    page.wait_for_url("**/jobs/*")
    first = job_id_of(page)
    assert page.title() == f"Archive export {first[:8]} · Ferry"
    page.evaluate("() => { window.__sameDocument = true; }")

    # The jobs list, in another tab, moves the job's bar too (it polls while jobs run).
    listing = page.context.new_page()
    listing.goto(base + "/")
    listing.evaluate("() => { window.__sameDocument = true; }")
    row_bar = f"tr[data-job='{first}'] [role=progressbar]"
    listed: list[int] = []

    def list_moved() -> bool:
        bar = listing.query_selector(row_bar)
        if bar is None:  # the job ended: its row has no bar any more
            return True
        value = int(bar.get_attribute("aria-valuenow"))
        if not listed or listed[-1] != value:
            listed.append(value)
        return len([v for v in listed if v > 0]) >= 2

    listing.focus(f"#job-{first}")  # a keyboard user on the job's link keeps focus there
    wait_for(list_moved, timeout=60, interval=0.2, what="the list's bar to move")
    assert len([v for v in listed if v > 0]) >= 2, listed
    assert listing.evaluate("() => document.activeElement.id") == f"job-{first}"
    assert listing.evaluate("() => window.__sameDocument === true"), "the list was reloaded"
    listing.close()

    # The overall bar takes several values while the page stays the same document.
    seen: list[int] = []

    def moved() -> bool:
        value = int(page.get_attribute("#overall", "aria-valuenow"))
        if not seen or seen[-1] != value:
            seen.append(value)
        return len([v for v in seen if 0 < v < 100]) >= 3 or shown_status(page) in TERMINAL

    wait_for(moved, timeout=90, interval=0.1, what="the progress bar to move")
    assert len([v for v in seen if 0 < v < 100]) >= 3, seen
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    assert page.locator(".phase.current").count() == 1
    assert "rows" in page.inner_text(".phase.current")
    assert_accessible(page)
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "job-page.png"), full_page=True)

    # It finishes on its own page; the download is the archive.
    assert wait_shown(page, TERMINAL) == "succeeded"
    assert page.evaluate("() => window.__sameDocument === true")
    assert page.get_attribute("#overall", "aria-valuenow") == "100"
    with page.expect_download() as download:
        page.click("#actions a[download]")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
    assert any(n.endswith("/metadata.json") for n in names), names
    assert any("/samples/" in n for n in names), names

    # Another export, cancelled from its page, ends `cancelled`.
    page.goto(base + "/exports/new")
    page.click("#archive-form button[type=submit]")
    page.wait_for_url("**/jobs/*")
    second = job_id_of(page)
    assert second != first
    wait_shown(page, {"running"}, timeout=60)
    with page.expect_navigation():
        page.click("#actions button.danger")
    assert wait_shown(page, TERMINAL, timeout=30) == "cancelled"
    assert stack.api(token).job(second)["status"] == "cancelled"

    # The jobs list shows both, newest first.
    page.goto(base + "/")
    listed = page.eval_on_selector_all("tr[data-job]", "rows => rows.map(r => r.dataset.job)")
    assert listed[:2] == [second, first]

    # The download, uploaded into an empty account, stops at its preview; confirm it.
    stack.kill_workers()
    throttle(stack, 0)
    stack.start_worker()
    newcomer, newcomer_token = new_account(engine, "newcomer")
    page.context.clear_cookies()
    sign_in_by_keyboard(page, base, newcomer_token)
    page.goto(base + "/imports/new")
    assert page.title() == "New import · Ferry"
    assert_accessible(page)
    page.set_input_files("#file", str(saved))
    # What the upload bar showed, kept across the navigation that follows the upload.
    page.evaluate(
        """() => {
          const bar = document.getElementById('upload-bar-archive');
          new MutationObserver(() => {
            const seen = JSON.parse(sessionStorage.getItem('upload') || '[]');
            seen.push(Number(bar.getAttribute('aria-valuenow')));
            sessionStorage.setItem('upload', JSON.stringify(seen));
          }).observe(bar, {attributes: true, attributeFilter: ['aria-valuenow']});
        }"""
    )
    page.click("#import-form button[type=submit]")
    page.wait_for_url("**/jobs/*", timeout=60_000)
    upload_seen = page.evaluate("() => JSON.parse(sessionStorage.getItem('upload') || '[]')")
    assert upload_seen and upload_seen[-1] == 100, upload_seen
    assert upload_seen == sorted(upload_seen), upload_seen
    imported = job_id_of(page)
    assert page.title() == f"Archive import {imported[:8]} · Ferry"
    wait_shown(page, {"awaiting_confirmation"}, timeout=90)
    page.wait_for_selector("text=Preview: nothing is imported until you confirm")
    assert_accessible(page)
    with page.expect_navigation():
        page.click("text=Confirm the import")
    assert wait_shown(page, TERMINAL, timeout=90) == "succeeded"
    written = stack.api(newcomer_token).job(imported)["result"]["written"]
    assert written == {
        "places": seeded.places,
        "items": seeded.items,
        "samples": seeded.samples,
    }, written
    assert newcomer.id != person.id


def test_given_failed_jobs_when_an_operator_filters_by_code_and_retries_all_then_they_are_queued(
    stack: Stack, settings: Settings, engine: Engine, page: Any
) -> None:
    ann, ann_token = new_account(engine, "ann")
    bob, bob_token = new_account(engine, "bob")
    for s, owner in enumerate((ann, bob)):
        seed(settings, owner.id, days=2, per_day=100, s=s)
    operator = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    ops_token = issue_token(engine, operator.id, role="ops")
    break_storage(settings)
    stack.start_web()
    stack.start_worker()
    broken = [start_export(stack.api(ann_token)), start_export(stack.api(bob_token))]
    for job_id, token in zip(broken, (ann_token, bob_token), strict=True):
        job = stack.api(token).wait_status(job_id, TERMINAL, timeout=90)
        assert job["error"]["code"] == "storage_error", job
    # One failure of another kind, as a worker leaves it (claimed, then failed).
    store = JobStore(engine)
    other, _ = store.create(account_id=bob.id, type="export.archive", params={})
    claimed = store.claim(other.id, worker="test")
    assert claimed is not None
    store.fail(
        other.id,
        claimed.attempt,
        error={"code": "internal", "message": "a fault", "retryable": False},
    )
    stack.kill_workers()  # restarted jobs stay queued where the test can see them
    fix_storage(settings)
    base = stack.base_url

    sign_in_by_keyboard(page, base, ops_token)
    page.click("text=Failed jobs")
    page.wait_for_url("**/ops/jobs")
    assert page.title() == "Failed jobs (operators) · Ferry"
    assert page.locator("tr[data-job]").count() == 3
    page.select_option("#f-code", "storage_error")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**error_code=storage_error**")
    rows = page.eval_on_selector_all("tr[data-job]", "rows => rows.map(r => r.dataset.job)")
    assert sorted(rows) == sorted(broken)
    assert ann.name in page.inner_text("table") and bob.name in page.inner_text("table")
    assert_accessible(page)
    page.screenshot(path=str(DOCS / "ops-failed-jobs.png"), full_page=True)

    page.click("text=Retry all matching…")
    page.wait_for_url("**/ops/jobs/retry?**")
    assert page.title() == "Retry matching jobs · Ferry"
    assert "2 job(s) match" in page.inner_text("main")
    assert_accessible(page)
    page.click("text=Restart 2 job(s)")
    page.wait_for_url("**status=queued**")
    assert "2 job(s) restarted." in page.inner_text("main")
    queued = page.eval_on_selector_all("tr[data-job]", "rows => rows.map(r => r.dataset.job)")
    assert sorted(queued) == sorted(broken)
    assert page.locator("tr[data-job] .s-queued").count() == 2
    for job_id in broken:
        job = store.get(job_id)
        assert (job.status, job.attempt) == ("queued", settings.max_attempts + 1)
    assert store.get(other.id).status == "failed"
    assert_accessible(page)

    # The job's attempt history, and the overview.
    page.click(f"tr[data-job='{broken[0]}'] a")
    page.wait_for_url(f"**/ops/jobs/{broken[0]}")
    assert page.title() == f"Archive export {broken[0][:8]} (operators) · Ferry"
    assert "restarted" in page.inner_text("table")
    assert_accessible(page)
    page.click("nav >> text=Overview")
    page.wait_for_url("**/ops")
    assert page.title() == "Operations overview · Ferry"
    assert "2 queued" in " ".join(page.inner_text(".figures").split())
    assert_accessible(page)

    # Bring a worker back: the restarted jobs now succeed.
    stack.start_worker()
    for job_id, token in zip(broken, (ann_token, bob_token), strict=True):
        assert stack.api(token).wait_status(job_id, TERMINAL, timeout=90)["status"] == "succeeded"


def test_given_two_accounts_in_the_browser_then_others_jobs_are_404_and_ops_pages_403(
    stack: Stack, engine: Engine, page: Any, account: tuple[Account, str]
) -> None:
    person, token = account
    stranger, _ = new_account(engine, "stranger")
    theirs, _ = JobStore(engine).create(account_id=stranger.id, type="export.archive", params={})
    stack.start_web()
    base = stack.base_url

    sign_in_by_keyboard(page, base, token)
    hidden = page.goto(f"{base}/jobs/{theirs.id}")
    assert hidden is not None and hidden.status == 404
    assert page.title() == "Not found · Ferry"
    assert_accessible(page)
    for path in ("/ops", "/ops/jobs", f"/ops/jobs/{theirs.id}"):
        refused = page.goto(base + path)
        assert refused is not None and refused.status == 403, path
        assert page.title() == "Not allowed · Ferry"
    assert_accessible(page)

    # Signing out forgets the session: the job pages ask to sign in again.
    page.goto(base + "/signout")
    assert_accessible(page)
    page.click("main button[type=submit]")
    page.goto(f"{base}/jobs/{theirs.id}")
    assert page.title() == "Sign in · Ferry"
    assert person.id != stranger.id


def test_given_a_table_file_when_imported_in_the_browser_then_a_column_is_fixed_in_the_mapping_and_the_import_undone(  # noqa: E501
    stack: Stack, settings: Settings, engine: Engine, page: Any, tmp_path: Path
) -> None:
    """Import a CSV whose date column the automatic match cannot name, fix it in the
    mapping form, confirm; then undo it from the history, keeping a row changed since."""
    person, token = new_account(engine, "tabular")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    csv = tmp_path / "places.csv"
    csv.write_text(
        "id,Title,lat,longitude,last_saved\r\n"
        + "".join(
            f"{place_id},Place {n},{50 + n},{8 + n},2024-01-0{n + 1}T10:00:00Z\r\n"
            for n, place_id in enumerate(ids)
        )
    )
    stack.start_web()
    stack.start_worker()
    base = stack.base_url

    sign_in_by_keyboard(page, base, token)
    page.goto(base + "/imports/new")
    page.set_input_files("#t-file", str(csv))
    page.select_option("#t-table", "places")
    page.click("#table-import-form button[type=submit]")
    page.wait_for_url("**/jobs/*", timeout=60_000)
    job_id = job_id_of(page)
    assert page.title() == f"Table import {job_id[:8]} · Ferry"
    wait_shown(page, {"awaiting_confirmation"}, timeout=60)
    page.wait_for_selector("#mapping-form")
    assert_accessible(page)
    # `Title` and `lat` match no column: the rows lack a name and a latitude.
    assert int(page.inner_text("[data-count=invalid] .n")) == 3
    assert page.input_value("select[data-file-column='Title']") == ""

    page.select_option("select[data-file-column='Title']", "name")
    page.select_option("select[data-file-column='lat']", "latitude")
    with page.expect_navigation():
        page.click("#remap-button")
    wait_shown(page, {"awaiting_confirmation"}, timeout=60)
    wait_for(
        lambda: (
            page.query_selector("[data-count=valid] .n")
            and page.inner_text("[data-count=valid] .n") == "3"
        ),
        timeout=60,
        what="the new preview with three valid rows",
    )
    assert page.input_value("select[data-file-column='Title']") == "name"
    assert int(page.inner_text("[data-count=would_create] .n")) == 3
    with page.expect_navigation():
        page.click("#confirm-button")
    assert wait_shown(page, TERMINAL, timeout=60) == "succeeded"
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT name FROM places WHERE account_id = :a ORDER BY name"), {"a": person.id}
        ).scalars()
        assert list(names) == ["Place 0", "Place 1", "Place 2"]
        # A row changed after the import, which the undo must ask about.
        conn.execute(
            text("UPDATE places SET name = 'Renamed by hand' WHERE account_id = :a AND id = :i"),
            {"a": person.id, "i": ids[0]},
        )
        conn.commit()

    # The history: the import with its counts and the time left to undo it.
    page.click("nav >> text=Imports")
    page.wait_for_url("**/imports")
    assert page.title() == "Your imports · Ferry"
    row = page.locator(f"tr[data-import='{job_id}']")
    assert "created 3" in row.inner_text()
    assert "Can be undone for" in row.inner_text()
    assert_accessible(page)
    row.locator("button").click()
    page.wait_for_url("**/jobs/*")
    rollback = job_id_of(page)
    assert page.title() == f"Import undo {rollback[:8]} · Ferry"
    wait_shown(page, {"awaiting_confirmation"}, timeout=60)
    page.wait_for_selector("text=1 row(s) changed since the import")
    assert_accessible(page)
    page.check("#modified-keep")
    with page.expect_navigation():
        page.click("#confirm-button")
    assert wait_shown(page, TERMINAL, timeout=60) == "succeeded"
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT name FROM places WHERE account_id = :a"), {"a": person.id}
        ).scalars()
        assert list(left) == ["Renamed by hand"]  # kept, as chosen; the rest undone
    page.goto(base + "/imports")
    assert "Undone" in page.locator(f"tr[data-import='{job_id}']").inner_text()
