"""Schemathesis against the real app (SPEC 9): the OpenAPI document is fuzzed, every phase.

The app runs on this test's own database and Redis prefix (real live store, real Celery
broker), with a real account and token, and an ops token for the ops routes. Every
response must be one the document declares (status, content type, headers, schema), and
none may be a server error other than the documented 503. The examples, coverage and
fuzzing phases run per operation; the stateful phase follows the document's links
(export → read, cancel, retry, confirm, download).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from openapi_spec_validator import validate
from sqlalchemy import Engine, text

from shared.jobs.live import MemoryLiveStore, RedisLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from shared.tables.columns import TABLES
from shared.timefmt import parse_iso
from web import create_app
from web.queue import CeleryPublisher

# Per operation; the coverage phase adds its own deterministic cases on top.
MAX_EXAMPLES = 100
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
    database=None,
)


@dataclass
class Target:
    """The app under test and the tokens of its account and operator."""

    app: Flask
    token: str
    ops_token: str
    account_name: str

    def headers(self, path: str) -> dict[str, str]:
        """The caller's token for a path: ops routes get the ops token."""
        token = self.ops_token if path.startswith("/api/v1/ops/") else self.token
        return {"Authorization": f"Bearer {token}"}


def make_target(settings: Settings, engine: Engine, person: Account, token: str) -> Target:
    operator = create_account(engine, f"operator-{uuid.uuid4().hex[:6]}")
    ops_token = issue_token(engine, operator.id, role="ops")
    app = create_app(
        settings,
        live=RedisLiveStore.from_url(settings.redis_url, prefix=settings.redis_prefix),
        publisher=CeleryPublisher(settings.redis_url, settings.jobs_queue),
    )
    return Target(app, token, ops_token, person.name)


@pytest.fixture
def target(settings: Settings, engine: Engine, account: tuple[Account, str]) -> Iterator[Target]:
    person, token = account
    found = make_target(settings, engine, person, token)
    Tokens.current = found
    yield found
    Tokens.current = None
    found.app.extensions["ferry"].engine.dispose()


def _document_app() -> Flask:
    # Serving the document needs neither the database nor Redis: a bare app will do.
    return create_app(Settings(), live=MemoryLiveStore(), publisher=RecordingPublisher())


# The document the app serves, loaded the way Schemathesis loads any WSGI app's; each
# test then calls its own app, on its own database.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", _document_app())


@schema.hook("map_case")
def keep_data_rules(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> schemathesis.Case:
    """Bring schema-valid cases in line with the rules that depend on data, which no JSON
    Schema can state, so that "valid data is accepted" stays checked everywhere else:
    `to` after `from`, an `account` filter naming an account that exists, a `cursor`
    that this API gave, a table import's `mapping` and a table export's `columns` naming
    columns of the table, a `timezone` the zone database knows, and no `modified` when
    confirming (only a rollback job takes it)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    body, query = case.body, case.query
    if isinstance(body, dict) and body.get("from") and body.get("to"):
        start, end = parse_iso(body["from"]), parse_iso(body["to"])
        if end < start:
            body["from"], body["to"] = body["to"], body["from"]
        elif end == start:
            del body["to"]
    # A table's column names are data, not a shape a JSON Schema states: take real ones,
    # as many as were generated (zone names are taken real below, for every body).
    if isinstance(body, dict) and body.get("columns") and body.get("table") in TABLES:
        names = TABLES[body["table"]].names
        body["columns"] = list(names[: len(body["columns"])])
    if isinstance(body, dict) and case.path.endswith("/confirm"):
        # `modified` is for a rollback job only (422 for any other): which kind of job an
        # id names is data, so a generated confirm leaves it out.
        body.pop("modified", None)
    current = Tokens.current
    for part in (body, query):
        if isinstance(part, dict) and part.get("account") and current is not None:
            part["account"] = current.account_name
    if isinstance(query, dict):
        query.pop("cursor", None)
    if isinstance(body, dict):
        if "mapping" in body:
            body["mapping"] = {} if isinstance(body["mapping"], dict) else "{}"
        if "timezone" in body:
            body["timezone"] = "Europe/Berlin"
    return case


class Tokens:
    """Schemathesis's way to authenticate a case: the token of the test running now.

    Going through an auth provider (rather than fixed headers) lets Schemathesis take the
    token away or spoil it when it checks that an operation refuses bad credentials.
    """

    current: Target | None = None

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> Target | None:
        return Tokens.current

    def set(self, case: schemathesis.Case, data: Target, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), **data.headers(case.path)}


schema.auth(refresh_interval=None)(Tokens)


def test_given_the_app_when_its_document_is_fetched_without_a_token_then_valid_openapi_3_1(
    target: Target,
) -> None:
    """Given the app, When /api/v1/openapi.json is fetched with no token, Then 200 and a
    document that openapi-spec-validator accepts as OpenAPI 3.1, naming every route."""
    response = target.app.test_client().get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (method, rule.rule.replace("<uuid:job_id>", "{job_id}"))
        for rule in target.app.url_map.iter_rules()
        # The HTML pages (SPEC 14) are no part of the API's document.
        if rule.endpoint != "static" and not rule.endpoint.startswith("pages.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert described == served


@schema.parametrize()
@hypothesis.settings(FUZZ_SETTINGS)
def test_api_conforms_to_its_document(case: schemathesis.Case, target: Target) -> None:
    """Every generated request (examples, coverage and fuzzing phases) gets an answer the
    document declares, and never a server error other than the documented 503."""
    case.call_and_validate(app=target.app)


def test_api_conforms_to_its_document_through_linked_calls(target: Target, engine: Engine) -> None:
    """The stateful phase: sequences that follow the document's links (a created job is
    read, cancelled, retried, confirmed, downloaded) answer as declared at every step."""
    # A stream of a job that never ends would never end; its calls are fuzzed above.
    machine = schema.exclude(path_regex=r"/events$").as_state_machine()

    class Linked(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"app": target.app}

        def teardown(self) -> None:
            # Each sequence starts from no jobs, so a replayed one meets what the first met.
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM job_events"))
                conn.execute(text("DELETE FROM jobs"))
            super().teardown()

    Linked.run(settings=hypothesis.settings(FUZZ_SETTINGS, max_examples=40, stateful_step_count=8))
