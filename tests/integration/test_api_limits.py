"""Limits of the API itself (SPEC 9): JSON bodies up to 1 MiB, malformed ids are 404s.

The app is the real one on this test's database; a body is handed to it as a stream that
counts what the app read, so "refused before reading" is measured, not assumed.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from tests.integration.routes import id_routes
from web import create_app
from web.routing import IdConverter

MIB = 1024 * 1024


class CountingStream(io.RawIOBase):
    """A request body that remembers how many of its bytes the server read."""

    def __init__(self, size: int, *, prefix: bytes = b"") -> None:
        self.size = size
        self.prefix = prefix
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.size - self.read_bytes)
        if want <= 0:
            return 0
        chunk = (self.prefix + b" " * self.size)[self.read_bytes : self.read_bytes + want]
        buffer[: len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


@dataclass
class Web:
    app: Flask
    client: FlaskClient
    engine: Engine
    publisher: RecordingPublisher
    token: str
    ops_token: str

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}

    def jobs(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


@pytest.fixture
def web(settings: Settings, engine: Engine, account: tuple[Account, str]) -> Iterator[Web]:
    _, token = account
    operator = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    ops_token = issue_token(engine, operator.id, role="ops")
    publisher = RecordingPublisher()
    app = create_app(settings, live=MemoryLiveStore(), publisher=publisher)
    app.config["TESTING"] = True
    yield Web(app, app.test_client(), engine, publisher, token, ops_token)
    app.extensions["ferry"].engine.dispose()


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert error["details"].get("field") == field, error


def send(web: Web, method: str, path: str, body: CountingStream, *, chunked: bool) -> Any:
    """Send `body` as the WSGI server would: with its length, or chunked (no length, and
    the server saying the stream ends, as gunicorn and Werkzeug's server do)."""
    environ: dict[str, Any] = {"wsgi.input": body}
    headers = web.auth(web.ops_token if "/ops/" in path else None)
    if chunked:
        environ["wsgi.input_terminated"] = True
        headers["Transfer-Encoding"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(body.size)
    return web.client.open(
        path.format(id=uuid.uuid4()),
        method=method,
        content_type="application/json",
        headers=headers,
        environ_overrides=environ,
    )


JSON_ROUTES = [
    ("POST", "/api/v1/exports"),
    ("POST", "/api/v1/jobs/{id}/confirm"),
    ("POST", "/api/v1/ops/jobs/retry"),
    ("GET", "/api/v1/jobs"),  # takes no body at all: the limit holds there too
    ("POST", "/api/v1/imports"),  # a JSON body to the upload route gets the JSON limit
    ("POST", "/api/v1/no-such-route"),
]


# --- body limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_given_an_8_mib_json_body_with_its_length_when_sent_then_413_before_a_byte_is_read(
    web: Web, method: str, path: str
) -> None:
    """Given an 8 MiB JSON body that says its Content-Length, When sent to any JSON route
    (or one that takes no body, or none at all), Then 413 naming the body, and the app read
    none of it; no job is written."""
    body = CountingStream(8 * MIB, prefix=b'{"type": "archive", "pad": "')
    response = send(web, method, path, body, chunked=False)

    assert_error(response, 413, "payload_too_large", "body")
    assert body.read_bytes == 0
    assert web.jobs() == 0
    assert web.publisher.job_ids() == []


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES[:3])
def test_given_an_8_mib_chunked_json_body_when_sent_then_413_after_at_most_the_limit_is_read(
    web: Web, method: str, path: str
) -> None:
    """Given an 8 MiB body with no Content-Length (chunked; the server says the stream ends),
    When sent, Then 413, and the app stopped reading just past 1 MiB; no job is written."""
    body = CountingStream(8 * MIB, prefix=b'{"type": "archive", "pad": "')
    response = send(web, method, path, body, chunked=True)

    assert_error(response, 413, "payload_too_large")
    assert body.read_bytes <= MIB + 64 * 1024, body.read_bytes
    assert web.jobs() == 0


def test_given_a_json_body_of_exactly_1_mib_when_posted_then_it_is_read_and_accepted(
    web: Web,
) -> None:
    """Given a valid export request padded with whitespace to exactly 1 MiB, When posted,
    Then 202: the limit is 1 MiB inclusive (the control for the refusals)."""
    request = b'{"type": "archive"}'
    padded = request + b" " * (MIB - len(request))

    response = web.client.post(
        "/api/v1/exports", data=padded, content_type="application/json", headers=web.auth()
    )

    assert response.status_code == 202, response.get_data(as_text=True)
    assert web.jobs() == 1


def test_given_a_multipart_upload_over_1_mib_when_posted_then_accepted(web: Web) -> None:
    """Given a 3 MiB file posted as multipart to /imports, When posted, Then 202: only the
    JSON limit is 1 MiB, an upload has its own (FERRY_MAX_UPLOAD_BYTES)."""
    upload = io.BytesIO(b"\0" * (3 * MIB))

    response = web.client.post(
        "/api/v1/imports",
        data={"file": (upload, "export.zip")},
        content_type="multipart/form-data",
        headers=web.auth(),
    )

    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["job"]["params"]["bytes"] == 3 * MIB


# --- malformed ids ---------------------------------------------------------------------------

MALFORMED = [
    "not-a-uuid",
    "123",
    "00000000000000000000000000000000",  # the digits of a UUID without its hyphens
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-0000000000000",
    "%00",
]


def test_given_each_route_with_an_id_when_called_with_malformed_ids_then_404_not_500(
    web: Web,
) -> None:
    """Given every route that takes an id (cancel, retry and confirm answered 500 before),
    When called with ids that are not UUIDs, Then 404 not_found, like an unknown id."""
    routes = id_routes(web.app)
    assert {path for _, path in routes} >= {
        "/api/v1/jobs/<uuid:job_id>",
        "/api/v1/jobs/<uuid:job_id>/cancel",
        "/api/v1/jobs/<uuid:job_id>/retry",
        "/api/v1/jobs/<uuid:job_id>/confirm",
        "/api/v1/ops/jobs/<uuid:job_id>/retry",
    }
    for method, rule in routes:
        token = web.ops_token if "/ops/" in rule else web.token
        for bad in MALFORMED:
            path = rule.replace("<uuid:job_id>", bad)
            response = web.client.open(path, method=method, headers=web.auth(token))
            assert_error(response, 404, "not_found")


def test_given_a_job_id_in_upper_case_when_read_then_it_is_the_same_job(web: Web) -> None:
    """Given a job, When its id is written in capitals in the URL, Then the same job (a
    UUID's case carries no meaning)."""
    created = web.client.post("/api/v1/exports", json={"type": "archive"}, headers=web.auth())
    job_id = created.get_json()["job"]["id"]

    response = web.client.get(f"/api/v1/jobs/{job_id.upper()}", headers=web.auth())

    assert response.status_code == 200
    assert response.get_json()["job"]["id"] == job_id


def test_given_the_app_when_its_rules_are_listed_then_every_id_in_a_path_is_a_uuid(
    web: Web,
) -> None:
    """Given every route of the app, present and future, When its path arguments are read,
    Then each is matched by the UUID converter, so no view ever sees a malformed id."""
    rules = [r for r in web.app.url_map.iter_rules() if r.arguments and r.endpoint != "static"]
    assert len(rules) >= 6
    for rule in rules:
        for name, converter in rule._converters.items():
            assert isinstance(converter, IdConverter), f"{rule.rule}: <{name}> is not a UUID"


# --- input PostgreSQL cannot hold (found by fuzzing the document) ---------------------------


NUL_FILTERS = {
    "ops-list-error-code": ("GET", "/api/v1/ops/jobs", {"error_code": "bad\x00"}, None),
    "ops-list-account": ("GET", "/api/v1/ops/jobs", {"account": "\x00"}, None),
    "ops-retry-error-code": ("POST", "/api/v1/ops/jobs/retry", None, {"error_code": "a\x00b"}),
    "ops-retry-account": ("POST", "/api/v1/ops/jobs/retry", None, {"account": "ann\x00"}),
    "list-cursor": ("GET", "/api/v1/jobs", {"cursor": "\x00"}, None),
}


@pytest.mark.parametrize("case", list(NUL_FILTERS))
def test_given_a_nul_character_in_a_filter_when_sent_then_422_naming_it_not_500(
    web: Web, case: str
) -> None:
    """Given a filter holding U+0000 (which PostgreSQL text cannot hold), When sent, Then
    422 naming the field — before, the database refused the query and the answer was 500."""
    method, path, query, body = NUL_FILTERS[case]
    field = case.split("-", 2)[-1].replace("-", "_")
    token = web.ops_token if "/ops/" in path else web.token
    response = web.client.open(
        path, method=method, query_string=query, json=body, headers=web.auth(token)
    )
    assert_error(response, 422, "validation_failed", field)


@pytest.mark.parametrize("name", ["a\x00b.zip", "\x00", "tab\there.zip"])
def test_given_an_upload_whose_file_name_has_control_characters_when_posted_then_kept_without(
    web: Web, name: str
) -> None:
    """Given an upload named with U+0000 or a tab, When posted, Then 202 and the job keeps
    the name without its control characters ("upload" when nothing is left) — before, U+0000
    made the job's insert fail and the answer was 500."""
    response = web.client.post(
        "/api/v1/imports",
        data={"file": (io.BytesIO(b"PK\x05\x06" + b"\0" * 18), name)},
        content_type="multipart/form-data",
        headers=web.auth(),
    )

    assert response.status_code == 202, response.get_data(as_text=True)
    kept = response.get_json()["job"]["params"]["filename"]
    assert kept == ("".join(c for c in name if c not in "\x00\t") or "upload")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "archive", "from": "0001-01-01T00:00:00+01:00"}, "from"),
        ({"type": "archive", "to": "9999-12-31T23:59:59-01:00"}, "to"),
    ],
)
def test_given_a_date_outside_the_representable_range_when_posted_then_422_naming_it(
    web: Web, body: dict[str, Any], field: str
) -> None:
    """Given a date whose offset moves it before year 1 or past year 9999 in UTC, When
    posted, Then 422 naming the field (parsing it used to raise an OverflowError)."""
    response = web.client.post("/api/v1/exports", json=body, headers=web.auth())
    assert_error(response, 422, "validation_failed", field)
    assert web.jobs() == 0


def test_given_a_method_a_path_does_not_take_when_called_then_405_with_allow(web: Web) -> None:
    """Given DELETE on /api/v1/jobs, When called, Then 405 in Ferry's error shape, and an
    Allow header naming the methods the path takes (HTTP requires it; it used to be lost)."""
    response = web.client.delete("/api/v1/jobs", headers=web.auth())

    assert_error(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET"}
