"""Undo end to end (SPEC 9, 10, 13): real `ferry web` and `ferry worker` processes and the
`ferry` CLI, on Postgres and Redis.

A person imports an archive into their account, sees it in the import history, and rolls
it back over HTTP or with the CLI; a row they changed after the import is shown before
anything is undone, and kept or reverted as they choose.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from shared.settings import Settings
from shared.store.accounts import Account
from tests.e2e.harness import ROOT, Stack
from tests.e2e.import_helpers import (
    KINDS,
    TERMINAL,
    assert_same_records,
    export_zip,
    new_account,
    records,
    row_counts,
    seed,
    start_import,
)

pytestmark = pytest.mark.e2e
EMPTY = dict.fromkeys(KINDS, 0)


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


def test_given_an_import_over_http_when_rolled_back_then_the_account_is_as_before_and_once_only(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    source, source_token = account
    seed(settings, source.id, days=3, per_day=120)
    person, token = new_account(engine, "undo-http")
    seed(settings, person.id, days=2, per_day=60, s=9)
    before = records(settings, person.id)
    stack.start_web()
    stack.start_worker()
    content = export_zip(stack.api(source_token))
    api = stack.api(token)
    imported = api.wait_status(start_import(api, content, confirm="true"), TERMINAL)
    assert imported["status"] == "succeeded", imported

    history = api.get("/imports")
    assert history.status_code == 200, history.text
    [record] = history.json()["imports"]
    assert record["id"] == imported["id"] and record["rollback_until"] is not None

    response = api.post(f"/imports/{imported['id']}/rollback")

    assert response.status_code == 202, response.text
    rollback = api.wait_status(response.json()["job"]["id"], TERMINAL)
    assert rollback["status"] == "succeeded", rollback
    assert rollback["progress"]["overall"] == 1
    assert_same_records(records(settings, person.id), before)
    again = api.post(f"/imports/{imported['id']}/rollback")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    [record] = api.get("/imports").json()["imports"]
    assert record["rolled_back_at"] is not None
    assert record["rollback_job"] == rollback["id"]


def test_given_an_import_with_the_cli_when_listed_and_rolled_back_then_it_is_undone(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> None:
    source, _ = account
    seed(settings, source.id, days=3, per_day=120)
    person, _ = new_account(engine, "undo-cli")
    stack.start_worker()
    out = tmp_path / "export.zip"
    exported = _ferry(stack, "export", source.name, "--out", str(out))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    imported = _ferry(stack, "import", person.name, str(out))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    import_id = imported.stdout.split("import ", 1)[1].split()[0]

    listed = _ferry(stack, "imports", "list", person.name)

    assert listed.returncode == 0, listed.stdout + listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(import_id)]
    assert "archive" in line and "succeeded" in line and "export.zip" in line

    rolled = _ferry(stack, "imports", "rollback", import_id)

    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "restore" in rolled.stdout and "100.0%" in rolled.stdout, rolled.stdout
    assert "rolled back: deleted" in rolled.stdout
    assert row_counts(engine, person.id) == EMPTY
    again = _ferry(stack, "imports", "rollback", import_id)
    assert again.returncode == 1
    assert "conflict" in again.stderr


def test_given_a_row_changed_after_the_import_when_rolled_back_with_the_cli_then_it_waits(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str], tmp_path: Path
) -> None:
    """No `--modified` and no terminal to ask on: the rollback waits at its preview; the
    operator confirms it with `ferry jobs confirm --modified revert`."""
    source, _ = account
    seed(settings, source.id, days=2, per_day=100)
    person, _ = new_account(engine, "undo-modified")
    stack.start_worker()
    out = tmp_path / "export.zip"
    assert _ferry(stack, "export", source.name, "--out", str(out)).returncode == 0
    imported = _ferry(stack, "import", person.name, str(out))
    import_id = imported.stdout.split("import ", 1)[1].split()[0]
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE places SET name = 'Renamed by hand' WHERE id = (SELECT id FROM places"
                " WHERE account_id = :a ORDER BY id LIMIT 1)"
            ),
            {"a": person.id},
        )

    waiting = _ferry(stack, "imports", "rollback", import_id)

    assert waiting.returncode == 0, waiting.stdout + waiting.stderr
    assert "1 row(s) changed since the import" in waiting.stdout, waiting.stdout
    job_id = waiting.stdout.split("rollback ", 1)[1].split()[0]
    assert f"ferry jobs confirm {job_id} --modified keep|revert" in waiting.stdout
    assert row_counts(engine, person.id) != EMPTY
    confirmed = _ferry(stack, "jobs", "confirm", job_id, "--modified", "revert")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    watched = _ferry(stack, "jobs", "watch", job_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert row_counts(engine, person.id) == EMPTY
