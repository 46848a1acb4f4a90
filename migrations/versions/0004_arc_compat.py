"""arc compatibility: what the Arc apps require is NOT NULL, defaulted and checked

The Arc apps (LocoKit2, read at commit 68c0a86) cannot decode a record that lacks one of
their non-optional fields, and their database drops rows that break its CHECK rules. This
revision adds the columns of newer archive versions (`foursquare_category_v2_id`,
`samples_changed`, `visit_last_saved`, `trip_last_saved`), repairs existing rows the way
the apps themselves would, then makes the wrong states impossible:

- a null where the apps need a value takes the apps' default (the Swift property's
  initial value; where Swift has none, the value the apps' importer of old data uses);
- an activity type outside LocoKit2's `ActivityType` enum becomes null (what the apps'
  importer does with a type it does not know);
- visit place flags and trip activity flags are set so the apps' rules hold (the apps'
  own `clearPlace`/`setUncertainty`/trip update logic); a visit with one coordinate, or
  at (0, 0), loses both (the apps' migration of "null island"); an empty custom title is
  no title;
- a visit's and a trip's own `lastSaved` start as the item's, which is what Ferry wrote
  for them until now;
- a sample on a deleted item loses that link (the apps refuse such a sample, and their
  own migration orphaned them the same way).

The values are written out here rather than taken from `shared.fields`, so that this
revision keeps doing what it did when the field table changes later.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ACTIVITY_OK = "({c} BETWEEN -1 AND 6 OR {c} BETWEEN 20 AND 35 OR {c} BETWEEN 50 AND 61)"


def _finite(column: str) -> str:
    return f"{column} > '-Infinity' AND {column} < 'Infinity'"


def _not_finite(column: str) -> str:
    return f"NOT ({_finite(column)})"


# (table, column, SQL default) of every column that becomes NOT NULL with a default.
_DEFAULTS = (
    ("places", "radius_mean", "60.0"),
    ("places", "radius_sd", "0.0"),
    ("places", "is_stale", "true"),
    ("places", "visit_count", "0"),
    ("places", "visit_days", "0"),
    ("places", "source", "'LocoKit2'"),
    ("places", "last_saved", "now()"),
    ("timeline_items", "source", "'LocoKit2'"),
    ("timeline_items", "source_version", "'9.0.0'"),
    ("timeline_items", "disabled", "false"),
    ("timeline_items", "deleted", "false"),
    ("timeline_items", "locked", "false"),
    ("timeline_items", "samples_changed", "false"),
    ("timeline_items", "last_saved", "now()"),
    ("samples", "source", "'LocoKit2'"),
    ("samples", "source_version", "'9.0.0'"),
    ("samples", "moving_state", "-1"),
    ("samples", "recording_state", "0"),
    ("samples", "disabled", "false"),
    ("samples", "last_saved", "now()"),
)
_ALWAYS_NOT_NULL = {("places", "last_saved")}  # NOT NULL since 0001; only the default is new

_CHECKS = (
    ("places", "places_radius_mean_finite_check", _finite("radius_mean")),
    ("places", "places_radius_sd_finite_check", _finite("radius_sd")),
    ("timeline_items", "timeline_items_radius_mean_finite_check", _finite("radius_mean")),
    ("timeline_items", "timeline_items_radius_sd_finite_check", _finite("radius_sd")),
    ("timeline_items", "timeline_items_distance_finite_check", _finite("distance")),
    ("timeline_items", "timeline_items_speed_finite_check", _finite("speed")),
    (
        "timeline_items",
        "timeline_items_classified_activity_type_check",
        _ACTIVITY_OK.format(c="classified_activity_type"),
    ),
    (
        "timeline_items",
        "timeline_items_confirmed_activity_type_check",
        _ACTIVITY_OK.format(c="confirmed_activity_type"),
    ),
    (
        "timeline_items",
        "timeline_items_visit_required_check",
        "NOT is_visit OR (radius_mean IS NOT NULL AND radius_sd IS NOT NULL"
        " AND confirmed_place IS NOT NULL AND uncertain_place IS NOT NULL"
        " AND visit_last_saved IS NOT NULL)",
    ),
    (
        "timeline_items",
        "timeline_items_trip_required_check",
        "is_visit OR (distance IS NOT NULL AND speed IS NOT NULL"
        " AND uncertain_activity_type IS NOT NULL AND trip_last_saved IS NOT NULL)",
    ),
    (
        "timeline_items",
        "timeline_items_visit_place_flags_check",
        "NOT is_visit OR ((NOT confirmed_place OR place_id IS NOT NULL)"
        " AND ((uncertain_place AND NOT confirmed_place)"
        " OR (NOT uncertain_place AND place_id IS NOT NULL)))",
    ),
    (
        "timeline_items",
        "timeline_items_visit_coordinates_check",
        "NOT is_visit OR ((latitude IS NULL) = (longitude IS NULL)"
        " AND NOT (latitude = 0 AND longitude = 0))",
    ),
    ("timeline_items", "timeline_items_custom_title_not_empty_check", "custom_title <> ''"),
    (
        "timeline_items",
        "timeline_items_trip_activity_flags_check",
        "is_visit OR ((uncertain_activity_type OR classified_activity_type IS NOT NULL"
        " OR confirmed_activity_type IS NOT NULL)"
        " AND NOT (uncertain_activity_type AND confirmed_activity_type IS NOT NULL))",
    ),
    (
        "samples",
        "samples_classified_activity_type_check",
        _ACTIVITY_OK.format(c="classified_activity_type"),
    ),
    (
        "samples",
        "samples_confirmed_activity_type_check",
        _ACTIVITY_OK.format(c="confirmed_activity_type"),
    ),
)

# Repairs, in order: each statement sees the previous ones' results.
_REPAIRS = (
    # places
    "UPDATE places SET"
    " radius_mean = CASE WHEN radius_mean IS NULL OR "
    + _not_finite("radius_mean")
    + " THEN 60.0 ELSE radius_mean END,"
    " radius_sd = CASE WHEN radius_sd IS NULL OR "
    + _not_finite("radius_sd")
    + " THEN 0.0 ELSE radius_sd END,"
    " is_stale = coalesce(is_stale, true), visit_count = coalesce(visit_count, 0),"
    " visit_days = coalesce(visit_days, 0), source = coalesce(source, 'LocoKit2')"
    " WHERE radius_mean IS NULL OR radius_sd IS NULL OR is_stale IS NULL"
    " OR visit_count IS NULL OR visit_days IS NULL OR source IS NULL OR "
    + _not_finite("radius_mean")
    + " OR "
    + _not_finite("radius_sd"),
    # every item
    "UPDATE timeline_items SET source = coalesce(source, 'LocoKit2'),"
    " source_version = coalesce(source_version, '9.0.0'),"
    " disabled = coalesce(disabled, false), deleted = coalesce(deleted, false),"
    " locked = coalesce(locked, false), samples_changed = false,"
    " last_saved = coalesce(last_saved, now())",
    "UPDATE timeline_items SET visit_last_saved = last_saved WHERE is_visit",
    "UPDATE timeline_items SET trip_last_saved = last_saved WHERE NOT is_visit",
    # visits
    "UPDATE timeline_items SET"
    " radius_mean = CASE WHEN radius_mean IS NULL OR "
    + _not_finite("radius_mean")
    + " THEN 50.0 ELSE radius_mean END,"
    " radius_sd = CASE WHEN radius_sd IS NULL OR "
    + _not_finite("radius_sd")
    + " THEN 10.0 ELSE radius_sd END,"
    " confirmed_place = coalesce(confirmed_place, false),"
    " uncertain_place = coalesce(uncertain_place, true)"
    " WHERE is_visit",
    "UPDATE timeline_items SET latitude = NULL, longitude = NULL WHERE is_visit"
    " AND ((latitude IS NULL) <> (longitude IS NULL) OR (latitude = 0 AND longitude = 0))",
    "UPDATE timeline_items SET custom_title = NULL WHERE custom_title = ''",
    "UPDATE timeline_items SET confirmed_place = false"
    " WHERE is_visit AND confirmed_place AND place_id IS NULL",
    "UPDATE timeline_items SET uncertain_place = false"
    " WHERE is_visit AND uncertain_place AND confirmed_place",
    "UPDATE timeline_items SET uncertain_place = true"
    " WHERE is_visit AND NOT uncertain_place AND place_id IS NULL",
    # trips
    "UPDATE timeline_items SET classified_activity_type = NULL WHERE NOT "
    + _ACTIVITY_OK.format(c="classified_activity_type"),
    "UPDATE timeline_items SET confirmed_activity_type = NULL WHERE NOT "
    + _ACTIVITY_OK.format(c="confirmed_activity_type"),
    "UPDATE timeline_items SET"
    " distance = CASE WHEN distance IS NULL OR "
    + _not_finite("distance")
    + " THEN 0.0 ELSE distance END,"
    " speed = CASE WHEN speed IS NULL OR " + _not_finite("speed") + " THEN 0.0 ELSE speed END,"
    " uncertain_activity_type = coalesce(uncertain_activity_type, true)"
    " WHERE NOT is_visit",
    "UPDATE timeline_items SET uncertain_activity_type = false"
    " WHERE NOT is_visit AND uncertain_activity_type AND confirmed_activity_type IS NOT NULL",
    "UPDATE timeline_items SET uncertain_activity_type = true"
    " WHERE NOT is_visit AND NOT uncertain_activity_type"
    " AND classified_activity_type IS NULL AND confirmed_activity_type IS NULL",
    # samples: one pass over the table for everything but the item link
    "UPDATE samples SET source = coalesce(source, 'LocoKit2'),"
    " source_version = coalesce(source_version, '9.0.0'),"
    " moving_state = coalesce(moving_state, -1), recording_state = coalesce(recording_state, 0),"
    " disabled = coalesce(disabled, false), last_saved = coalesce(last_saved, now()),"
    " classified_activity_type = CASE WHEN "
    + _ACTIVITY_OK.format(c="classified_activity_type")
    + " THEN classified_activity_type END,"
    " confirmed_activity_type = CASE WHEN "
    + _ACTIVITY_OK.format(c="confirmed_activity_type")
    + " THEN confirmed_activity_type END"
    " WHERE source IS NULL OR source_version IS NULL OR moving_state IS NULL"
    " OR recording_state IS NULL OR disabled IS NULL OR last_saved IS NULL"
    " OR NOT "
    + _ACTIVITY_OK.format(c="classified_activity_type")
    + " OR NOT "
    + _ACTIVITY_OK.format(c="confirmed_activity_type"),
    "UPDATE samples s SET timeline_item_id = NULL FROM timeline_items i"
    " WHERE i.account_id = s.account_id AND i.id = s.timeline_item_id AND i.deleted",
)


def upgrade() -> None:
    op.add_column("places", sa.Column("foursquare_category_v2_id", sa.Text(), nullable=True))
    op.add_column("timeline_items", sa.Column("samples_changed", sa.Boolean(), nullable=True))
    op.add_column(
        "timeline_items", sa.Column("visit_last_saved", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "timeline_items", sa.Column("trip_last_saved", sa.DateTime(timezone=True), nullable=True)
    )
    for statement in _REPAIRS:
        op.execute(statement)
    for table, column, default in _DEFAULTS:
        op.alter_column(table, column, server_default=sa.text(default), nullable=False)
    for table, name, condition in _CHECKS:
        op.create_check_constraint(op.f(name), table, condition)


def downgrade() -> None:
    """Back to 0003's schema; the repaired values stay (they were valid there too)."""
    for table, name, _ in reversed(_CHECKS):
        op.drop_constraint(op.f(name), table, type_="check")
    for table, column, _ in _DEFAULTS:
        nullable = (table, column) not in _ALWAYS_NOT_NULL
        op.alter_column(table, column, server_default=None, nullable=nullable)
    op.drop_column("timeline_items", "trip_last_saved")
    op.drop_column("timeline_items", "visit_last_saved")
    op.drop_column("timeline_items", "samples_changed")
    op.drop_column("places", "foursquare_category_v2_id")
