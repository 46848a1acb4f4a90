"""The HTML pages (SPEC 14) through Flask's test client, on real Postgres: sign-in and the
session cookie, CSRF, tenancy (404 / 403), the forms' refusals, the operators' filters and
bulk restart. What a browser adds (live updates, uploads, axe) is in tests/e2e.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token, list_tokens, revoke_token
from web import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TITLE = re.compile(r"<title>(.*?)</title>", re.S)


@dataclass
class Site:
    app: Flask
    store: JobStore
    engine: Engine
    publisher: RecordingPublisher

    def browser(self) -> FlaskClient:
        """A fresh client: its own cookie jar, like a new browser."""
        return self.app.test_client()

    def signed_in(self, token: str) -> FlaskClient:
        client = self.browser()
        page = client.get("/")
        answer = client.post("/", data={"token": token, "csrf_token": csrf(page.text)})
        assert answer.status_code == 303, answer.text
        return client

    def failed(self, account: Account, code: str, *, type: str = "export.archive") -> str:
        job, _ = self.store.create(account_id=account.id, type=type, params={})
        claimed = self.store.claim(job.id, worker="test")
        assert claimed is not None
        self.store.fail(
            job.id,
            claimed.attempt,
            error={"code": code, "message": f"it broke: {code}", "retryable": False},
        )
        return job.id


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def title(html: str) -> str:
    found = TITLE.search(html)
    assert found, "the page has no <title>"
    return found.group(1).strip()


@pytest.fixture
def site(settings: Settings, engine: Engine) -> Iterator[Site]:
    publisher = RecordingPublisher()
    app = create_app(settings, live=MemoryLiveStore(), publisher=publisher)
    app.config["TESTING"] = True
    yield Site(app, JobStore(engine), engine, publisher)
    app.extensions["ferry"].engine.dispose()


@pytest.fixture
def operator(engine: Engine) -> str:
    account = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    return issue_token(engine, account.id, role="ops")


# --- signing in and out ----------------------------------------------------------------


def test_given_no_session_when_opening_a_page_then_the_sign_in_form_comes_first(
    site: Site,
) -> None:
    client = site.browser()

    home = client.get("/")
    job = client.get(f"/jobs/{uuid.uuid4()}")

    assert home.status_code == 200
    assert title(home.text) == "Sign in · Ferry"
    assert 'name="token"' in home.text
    assert job.status_code == 302
    assert job.headers["Location"].startswith("/?next=/jobs/")


def test_given_a_token_when_signing_in_then_the_cookie_is_signed_httponly_lax(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.browser()
    page = client.get("/")

    answer = client.post("/", data={"token": token, "csrf_token": csrf(page.text)})

    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("ferry_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    jobs = client.get("/")
    assert title(jobs.text) == "Jobs · Ferry"
    assert person.name in jobs.text


def test_given_a_wrong_token_when_signing_in_then_401_and_the_form_says_so(site: Site) -> None:
    client = site.browser()
    page = client.get("/")

    answer = client.post("/", data={"token": "nope", "csrf_token": csrf(page.text)})

    assert answer.status_code == 401
    assert "not known" in answer.text
    assert client.get(f"/jobs/{uuid.uuid4()}").status_code == 302  # still signed out


def test_given_a_session_when_signing_out_then_pages_ask_to_sign_in_again(
    site: Site, account: tuple[Account, str]
) -> None:
    _, token = account
    client = site.signed_in(token)
    page = client.get("/signout")
    assert title(page.text) == "Sign out · Ferry"

    answer = client.post("/signout", data={"csrf_token": csrf(page.text)})

    assert answer.status_code == 303
    assert title(client.get("/").text) == "Sign in · Ferry"


def test_given_a_revoked_token_when_the_session_is_used_then_it_is_signed_out(
    site: Site, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    for info in list_tokens(engine, person.id):
        revoke_token(engine, info.id)

    assert title(client.get("/").text) == "Sign in · Ferry"


def test_given_a_next_address_on_another_host_when_signing_in_then_it_stays_on_ferry(
    site: Site, account: tuple[Account, str]
) -> None:
    _, token = account
    client = site.browser()
    page = client.get("/")

    answer = client.post(
        "/",
        data={"token": token, "csrf_token": csrf(page.text), "next": "//evil.example/x"},
    )

    assert answer.headers["Location"] == "/"


# --- CSRF ------------------------------------------------------------------------------


def test_given_a_form_without_its_csrf_token_when_posted_then_400_and_nothing_changes(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    job, _ = site.store.create(account_id=person.id, type="export.archive", params={})

    missing = client.post(f"/jobs/{job.id}/cancel")
    forged = client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": "forged"})
    export = client.post("/exports/new", data={"kind": "archive"})
    login = site.browser().post("/", data={"token": token})

    for answer in (missing, forged, export, login):
        assert answer.status_code == 400, answer.text
        assert "reload the page" in answer.text
    assert site.store.get(job.id).status == "queued"
    assert len(site.store.page(site_filter(person))[0]) == 1  # no export was queued


def site_filter(person: Account):  # type: ignore[no-untyped-def]
    from shared.jobs.store import JobFilter

    return JobFilter(account_id=person.id)


# --- tenancy ---------------------------------------------------------------------------


def test_given_another_accounts_job_when_a_person_opens_or_acts_on_it_then_404(
    site: Site, engine: Engine, account: tuple[Account, str]
) -> None:
    _, token = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    theirs, _ = site.store.create(account_id=other.id, type="export.archive", params={})
    client = site.signed_in(token)
    token_field = csrf(client.get("/").text)

    page = client.get(f"/jobs/{theirs.id}")
    live = client.get(f"/jobs/{theirs.id}/live")
    cancel = client.post(f"/jobs/{theirs.id}/cancel", data={"csrf_token": token_field})
    download = client.get(f"/jobs/{theirs.id}/download")

    for answer in (page, live, cancel, download):
        assert answer.status_code == 404, answer.text
    assert title(page.text) == "Not found · Ferry"
    assert site.store.get(theirs.id).status == "queued"
    assert theirs.id not in client.get("/").text


def test_given_a_user_token_when_opening_ops_pages_then_403(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    job_id = site.failed(person, "internal")
    client = site.signed_in(token)
    token_field = csrf(client.get("/").text)

    answers = [
        client.get("/ops"),
        client.get("/ops/jobs"),
        client.get(f"/ops/jobs/{job_id}"),
        client.get("/ops/jobs/retry"),
        client.post(f"/ops/jobs/{job_id}/retry", data={"csrf_token": token_field}),
        client.post("/ops/jobs/retry", data={"csrf_token": token_field}),
    ]

    for answer in answers:
        assert answer.status_code == 403, answer.text
        assert title(answer.text) == "Not allowed · Ferry"
    assert site.store.get(job_id).status == "failed"


# --- people's pages --------------------------------------------------------------------


def test_given_jobs_when_listing_then_newest_first_filtered_and_paged_by_keyset(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    made = [
        site.store.create(account_id=person.id, type="export.archive", params={})[0].id
        for _ in range(30)
    ]
    failed = site.failed(person, "storage_error")
    client = site.signed_in(token)

    first = client.get("/")
    rows = re.findall(r'data-job="([0-9a-f-]+)"', first.text)
    older = re.search(r'href="(/\?cursor=[^"]+)"', first.text.replace("&amp;", "&"))
    assert older, "no link to the next page"
    second = client.get(older.group(1))
    only_failed = client.get("/?status=failed")

    assert rows[0] == failed
    assert rows[1:] == list(reversed(made))[: len(rows) - 1]
    rest = re.findall(r'data-job="([0-9a-f-]+)"', second.text)
    assert set(rows).isdisjoint(rest)
    assert set(rows) | set(rest) == {*made, failed}
    assert re.findall(r'data-job="([0-9a-f-]+)"', only_failed.text) == [failed]
    assert 'role="progressbar"' in first.text and 'aria-valuenow="0"' in first.text


def test_given_a_failed_job_when_its_page_is_opened_then_the_error_is_in_words_with_a_retry(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    job_id = site.failed(person, "storage_error")
    client = site.signed_in(token)

    page = client.get(f"/jobs/{job_id}")
    retried = client.post(f"/jobs/{job_id}/retry", data={"csrf_token": csrf(page.text)})

    assert title(page.text) == f"Archive export {job_id[:8]} · Ferry"
    assert "it broke: storage_error" in page.text
    assert "Ferry could not write or read its files" in page.text
    assert retried.status_code == 303 and retried.headers["Location"] == f"/jobs/{job_id}"
    job = site.store.get(job_id)
    assert job.status == "queued" and job.attempt == 2
    assert "attempt 2 is queued" in client.get(f"/jobs/{job_id}").text


def test_given_a_finished_job_when_cancelled_from_its_page_then_the_409_is_said_there(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    job_id = site.failed(person, "internal")
    client = site.signed_in(token)
    page = client.get(f"/jobs/{job_id}")

    answer = client.post(
        f"/jobs/{job_id}/cancel", data={"csrf_token": csrf(page.text)}, follow_redirects=True
    )

    assert answer.status_code == 200
    assert "only unfinished jobs can be cancelled" in answer.text


def test_given_the_export_form_when_submitted_then_the_browser_lands_on_the_new_job(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    form = client.get("/exports/new")
    assert title(form.text) == "New export · Ferry"

    answer = client.post(
        "/exports/new",
        data={
            "csrf_token": csrf(form.text),
            "kind": "archive",
            "scope": "range",
            "from": "2024-01-01",
            "to": "2024-01-31",
            "compress": "none",
        },
    )

    assert answer.status_code == 303
    job_id = answer.headers["Location"].rsplit("/", 1)[1]
    job = site.store.get(job_id, account_id=person.id)
    assert job.type == "export.archive"
    assert job.params["from"] == "2024-01-01T00:00:00Z"
    assert job.params["to"] == "2024-02-01T00:00:00Z"  # the last day is included
    assert job.params["compress"] == "none"
    assert [published[0] for published in site.publisher.published] == [job_id]


def test_given_a_range_that_ends_before_it_starts_then_422_naming_the_field(
    site: Site, account: tuple[Account, str]
) -> None:
    _, token = account
    client = site.signed_in(token)
    form = client.get("/exports/new")

    answer = client.post(
        "/exports/new",
        data={
            "csrf_token": csrf(form.text),
            "kind": "archive",
            "scope": "range",
            "from": "2024-03-01",
            "to": "2024-01-01",
        },
    )

    assert answer.status_code == 422
    assert 'id="form-error"' in answer.text
    assert re.search(r'id="a-to"[^>]*aria-invalid="true"', answer.text), answer.text


def test_given_table_columns_chosen_and_ordered_when_exported_then_the_job_keeps_that_order(
    site: Site, settings: Settings, account: tuple[Account, str]
) -> None:
    """Background delivery is what a big table gets; the order is the numbers' order."""
    person, token = account
    client = site.signed_in(token)
    form = client.get("/exports/new?kind=table")
    fields = {
        "csrf_token": csrf(form.text),
        "kind": "table",
        "table": "samples",
        "format": "csv",
        "timezone": "Europe/Berlin",
        "columns_samples": ["date", "latitude", "heart_rate"],
        "order_samples_date": "2",
        "order_samples_latitude": "3",
        "order_samples_heart_rate": "1",
    }

    answer = client.post("/exports/new", data=fields)

    # No rows: the export is small, so the file comes at once, with the columns in order.
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["Content-Disposition"]
    assert answer.text.splitlines()[0] == "heart_rate,date,latitude"
    assert site.store.page(site_filter(person))[0] == []


def test_given_an_unknown_time_zone_when_exporting_a_table_then_422_naming_it(
    site: Site, account: tuple[Account, str]
) -> None:
    _, token = account
    client = site.signed_in(token)
    form = client.get("/exports/new")

    answer = client.post(
        "/exports/new",
        data={
            "csrf_token": csrf(form.text),
            "kind": "table",
            "table": "places",
            "format": "csv",
            "timezone": "Mars/Olympus",
        },
    )

    assert answer.status_code == 422
    assert re.search(r'id="timezone"[^>]*aria-invalid="true"', answer.text), answer.text


def test_given_no_file_when_importing_then_422_and_no_job(
    site: Site, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    form = client.get("/imports/new")
    assert title(form.text) == "New import · Ferry"

    answer = client.post("/imports/new", data={"csrf_token": csrf(form.text)})

    assert answer.status_code == 422
    assert "Choose the file" in answer.text
    assert site.store.page(site_filter(person))[0] == []


# --- operators -------------------------------------------------------------------------


def test_given_failed_jobs_of_two_accounts_when_filtering_by_code_then_only_those_match(
    site: Site, engine: Engine, account: tuple[Account, str], operator: str
) -> None:
    person, _ = account
    other = create_account(engine, f"other-{uuid.uuid4().hex[:6]}")
    storage = [site.failed(person, "storage_error"), site.failed(other, "storage_error")]
    internal = site.failed(other, "internal")
    client = site.signed_in(operator)

    listing = client.get("/ops/jobs?error_code=storage_error")
    by_account = client.get(f"/ops/jobs?account={other.name}")
    unknown = client.get("/ops/jobs?account=nobody-at-all")

    assert title(listing.text) == "Failed jobs (operators) · Ferry"
    assert set(re.findall(r'data-job="([0-9a-f-]+)"', listing.text)) == set(storage)
    assert set(re.findall(r'data-job="([0-9a-f-]+)"', by_account.text)) == {storage[1], internal}
    assert "it broke: storage_error" in listing.text and person.name in listing.text
    assert unknown.status_code == 422 and "no such account" in unknown.text


def test_given_matching_failed_jobs_when_retrying_all_then_the_count_is_shown_first(
    site: Site, account: tuple[Account, str], operator: str
) -> None:
    person, _ = account
    storage = [site.failed(person, "storage_error") for _ in range(3)]
    other = site.failed(person, "internal")
    client = site.signed_in(operator)

    confirm = client.get("/ops/jobs/retry?error_code=storage_error")
    assert title(confirm.text) == "Retry matching jobs · Ferry"
    assert "<strong>3</strong> job(s) match" in confirm.text
    assert all(site.store.get(j).status == "failed" for j in storage)  # nothing yet

    done = client.post(
        "/ops/jobs/retry",
        data={"csrf_token": csrf(confirm.text), "error_code": "storage_error", "expected": "3"},
        follow_redirects=True,
    )

    assert "3 job(s) restarted." in done.text
    assert set(re.findall(r'data-job="([0-9a-f-]+)"', done.text)) == set(storage)
    assert {site.store.get(j).status for j in storage} == {"queued"}
    assert site.store.get(other).status == "failed"


def test_given_a_failed_job_when_an_operator_opens_it_then_history_and_retry_one(
    site: Site, account: tuple[Account, str], operator: str
) -> None:
    person, _ = account
    job_id = site.failed(person, "interrupted")
    client = site.signed_in(operator)

    page = client.get(f"/ops/jobs/{job_id}")
    retried = client.post(
        f"/ops/jobs/{job_id}/retry", data={"csrf_token": csrf(page.text)}, follow_redirects=True
    )

    assert "Attempt history" in page.text and "created" in page.text and "failed" in page.text
    assert site.store.get(job_id).attempt == 2
    assert "restarted" in retried.text  # the history's new line


def test_given_jobs_when_the_overview_is_opened_then_it_counts_them(
    site: Site, account: tuple[Account, str], operator: str
) -> None:
    person, _ = account
    site.failed(person, "storage_error")
    site.failed(person, "storage_error")
    site.store.create(account_id=person.id, type="export.archive", params={})
    client = site.signed_in(operator)

    page = client.get("/ops")

    assert title(page.text) == "Operations overview · Ferry"
    assert re.search(r'<span class="n">2</span> failed in the last 24 h', page.text)
    assert re.search(r'<span class="n">1</span> queued; the oldest for', page.text)
    assert "storage_error</a>: 2" in page.text


def test_given_the_database_is_unreachable_when_a_signed_in_page_is_opened_then_503_page(
    settings: Settings, site: Site, account: tuple[Account, str]
) -> None:
    """Given a session, When PostgreSQL stops answering, Then a page says so (503 with
    Retry-After), not a server error."""
    from dataclasses import replace

    from tests.integration.test_api import closed_port

    _, token = account
    signed = site.signed_in(token)
    cookie = signed.get_cookie("ferry_session")
    assert cookie is not None
    dead = replace(
        settings, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x"
    )
    app = create_app(dead, live=MemoryLiveStore(), publisher=RecordingPublisher())
    app.config["TESTING"] = True
    client = app.test_client()
    client.set_cookie("ferry_session", cookie.value)
    try:
        answer = client.get("/")
    finally:
        app.extensions["ferry"].engine.dispose()

    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert title(answer.text) == "Try again shortly · Ferry"


# --- table imports and the import history -------------------------------------------------


def _run(settings: Settings, engine: Engine, job_id: str) -> None:
    """Run the job's next delivery in this process, with the real pipelines."""
    from shared.jobs.runner import JobRunner
    from shared.pipelines import PIPELINES
    from shared.store.storage import LocalStorage
    from tests.polling import wait_for

    runner = JobRunner(
        settings=settings,
        engine=engine,
        live=MemoryLiveStore(),
        storage=LocalStorage(settings.storage_root),
        publisher=RecordingPublisher(),
        pipelines=PIPELINES,
        name="test-worker",
    )
    wait_for(lambda: runner.run(job_id), timeout=60, what=f"job {job_id} to run")


PLACES_CSV = (
    "id,Title,latitude,longitude,last_saved\r\n"
    f"{uuid.uuid4()},Home,52.5,13.4,2024-01-01T10:00:00Z\r\n"
    f"{uuid.uuid4()},Work,52.6,13.5,2024-01-02T10:00:00Z\r\n"
).encode()


def _upload_table(client: FlaskClient, data: bytes, table: str = "places") -> str:
    import io

    form = client.get("/imports/new")
    answer = client.post(
        "/imports/new",
        data={
            "csrf_token": csrf(form.text),
            "kind": "table",
            "table": table,
            "file": (io.BytesIO(data), "places.csv"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 303, answer.text
    return str(answer.headers["Location"].rsplit("/", 1)[1])


def test_given_a_table_preview_when_the_mapping_form_is_sent_then_the_file_is_read_again(
    site: Site, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    job_id = _upload_table(client, PLACES_CSV)
    assert site.store.get(job_id).type == "import.table"
    _run(settings, engine, job_id)

    page = client.get(f"/jobs/{job_id}")
    assert 'id="mapping-form"' in page.text
    assert re.search(r'data-file-column="Title">\s*<option value="" selected>', page.text)
    fields = {"csrf_token": csrf(page.text)}
    for n, column in enumerate(["id", "Title", "latitude", "longitude", "last_saved"], 1):
        fields[f"col_{n}"] = column
        fields[f"to_{n}"] = {"Title": "name"}.get(column, column)
    twice = {**fields, "to_2": "latitude"}  # two file columns to one Ferry column

    refused = client.post(f"/jobs/{job_id}/remap", data=twice, follow_redirects=True)
    assert "latitude" in refused.text and 'class="note error"' in refused.text
    assert site.store.get(job_id).status == "awaiting_confirmation"

    accepted = client.post(f"/jobs/{job_id}/remap", data=fields)
    assert accepted.status_code == 303
    _run(settings, engine, job_id)
    job = site.store.get(job_id, account_id=person.id)
    assert job.status == "awaiting_confirmation"
    assert job.preview is not None
    assert job.preview["mapping"]["Title"] == "name"
    assert job.preview["counts"]["valid"] == 2
    again = client.get(f"/jobs/{job_id}")
    assert re.search(
        r'data-file-column="Title">.*?<option value="name" selected>', again.text, re.S
    )


def test_given_an_import_past_its_undo_time_when_undone_from_the_history_then_it_says_so(
    site: Site, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    person, token = account
    client = site.signed_in(token)
    job_id = _upload_table(client, PLACES_CSV.replace(b"Title", b"name"))
    _run(settings, engine, job_id)
    page = client.get(f"/jobs/{job_id}")
    client.post(f"/jobs/{job_id}/confirm", data={"csrf_token": csrf(page.text)})
    _run(settings, engine, job_id)
    assert site.store.get(job_id).status == "succeeded"

    history = client.get("/imports")
    assert title(history.text) == "Your imports · Ferry"
    assert f'data-import="{job_id}"' in history.text
    assert "Can be undone for" in history.text and "created 2" in history.text

    with engine.begin() as conn:  # the day to undo it has passed
        conn.execute(
            text("UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = :id"),
            {"id": job_id},
        )
    late = client.post(
        f"/imports/{job_id}/rollback",
        data={"csrf_token": csrf(history.text)},
        follow_redirects=True,
    )

    assert 'class="note error"' in late.text
    assert "Too late to undo" in late.text
    assert [j.type for j in site.store.page(site_filter(person))[0]] == ["import.table"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/ops/jobs?account=ann%00", "account"),
        ("/ops/jobs?error_code=a%00b", "error_code"),
        ("/ops/jobs?status=nope", "status"),
        ("/ops/jobs?window=1y", "window"),
        ("/ops/jobs/retry?error_code=%00", "error_code"),
    ],
)
def test_given_a_bad_filter_when_an_operator_asks_then_422_naming_it_not_500(
    site: Site, operator: str, path: str, field: str
) -> None:
    client = site.signed_in(operator)

    answer = client.get(path)

    assert answer.status_code == 422, answer.text
    assert f"{field}:" in answer.text


def test_given_a_nul_in_the_export_form_when_sent_then_422_not_500(
    site: Site, account: tuple[Account, str]
) -> None:
    _, token = account
    client = site.signed_in(token)
    form = client.get("/exports/new")

    answer = client.post(
        "/exports/new",
        data={
            "csrf_token": csrf(form.text),
            "kind": "table",
            "table": "places",
            "format": "csv",
            "timezone": "Europe/Berlin\x00",
        },
    )

    assert answer.status_code == 422, answer.text
