"""Alembic environment: online migrations only, against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from shared.store.schema import metadata

config = context.config


def run_migrations_online() -> None:
    """Migrate inside one transaction on a fresh connection."""
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `ferry db upgrade`")
run_migrations_online()
