"""Migrations (SPEC 3): they build exactly the schema the code declares, both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from shared.jobs.store import JobStore
from shared.store.accounts import create_account
from shared.store.db import libpq_dsn, make_engine
from shared.store.migrate import alembic_config, upgrade
from shared.store.schema import metadata


def _differences(engine: Engine) -> list[Any]:
    """What autogenerate would change to make the database match `shared.store.schema.metadata`."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.fixture
def empty_database_url(database_url: str) -> Iterator[str]:
    """The name of a database that does not exist yet; dropped afterwards."""
    url = make_url(database_url)
    fresh = url.set(database=f"{url.database}_fresh").render_as_string(hide_password=False)
    admin = libpq_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    yield fresh
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(fresh).database}" WITH (FORCE)')


def test_given_no_database_when_upgraded_then_the_schema_is_exactly_the_declared_metadata(
    empty_database_url: str,
) -> None:
    created = upgrade(empty_database_url)

    engine = make_engine(empty_database_url)
    try:
        assert created
        assert _differences(engine) == []
        assert _tables(engine) == set(metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_given_a_migrated_database_when_downgraded_to_base_then_upgraded_then_it_works_again(
    database_url: str,
) -> None:
    config = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        command.downgrade(config, "base")
        assert _tables(engine) <= {"alembic_version"}

        command.upgrade(config, "head")

        assert _differences(engine) == []
        # The rebuilt schema takes a job through its life.
        person = create_account(engine, "after-downgrade")
        store = JobStore(engine)
        job, _ = store.create(account_id=person.id, type="export.archive", params={})
        claimed = store.claim(job.id, worker="w")
        assert claimed is not None
        store.fail(job.id, claimed.attempt, error={"code": "internal", "message": "x"})
        assert [e.kind for e in store.history(job.id)] == ["created", "claimed", "failed"]
    finally:
        engine.dispose()


def test_given_the_migrations_when_listed_then_they_form_one_line_with_one_head(
    database_url: str,
) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(database_url))

    assert len(scripts.get_heads()) == 1
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    assert current == tuple(scripts.get_heads())


def test_given_rows_from_before_change_tracking_when_migrated_then_they_count_as_old(
    database_url: str,
) -> None:
    """Migration 0005 gives existing rows written_xid 0, which every snapshot has seen, so
    the first incremental export after it does not hold them as new; from then on writes
    are tracked."""
    config = alembic_config(database_url)
    command.downgrade(config, "-1")
    engine = make_engine(database_url)
    try:
        person = create_account(engine, "before-0005")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved)"
                    " VALUES (:a, gen_random_uuid(), 'Old', 1, 2, now())"
                ),
                {"a": person.id},
            )
        command.upgrade(config, "head")
        with engine.begin() as conn:
            old = conn.execute(
                text(
                    "SELECT written_xid::text, pg_visible_in_snapshot(written_xid,"
                    " pg_current_snapshot()) FROM places WHERE account_id = :a"
                ),
                {"a": person.id},
            ).one()
            conn.execute(
                text("UPDATE places SET name = 'New' WHERE account_id = :a"), {"a": person.id}
            )
            mine = conn.execute(text("SELECT pg_current_xact_id()::text")).scalar_one()
            updated = conn.execute(
                text("SELECT written_xid::text FROM places WHERE account_id = :a"),
                {"a": person.id},
            ).scalar_one()
    finally:
        engine.dispose()

    assert tuple(old) == ("0", True)
    assert updated == mine
