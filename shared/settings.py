"""Settings: one typed, frozen object read from the environment once (SPEC section 2)."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shared.errors import ConfigError

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@localhost:5432/ferry"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_STORAGE_URL = "file://./var/storage"
# Heartbeats come every lease/3; a shorter lease would have workers hammer the database.
MIN_LEASE_SECONDS = 0.3


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything Ferry's processes read from their environment."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    storage_url: str = DEFAULT_STORAGE_URL
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    environment: str = "development"
    lease_seconds: float = 60.0
    sweep_seconds: float = 30.0
    max_attempts: int = 3
    export_retention_hours: float = 168.0
    max_upload_bytes: int = 2_147_483_648
    sync_export_max_rows: int = 10_000
    rollback_hours: float = 24.0
    max_streams_per_account: int = 8
    stream_seconds: float = 300.0
    # Ferry's additions (documented in README "Configuration").
    redis_prefix: str = "ferry"
    retry_base_seconds: float = 5.0
    max_rows_per_second: float = 0.0
    upload_retention_hours: float = 24.0
    max_expanded_bytes: int = 20 * 1024**3
    max_compression_ratio: float = 100.0

    @property
    def storage_root(self) -> Path:
        """The local folder behind `STORAGE_URL` (only `file://` is supported)."""
        parsed = urlparse(self.storage_url)
        if parsed.scheme != "file":
            raise ConfigError(f"STORAGE_URL must be a file:// URL, got {self.storage_url!r}")
        # file://./var/storage is relative to the working directory; file:///srv/x absolute.
        raw = (parsed.netloc or "") + parsed.path
        return Path(raw).expanduser().resolve()

    @property
    def heartbeat_seconds(self) -> float:
        """How often a running attempt heartbeats and re-reads its row (SPEC 5 and 7)."""
        return min(self.lease_seconds / 3.0, 2.0)

    @property
    def jobs_queue(self) -> str:
        """The Celery queue that carries job messages."""
        return f"{self.redis_prefix}.jobs"

    @property
    def sweep_queue(self) -> str:
        """The Celery queue that carries sweeper ticks (consumed by `ferry scheduler`)."""
        return f"{self.redis_prefix}.sweep"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and benchmarks)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        environment = env.get("FERRY_ENV", "development")
        secret = env.get("SECRET_KEY")
        if not secret:
            if environment == "production":
                raise ConfigError("SECRET_KEY is required when FERRY_ENV=production")
            secret = secrets.token_hex(32)
        settings = cls(
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("REDIS_URL", DEFAULT_REDIS_URL),
            storage_url=env.get("STORAGE_URL", DEFAULT_STORAGE_URL),
            secret_key=secret,
            environment=environment,
            lease_seconds=_number(env, "FERRY_LEASE_SECONDS", 60.0),
            sweep_seconds=_number(env, "FERRY_SWEEP_SECONDS", 30.0),
            max_attempts=int(_number(env, "FERRY_MAX_ATTEMPTS", 3)),
            export_retention_hours=_number(env, "FERRY_EXPORT_RETENTION_HOURS", 168.0),
            max_upload_bytes=int(_number(env, "FERRY_MAX_UPLOAD_BYTES", 2_147_483_648)),
            sync_export_max_rows=int(_number(env, "FERRY_SYNC_EXPORT_MAX_ROWS", 10_000)),
            rollback_hours=_number(env, "FERRY_ROLLBACK_HOURS", 24.0),
            max_streams_per_account=int(_number(env, "FERRY_MAX_STREAMS_PER_ACCOUNT", 8)),
            stream_seconds=_number(env, "FERRY_STREAM_SECONDS", 300.0),
            redis_prefix=env.get("FERRY_REDIS_PREFIX", "ferry"),
            retry_base_seconds=_number(env, "FERRY_RETRY_BASE_SECONDS", 5.0),
            max_rows_per_second=_number(env, "FERRY_MAX_ROWS_PER_SECOND", 0.0),
            upload_retention_hours=_number(env, "FERRY_UPLOAD_RETENTION_HOURS", 24.0),
            max_expanded_bytes=int(_number(env, "FERRY_MAX_EXPANDED_BYTES", 20 * 1024**3)),
            max_compression_ratio=_number(env, "FERRY_MAX_COMPRESSION_RATIO", 100.0),
        )
        if settings.max_attempts < 1:
            raise ConfigError("FERRY_MAX_ATTEMPTS must be at least 1")
        if settings.lease_seconds < MIN_LEASE_SECONDS:
            raise ConfigError(f"FERRY_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS}")
        if settings.sweep_seconds <= 0:
            raise ConfigError("FERRY_SWEEP_SECONDS must be positive")
        if settings.rollback_hours < 0:
            raise ConfigError("FERRY_ROLLBACK_HOURS must not be negative")
        if settings.max_streams_per_account < 1:
            raise ConfigError("FERRY_MAX_STREAMS_PER_ACCOUNT must be at least 1")
        if settings.stream_seconds <= 0:
            raise ConfigError("FERRY_STREAM_SECONDS must be positive")
        return settings


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value
