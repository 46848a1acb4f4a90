"""Tables (SQLAlchemy Core). Data tables are built from the field tables in `records`.

This metadata is what the migrations must produce; a test compares the two. Production
code never calls `create_all`: schema changes go through `migrations/`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    desc,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.types import TypeEngine, UserDefinedType

from shared.fields import (
    ITEM_BASE_FIELDS,
    PLACE_FIELDS,
    SAMPLE_FIELDS,
    TRIP_FIELDS,
    VISIT_FIELDS,
    Field,
    Kind,
    Now,
)

metadata = MetaData(
    naming_convention={
        "pk": "%(table_name)s_pkey",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "ck": "%(table_name)s_%(constraint_name)s_check",
        "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
    }
)

_TYPES: dict[Kind, TypeEngine[Any]] = {
    Kind.UUID: UUID(as_uuid=False),
    Kind.TEXT: Text(),
    Kind.INT: Integer(),
    Kind.SMALLINT: SmallInteger(),
    Kind.FLOAT: Double(),
    Kind.BOOL: Boolean(),
    Kind.DATE: DateTime(timezone=True),
}


class Xid8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id (`xid8`), as its text."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        """The type's name in DDL."""
        return "xid8"


# So that reflection (the migrations test) reads `xid8` columns back as this type.
ischema_names.setdefault("xid8", Xid8)


def _written_xid() -> Column[str]:
    """The transaction that last wrote the row (change tracking, `shared/store/changes.py`).

    The default is evaluated per inserted row; a BEFORE UPDATE trigger refreshes it. The
    triggers (and the statement-level AFTER DELETE ones that fill `deleted_records`) are
    created by migration 0005.
    """
    return Column(
        "written_xid", Xid8(), nullable=False, server_default=text("pg_current_xact_id()")
    )


def _created_xid() -> Column[str]:
    """The transaction that inserted the row (import undo, `shared/undo/`): NULL for rows
    older than migration 0007."""
    return Column("created_xid", Xid8(), server_default=text("pg_current_xact_id()"))


def _tz() -> DateTime:
    return DateTime(timezone=True)


def _server_default(value: object) -> Any:
    """A field's default as the column's DEFAULT clause."""
    if isinstance(value, Now):
        return text("now()")
    if isinstance(value, bool):
        return text("true" if value else "false")
    if isinstance(value, int | float):
        return text(repr(value))
    return text("'" + str(value).replace("'", "''") + "'")


def _columns(fields: tuple[Field, ...], *, part: bool = False) -> list[Column[object]]:
    """Columns of a record kind, except `id` (part of the primary key, declared apart).

    A field the Arc apps need is NOT NULL with the apps' default. The visit and trip
    parts (`part`) share one table, so theirs stay nullable there; `_required_unless`
    says which an item of each kind must have.
    """
    return [
        Column(
            f.column,
            _TYPES[f.kind],
            nullable=part or not f.always,
            server_default=None if part or f.default is None else _server_default(f.default),
        )
        for f in fields
        if f.column != "id"
    ]


def _finite(column: str) -> str:
    # PostgreSQL orders NaN above every number, so this refuses NaN and both infinities.
    return f"{column} > '-Infinity' AND {column} < 'Infinity'"


def _field_checks(fields: tuple[Field, ...]) -> list[CheckConstraint]:
    """What the field table says about values: enums, and finite doubles where the apps
    need a value (the export would otherwise have to leave the key out)."""
    checks = []
    for f in fields:
        if f.choices is not None:
            runs = " OR ".join(
                f"{f.column} BETWEEN {low} AND {high}" for low, high in _runs(f.choices)
            )
            checks.append(CheckConstraint(runs, name=f.column))
        if f.kind is Kind.FLOAT and f.default is not None:
            checks.append(CheckConstraint(_finite(f.column), name=f"{f.column}_finite"))
    return checks


def _runs(values: frozenset[int]) -> list[tuple[int, int]]:
    """Contiguous runs of an enum's values: a few BETWEENs test faster than a long IN."""
    runs: list[tuple[int, int]] = []
    for value in sorted(values):
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _required_unless(exempt: str, fields: tuple[Field, ...], name: str) -> CheckConstraint:
    """An item of one kind (visit or trip) has every value its part needs."""
    present = " AND ".join(f"{f.column} IS NOT NULL" for f in fields if f.always)
    return CheckConstraint(f"{exempt} OR ({present})", name=name)


def _account_id(*, references: bool = True) -> Column[str]:
    if not references:
        return Column("account_id", UUID(as_uuid=False), primary_key=True)
    return Column(
        "account_id",
        UUID(as_uuid=False),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    )


# TimelineItemVisit: confirmedPlace only with a placeId; uncertainPlace true exactly when
# not confirmed, or false with a placeId.
VISIT_PLACE_FLAGS = (
    "NOT is_visit OR ((NOT confirmed_place OR place_id IS NOT NULL)"
    " AND ((uncertain_place AND NOT confirmed_place)"
    " OR (NOT uncertain_place AND place_id IS NOT NULL)))"
)
# TimelineItemVisit: both coordinates or neither, and not "null island" (0, 0).
VISIT_COORDINATES = (
    "NOT is_visit OR ((latitude IS NULL) = (longitude IS NULL)"
    " AND NOT (latitude = 0 AND longitude = 0))"
)
# TimelineItemTrip: uncertain, or a classified or confirmed type; never uncertain with a
# confirmed type.
TRIP_ACTIVITY_FLAGS = (
    "is_visit OR ((uncertain_activity_type OR classified_activity_type IS NOT NULL"
    " OR confirmed_activity_type IS NOT NULL)"
    " AND NOT (uncertain_activity_type AND confirmed_activity_type IS NOT NULL))"
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", _tz(), nullable=False, server_default=text("now()")),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    _account_id(),
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("role", Text, nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", _tz(), nullable=False, server_default=text("now()")),
    Column("last_used_at", _tz()),
    Column("revoked_at", _tz()),
    CheckConstraint("role IN ('user', 'ops')", name="role"),
)

places = Table(
    "places",
    metadata,
    _account_id(),
    Column("id", UUID(as_uuid=False), primary_key=True),
    *_columns(PLACE_FIELDS),
    _written_xid(),
    _created_xid(),
    CheckConstraint("name <> ''", name="name_not_empty"),
    *_field_checks(PLACE_FIELDS),
    CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude"),
    CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude"),
    Index("places_account_written_idx", "account_id", "written_xid"),
)

timeline_items = Table(
    "timeline_items",
    metadata,
    _account_id(),
    Column("id", UUID(as_uuid=False), primary_key=True),
    *_columns(ITEM_BASE_FIELDS),
    *_columns(VISIT_FIELDS + TRIP_FIELDS, part=True),
    _written_xid(),
    _created_xid(),
    CheckConstraint("end_date >= start_date", name="end_after_start"),
    CheckConstraint("previous_item_id <> id", name="previous_not_self"),
    CheckConstraint("next_item_id <> id", name="next_not_self"),
    CheckConstraint("previous_item_id <> next_item_id", name="previous_not_next"),
    CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude"),
    CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude"),
    # The Arc apps' own rules (LocoKit2 Database+Schema.swift): rows that break them are
    # dropped there without a word, so Ferry never holds one.
    *_field_checks(ITEM_BASE_FIELDS + VISIT_FIELDS + TRIP_FIELDS),
    _required_unless("NOT is_visit", VISIT_FIELDS, "visit_required"),
    _required_unless("is_visit", TRIP_FIELDS, "trip_required"),
    CheckConstraint(VISIT_PLACE_FLAGS, name="visit_place_flags"),
    CheckConstraint(VISIT_COORDINATES, name="visit_coordinates"),
    CheckConstraint("custom_title <> ''", name="custom_title_not_empty"),
    CheckConstraint(TRIP_ACTIVITY_FLAGS, name="trip_activity_flags"),
    ForeignKeyConstraint(
        ["account_id", "previous_item_id"],
        ["timeline_items.account_id", "timeline_items.id"],
        name="timeline_items_previous_item_fkey",
    ),
    ForeignKeyConstraint(
        ["account_id", "next_item_id"],
        ["timeline_items.account_id", "timeline_items.id"],
        name="timeline_items_next_item_fkey",
    ),
    ForeignKeyConstraint(
        ["account_id", "place_id"],
        ["places.account_id", "places.id"],
        name="timeline_items_place_fkey",
    ),
    Index("timeline_items_account_start_idx", "account_id", "start_date"),
    Index("timeline_items_account_written_idx", "account_id", "written_xid"),
    # The referencing side of the three foreign keys above: deleting an item or a place
    # looks for rows still pointing at it (migration 0010).
    Index(
        "timeline_items_account_previous_idx",
        "account_id",
        "previous_item_id",
        postgresql_where=text("previous_item_id IS NOT NULL"),
    ),
    Index(
        "timeline_items_account_next_idx",
        "account_id",
        "next_item_id",
        postgresql_where=text("next_item_id IS NOT NULL"),
    ),
    Index(
        "timeline_items_account_place_idx",
        "account_id",
        "place_id",
        postgresql_where=text("place_id IS NOT NULL"),
    ),
)

# samples has no foreign keys: each one's per-row check costs more than the row itself
# (COPY of 1 M rows: 11.8 s with no foreign key, 19.2 s with the one to accounts, 23.7 s
# with both). The import and the seed, Ferry's only writers of samples, resolve both
# references themselves (the import nulls a missing item with a warning). docs/design.md.
samples = Table(
    "samples",
    metadata,
    _account_id(references=False),
    Column("id", UUID(as_uuid=False), primary_key=True),
    *_columns(SAMPLE_FIELDS),
    *_field_checks(SAMPLE_FIELDS),
    _written_xid(),
    _created_xid(),
    CheckConstraint("moving_state BETWEEN -1 AND 1", name="moving_state"),
    CheckConstraint("recording_state BETWEEN 0 AND 5", name="recording_state"),
    CheckConstraint("latitude BETWEEN -90 AND 90", name="latitude"),
    CheckConstraint("longitude BETWEEN -180 AND 180", name="longitude"),
    Index("samples_account_date_idx", "account_id", "date"),
    Index("samples_account_item_idx", "account_id", "timeline_item_id"),
    # Identical keys within one import's transaction: btree deduplication keeps this
    # index small, and every insert lands on its rightmost page.
    Index("samples_account_written_idx", "account_id", "written_xid"),
)

# One row per deleted record (filled by statement-level AFTER DELETE triggers), so an
# incremental export can list `deletedIds` and a resumed one can tell which bucket lost a
# record. No foreign key: the rows of a deleted account pass through here too, and the
# sweeper prunes what no export can need any more.
deleted_records = Table(
    "deleted_records",
    metadata,
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("kind", Text, nullable=False),
    Column("id", UUID(as_uuid=False), nullable=False),
    # The record's bucket key when it was deleted: an item's start date, a sample's date
    # (a place's bucket comes from its id).
    Column("bucket_at", _tz()),
    Column("deleted_xid", Xid8(), nullable=False, server_default=text("pg_current_xact_id()")),
    Column("deleted_at", _tz(), nullable=False, server_default=text("now()")),
    CheckConstraint("kind IN ('places', 'items', 'samples')", name="kind"),
    Index("deleted_records_account_kind_xid_idx", "account_id", "kind", "deleted_xid"),
)

jobs = Table(
    "jobs",
    metadata,
    _account_id(),
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("type", Text, nullable=False),
    Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", Text, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    # The attempt the current run began with (1, or the attempt an operator restart
    # queued): FERRY_MAX_ATTEMPTS counts from here.
    Column("first_attempt", Integer, nullable=False, server_default=text("1")),
    Column("idempotency_key", Text),
    Column("created_at", _tz(), nullable=False, server_default=text("now()")),
    # Every write moves this; the sweeper ages unconfirmed imports by it.
    Column("updated_at", _tz(), nullable=False, server_default=text("now()")),
    # When the job was last put on the queue; the sweeper re-publishes stale ones.
    Column("queued_at", _tz()),
    # A retry with backoff is not claimed before this.
    Column("not_before", _tz()),
    Column("started_at", _tz()),
    Column("heartbeat_at", _tz()),
    Column("finished_at", _tz()),
    Column("cancel_requested_at", _tz()),
    Column("worker", Text),
    Column("progress", JSONB),
    Column("checkpoint", JSONB),
    Column("error", JSONB),
    Column("result", JSONB),
    Column("preview", JSONB),
    UniqueConstraint("id", name="jobs_id_key"),
    UniqueConstraint("account_id", "idempotency_key", name="jobs_idempotency_key"),
    CheckConstraint(
        "status IN ('queued', 'running', 'awaiting_confirmation', 'cancelling',"
        " 'cancelled', 'failed', 'succeeded')",
        name="status",
    ),
    Index("jobs_account_created_idx", "account_id", "created_at"),
    # Listings are newest first with keyset paging: each index ends in (created_at, id)
    # descending, after the filters an operator gives (migration 0009).
    Index("jobs_created_idx", desc("created_at"), desc("id")),
    Index("jobs_status_created_idx", "status", desc("created_at"), desc("id")),
    Index("jobs_status_type_created_idx", "status", "type", desc("created_at"), desc("id")),
    Index(
        "jobs_status_code_created_idx",
        "status",
        text("(error ->> 'code')"),
        desc("created_at"),
        desc("id"),
    ),
    Index(
        "jobs_account_status_created_idx", "account_id", "status", desc("created_at"), desc("id")
    ),
    Index("jobs_failed_finished_idx", "finished_at", postgresql_where=text("status = 'failed'")),
)

job_events = Table(
    "job_events",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "job_id", UUID(as_uuid=False), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", _tz(), nullable=False, server_default=text("now()")),
    Column("kind", Text, nullable=False),
    Column("detail", JSONB),
    Index("job_events_job_idx", "job_id", "id"),
)

# Before-images of the rows an import replaced (shared/undo/recorder.py), written in the
# import's apply transaction; the sweeper purges them after the batch's rollback_until.
# No foreign key to jobs: the per-row check would cost the import, and the purge finds
# rows of vanished jobs too.
import_undo_rows = Table(
    "import_undo_rows",
    metadata,
    Column("job_id", UUID(as_uuid=False), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("before", JSONB, nullable=False),
    CheckConstraint("kind IN ('places', 'items', 'samples')", name="kind"),
)

# What happened to a succeeded import after it finished (no row: still undoable until
# rollback_until). One row per import job: a batch is rolled back at most once.
import_batches = Table(
    "import_batches",
    metadata,
    Column(
        "job_id",
        UUID(as_uuid=False),
        ForeignKey("jobs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("rolled_back_at", _tz()),
    Column("rollback_job_id", UUID(as_uuid=False)),
    Column("undo_purged_at", _tz()),
)

DATA_TABLES = (places, timeline_items, samples)
