"""Migrations (SPEC 3): they build exactly the schema the code declares, both ways."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.rows import dict_row
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


# --- 0004: what the Arc apps require ------------------------------------------------------


def _rows(conn: psycopg.Connection, sql: str, *params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(sql, params)
        return list(cursor)


def test_given_rows_the_arc_apps_would_refuse_when_migrated_to_0004_then_they_are_repaired(
    database_url: str,
) -> None:
    """A deployment's data from before 0004 (nulls, `ferry seed`'s activity type 7, flags
    that break the apps' rules) is repaired the way the apps would, then constrained."""
    config = alembic_config(database_url)
    command.downgrade(config, "0003")
    engine = make_engine(database_url)
    person = create_account(engine, "before-0004")
    engine.dispose()
    place, gone = str(uuid.uuid4()), str(uuid.uuid4())
    visits = [str(uuid.uuid4()) for _ in range(4)]
    trips = [str(uuid.uuid4()) for _ in range(3)]
    samples = [str(uuid.uuid4()) for _ in range(2)]
    saved = datetime(2024, 5, 1, tzinfo=UTC)
    with psycopg.connect(libpq_dsn(database_url)) as conn:
        conn.execute(
            "INSERT INTO places (account_id, id, name, latitude, longitude, last_saved,"
            " radius_mean) VALUES (%s, %s, 'Home', 1, 2, %s, 'NaN')",
            (person.id, place, saved),
        )
        items = (
            # visits: confirmed without a place; uncertain and confirmed; one coordinate;
            # (0, 0) and an empty title
            (visits[0], True, None, True, False, 1.0, 2.0, None, None, None),
            (visits[1], True, place, True, True, 1.0, 2.0, None, None, None),
            (visits[2], True, None, None, False, 1.0, None, None, None, None),
            (visits[3], True, place, False, False, 0.0, 0.0, None, None, None),
            # trips: type 7 and not uncertain; uncertain with a confirmed type; nothing
            (trips[0], False, None, None, None, None, None, 7, None, False),
            (trips[1], False, None, None, None, None, None, 2, 5, True),
            (trips[2], False, None, None, None, None, None, None, None, None),
        )
        for item_id, is_visit, place_id, confirmed, uncertain, lat, lon, cls, conf, unc in items:
            conn.execute(
                "INSERT INTO timeline_items (account_id, id, is_visit, start_date, end_date,"
                " last_saved, place_id, confirmed_place, uncertain_place, latitude, longitude,"
                " classified_activity_type, confirmed_activity_type, uncertain_activity_type,"
                " custom_title) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s)",
                (person.id, item_id, is_visit, saved, saved, saved if is_visit else None,
                 place_id, confirmed, uncertain, lat, lon, cls, conf, unc,
                 "" if item_id == visits[3] else None),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO timeline_items (account_id, id, is_visit, start_date, end_date,"
            " deleted, distance, speed, uncertain_activity_type)"
            " VALUES (%s, %s, false, %s, %s, true, 1, 1, true)",
            (person.id, gone, saved, saved),
        )
        conn.execute(
            "INSERT INTO samples (account_id, id, date, classified_activity_type,"
            " confirmed_activity_type, timeline_item_id) VALUES (%s, %s, %s, 7, 2, %s),"
            " (%s, %s, %s, 4, NULL, %s)",
            (person.id, samples[0], saved, gone, person.id, samples[1], saved, trips[1]),
        )
        conn.commit()

    command.upgrade(config, "head")

    with psycopg.connect(libpq_dsn(database_url)) as conn:
        [home] = _rows(conn, "SELECT * FROM places WHERE id = %s", place)
        assert (home["radius_mean"], home["radius_sd"], home["is_stale"]) == (60.0, 0.0, True)
        assert (home["visit_count"], home["visit_days"], home["source"]) == (0, 0, "LocoKit2")
        assert home["foursquare_category_v2_id"] is None
        found = {
            str(r["id"]): r
            for r in _rows(conn, "SELECT * FROM timeline_items WHERE account_id = %s", person.id)
        }
        for row in found.values():
            assert (row["source"], row["source_version"]) == ("LocoKit2", "9.0.0")
            assert (row["disabled"], row["locked"], row["samples_changed"]) == (False, False, False)
            assert row["last_saved"] is not None
            assert (
                row["visit_last_saved" if row["is_visit"] else "trip_last_saved"]
                == (row["last_saved"])
            )
        flags = [(found[v]["confirmed_place"], found[v]["uncertain_place"]) for v in visits]
        assert flags == [(False, True), (True, False), (False, True), (False, False)]
        assert (found[visits[0]]["radius_mean"], found[visits[0]]["radius_sd"]) == (50.0, 10.0)
        assert (found[visits[2]]["latitude"], found[visits[2]]["longitude"]) == (None, None)
        assert (found[visits[3]]["latitude"], found[visits[3]]["custom_title"]) == (None, None)
        types = [
            (
                found[t]["classified_activity_type"],
                found[t]["confirmed_activity_type"],
                found[t]["uncertain_activity_type"],
            )
            for t in trips
        ]
        assert types == [(None, None, True), (2, 5, False), (None, None, True)]
        assert (found[trips[2]]["distance"], found[trips[2]]["speed"]) == (0.0, 0.0)
        by_id = {
            str(r["id"]): r
            for r in _rows(conn, "SELECT * FROM samples WHERE account_id = %s", person.id)
        }
        first, second = by_id[samples[0]], by_id[samples[1]]
        assert (first["classified_activity_type"], first["confirmed_activity_type"]) == (None, 2)
        assert first["timeline_item_id"] is None  # the apps keep no sample on a deleted item
        assert str(second["timeline_item_id"]) == trips[1]
        assert (first["source"], first["moving_state"], first["recording_state"]) == (
            "LocoKit2",
            -1,
            0,
        )
        # From now on the database refuses what the apps would.
        for statement in (
            "UPDATE samples SET classified_activity_type = 7",
            "UPDATE timeline_items SET uncertain_place = false, place_id = NULL WHERE is_visit",
            "UPDATE timeline_items SET uncertain_activity_type = true, confirmed_activity_type"
            " = 3 WHERE NOT is_visit",
            "UPDATE places SET radius_sd = NULL",
            "UPDATE timeline_items SET trip_last_saved = NULL WHERE NOT is_visit",
        ):
            with pytest.raises(psycopg.errors.IntegrityError):
                conn.execute(statement)
            conn.rollback()


# --- 0005: change tracking ---------------------------------------------------------


def test_given_rows_from_before_change_tracking_when_migrated_then_they_count_as_old(
    database_url: str,
) -> None:
    """Migration 0005 gives existing rows written_xid 0, which every snapshot has seen, so
    the first incremental export after it does not hold them as new; from then on writes
    are tracked."""
    config = alembic_config(database_url)
    command.downgrade(config, "0004")
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
