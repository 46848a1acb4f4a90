"""Run Alembic migrations programmatically (`ferry db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from shared.store.db import _normalise, create_database_if_missing


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged `migrations` folder and `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", _normalise(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, *, revision: str = "head") -> bool:
    """Create the database if missing, then migrate it; True when it was created."""
    created = create_database_if_missing(database_url)
    command.upgrade(alembic_config(database_url), revision)
    return created
