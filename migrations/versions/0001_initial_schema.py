"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:20:37.164310
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("accounts_pkey")),
        sa.UniqueConstraint("name", name=op.f("accounts_name_key")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('user', 'ops')", name=op.f("api_tokens_role_check")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("api_tokens_account_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("api_tokens_pkey")),
        sa.UniqueConstraint("token_hash", name=op.f("api_tokens_token_hash_key")),
    )
    op.create_table(
        "jobs",
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("checkpoint", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("preview", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'awaiting_confirmation', 'cancelling',"
            " 'cancelled', 'failed', 'succeeded')",
            name=op.f("jobs_status_check"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("jobs_account_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("jobs_pkey")),
        sa.UniqueConstraint("account_id", "idempotency_key", name="jobs_idempotency_key"),
        sa.UniqueConstraint("id", name="jobs_id_key"),
    )
    op.create_index("jobs_account_created_idx", "jobs", ["account_id", "created_at"], unique=False)
    op.create_index("jobs_status_idx", "jobs", ["status"], unique=False)
    op.create_table(
        "places",
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_address", sa.Text(), nullable=True),
        sa.Column("locality", sa.Text(), nullable=True),
        sa.Column("country_code", sa.Text(), nullable=True),
        sa.Column("seconds_from_gmt", sa.Integer(), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=False),
        sa.Column("longitude", sa.Double(), nullable=False),
        sa.Column("radius_mean", sa.Double(), nullable=True),
        sa.Column("radius_sd", sa.Double(), nullable=True),
        sa.Column("is_stale", sa.Boolean(), nullable=True),
        sa.Column("visit_count", sa.Integer(), nullable=True),
        sa.Column("visit_days", sa.Integer(), nullable=True),
        sa.Column("last_visit_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mapbox_place_id", sa.Text(), nullable=True),
        sa.Column("mapbox_category", sa.Text(), nullable=True),
        sa.Column("mapbox_maki_icon", sa.Text(), nullable=True),
        sa.Column("google_place_id", sa.Text(), nullable=True),
        sa.Column("google_primary_type", sa.Text(), nullable=True),
        sa.Column("foursquare_place_id", sa.Text(), nullable=True),
        sa.Column("foursquare_category_id", sa.Integer(), nullable=True),
        sa.Column("user_category", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("last_saved", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("name <> ''", name=op.f("places_name_not_empty_check")),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name=op.f("places_latitude_check")),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name=op.f("places_longitude_check")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("places_account_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("places_pkey")),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("job_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("job_events_job_id_fkey"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("job_events_pkey")),
    )
    op.create_index("job_events_job_idx", "job_events", ["job_id", "id"], unique=False)
    op.create_table(
        "timeline_items",
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("is_visit", sa.Boolean(), nullable=False),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_version", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=True),
        sa.Column("locked", sa.Boolean(), nullable=True),
        sa.Column("last_saved", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_item_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("next_item_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("step_count", sa.Integer(), nullable=True),
        sa.Column("floors_ascended", sa.Integer(), nullable=True),
        sa.Column("floors_descended", sa.Integer(), nullable=True),
        sa.Column("average_altitude", sa.Double(), nullable=True),
        sa.Column("active_energy_burned", sa.Double(), nullable=True),
        sa.Column("average_heart_rate", sa.Double(), nullable=True),
        sa.Column("max_heart_rate", sa.Double(), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("radius_mean", sa.Double(), nullable=True),
        sa.Column("radius_sd", sa.Double(), nullable=True),
        sa.Column("place_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("confirmed_place", sa.Boolean(), nullable=True),
        sa.Column("uncertain_place", sa.Boolean(), nullable=True),
        sa.Column("custom_title", sa.Text(), nullable=True),
        sa.Column("street_address", sa.Text(), nullable=True),
        sa.Column("locality", sa.Text(), nullable=True),
        sa.Column("country_code", sa.Text(), nullable=True),
        sa.Column("distance", sa.Double(), nullable=True),
        sa.Column("speed", sa.Double(), nullable=True),
        sa.Column("classified_activity_type", sa.Integer(), nullable=True),
        sa.Column("confirmed_activity_type", sa.Integer(), nullable=True),
        sa.Column("uncertain_activity_type", sa.Boolean(), nullable=True),
        sa.CheckConstraint(
            "end_date >= start_date", name=op.f("timeline_items_end_after_start_check")
        ),
        sa.CheckConstraint(
            "latitude BETWEEN -90 AND 90", name=op.f("timeline_items_latitude_check")
        ),
        sa.CheckConstraint(
            "longitude BETWEEN -180 AND 180", name=op.f("timeline_items_longitude_check")
        ),
        sa.CheckConstraint("next_item_id <> id", name=op.f("timeline_items_next_not_self_check")),
        sa.CheckConstraint(
            "previous_item_id <> id", name=op.f("timeline_items_previous_not_self_check")
        ),
        sa.CheckConstraint(
            "previous_item_id <> next_item_id", name=op.f("timeline_items_previous_not_next_check")
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "next_item_id"],
            ["timeline_items.account_id", "timeline_items.id"],
            name="timeline_items_next_item_fkey",
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "place_id"],
            ["places.account_id", "places.id"],
            name="timeline_items_place_fkey",
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "previous_item_id"],
            ["timeline_items.account_id", "timeline_items.id"],
            name="timeline_items_previous_item_fkey",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("timeline_items_account_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("timeline_items_pkey")),
    )
    op.create_index(
        "timeline_items_account_start_idx",
        "timeline_items",
        ["account_id", "start_date"],
        unique=False,
    )
    op.create_table(
        "samples",
        sa.Column("account_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_from_gmt", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_version", sa.Text(), nullable=True),
        sa.Column("moving_state", sa.SmallInteger(), nullable=True),
        sa.Column("recording_state", sa.SmallInteger(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=True),
        sa.Column("last_saved", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timeline_item_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("altitude", sa.Double(), nullable=True),
        sa.Column("horizontal_accuracy", sa.Double(), nullable=True),
        sa.Column("vertical_accuracy", sa.Double(), nullable=True),
        sa.Column("speed", sa.Double(), nullable=True),
        sa.Column("course", sa.Double(), nullable=True),
        sa.Column("step_hz", sa.Double(), nullable=True),
        sa.Column("xy_acceleration", sa.Double(), nullable=True),
        sa.Column("z_acceleration", sa.Double(), nullable=True),
        sa.Column("heart_rate", sa.Double(), nullable=True),
        sa.Column("classified_activity_type", sa.Integer(), nullable=True),
        sa.Column("confirmed_activity_type", sa.Integer(), nullable=True),
        sa.CheckConstraint("latitude BETWEEN -90 AND 90", name=op.f("samples_latitude_check")),
        sa.CheckConstraint("longitude BETWEEN -180 AND 180", name=op.f("samples_longitude_check")),
        sa.CheckConstraint(
            "moving_state BETWEEN -1 AND 1", name=op.f("samples_moving_state_check")
        ),
        sa.CheckConstraint(
            "recording_state BETWEEN 0 AND 5", name=op.f("samples_recording_state_check")
        ),
        sa.PrimaryKeyConstraint("account_id", "id", name=op.f("samples_pkey")),
    )
    op.create_index("samples_account_date_idx", "samples", ["account_id", "date"], unique=False)
    op.create_index(
        "samples_account_item_idx", "samples", ["account_id", "timeline_item_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("samples_account_item_idx", table_name="samples")
    op.drop_index("samples_account_date_idx", table_name="samples")
    op.drop_table("samples")
    op.drop_index("timeline_items_account_start_idx", table_name="timeline_items")
    op.drop_table("timeline_items")
    op.drop_index("job_events_job_idx", table_name="job_events")
    op.drop_table("job_events")
    op.drop_table("places")
    op.drop_index("jobs_status_idx", table_name="jobs")
    op.drop_index("jobs_account_created_idx", table_name="jobs")
    op.drop_table("jobs")
    op.drop_table("api_tokens")
    op.drop_table("accounts")
