"""Smoke: the three processes start and an export goes through over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from tests.e2e.harness import Stack


def test_export_over_http_succeeds(
    stack: Stack, settings: Settings, account: tuple[Account, str]
) -> None:
    person, token = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=3,
        samples_per_day=500,
        seed=1,
        start=datetime(2024, 12, 29, tzinfo=UTC),
    )
    stack.start_web()
    stack.start_worker()
    api = stack.api(token)

    response = api.post("/exports", json={"type": "archive"})
    assert response.status_code == 202, response.text
    job = api.wait_status(response.json()["job"]["id"], "succeeded", timeout=60)

    assert job["progress"]["overall"] == 1.0
    download = api.get(f"/jobs/{job['id']}/download")
    assert download.status_code == 200
    assert download.content[:2] == b"PK"
