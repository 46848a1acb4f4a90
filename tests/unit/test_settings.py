"""Settings from the environment (SPEC 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import Settings


def test_given_an_empty_environment_then_every_default_is_the_one_spec_2_lists() -> None:
    """A fresh machine with nothing set runs with SPEC 2's defaults."""
    settings = Settings.from_env({})

    assert settings.database_url == "postgresql+psycopg://postgres@localhost:5432/ferry"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.storage_url == "file://./var/storage"
    assert settings.lease_seconds == 60
    assert settings.sweep_seconds == 30
    assert settings.max_attempts == 3
    assert settings.export_retention_hours == 168
    assert settings.max_upload_bytes == 2_147_483_648
    assert settings.sync_export_max_rows == 10_000
    assert settings.environment == "development"


def test_given_development_without_a_secret_key_then_a_random_one_is_made() -> None:
    """SECRET_KEY defaults to a random value in development, never a fixed or empty one."""
    settings = Settings.from_env({})

    assert len(settings.secret_key) >= 32
    assert settings.secret_key not in {"dev", "secret", "changeme"}


def test_given_a_secret_key_then_it_is_used_as_given() -> None:
    """An operator's key signs sessions."""
    settings = Settings.from_env({"SECRET_KEY": "s3cr3t-value", "FERRY_ENV": "production"})

    assert settings.secret_key == "s3cr3t-value"
    assert settings.environment == "production"


@pytest.mark.parametrize(
    "env", [{"FERRY_ENV": "production"}, {"FERRY_ENV": "production", "SECRET_KEY": ""}]
)
def test_given_production_without_a_secret_key_then_start_up_is_refused(
    env: dict[str, str],
) -> None:
    """Production never runs on a throwaway key (sessions would break on every restart)."""
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env(env)


def test_the_secret_key_is_not_shown_in_the_settings_repr() -> None:
    """Settings get logged; the key must not be."""
    settings = Settings.from_env({"SECRET_KEY": "do-not-print-me"})

    assert "do-not-print-me" not in repr(settings)


def test_given_every_variable_set_then_each_overrides_its_default() -> None:
    """Each SPEC 2 variable reaches the setting it names."""
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@db:5433/x",
            "REDIS_URL": "redis://cache:6380/2",
            "STORAGE_URL": "file:///srv/ferry",
            "SECRET_KEY": "k",
            "FERRY_LEASE_SECONDS": "3",
            "FERRY_SWEEP_SECONDS": "1.5",
            "FERRY_MAX_ATTEMPTS": "5",
            "FERRY_EXPORT_RETENTION_HOURS": "2",
            "FERRY_MAX_UPLOAD_BYTES": "1048576",
            "FERRY_SYNC_EXPORT_MAX_ROWS": "50",
        }
    )

    assert settings.database_url == "postgresql+psycopg://u@db:5433/x"
    assert settings.redis_url == "redis://cache:6380/2"
    assert settings.storage_url == "file:///srv/ferry"
    assert settings.lease_seconds == 3.0
    assert settings.sweep_seconds == 1.5
    assert settings.max_attempts == 5
    assert settings.export_retention_hours == 2.0
    assert settings.max_upload_bytes == 1_048_576
    assert settings.sync_export_max_rows == 50
    assert isinstance(settings.max_attempts, int)
    assert isinstance(settings.max_upload_bytes, int)


def test_given_an_empty_value_then_the_default_is_kept() -> None:
    """`FERRY_LEASE_SECONDS=` (set but empty, as compose files do) means the default."""
    assert Settings.from_env({"FERRY_LEASE_SECONDS": ""}).lease_seconds == 60


@pytest.mark.parametrize(
    "name",
    [
        "FERRY_LEASE_SECONDS",
        "FERRY_SWEEP_SECONDS",
        "FERRY_MAX_ATTEMPTS",
        "FERRY_EXPORT_RETENTION_HOURS",
        "FERRY_MAX_UPLOAD_BYTES",
        "FERRY_SYNC_EXPORT_MAX_ROWS",
    ],
)
@pytest.mark.parametrize("value", ["abc", "60s", "1,5"])
def test_given_a_variable_that_is_not_a_number_then_config_error_names_it(
    name: str, value: str
) -> None:
    """A typo in a number fails start-up with ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"), [("FERRY_LEASE_SECONDS", "nan"), ("FERRY_MAX_ATTEMPTS", "inf")]
)
def test_given_a_variable_that_is_nan_or_infinite_then_config_error_names_it(
    name: str, value: str
) -> None:
    """`nan` and `inf` parse as floats but are no usable setting: ConfigError, not a crash
    (OverflowError) or a lease that never expires."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FERRY_MAX_ATTEMPTS", "0"),
        ("FERRY_LEASE_SECONDS", "0"),
        ("FERRY_LEASE_SECONDS", "-5"),
        ("FERRY_SWEEP_SECONDS", "-1"),
    ],
)
def test_given_a_number_that_cannot_work_then_start_up_is_refused(name: str, value: str) -> None:
    """Zero attempts, or a lease or sweep that is not positive, is refused."""
    with pytest.raises(ConfigError):
        Settings.from_env({name: value})


def test_given_a_relative_file_url_then_storage_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file://./var/storage` (the default) is relative to where the process starts."""
    monkeypatch.chdir(tmp_path)

    root = Settings.from_env({"STORAGE_URL": "file://./x"}).storage_root

    assert root == (tmp_path / "x").resolve()
    assert Settings.from_env({}).storage_root == (tmp_path / "var" / "storage").resolve()


def test_given_an_absolute_file_url_then_storage_is_that_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`file:///srv/x` is absolute, wherever the process starts."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "elsewhere" / "store"

    root = Settings.from_env({"STORAGE_URL": f"file://{target}"}).storage_root

    assert root == target.resolve()
    assert root.is_absolute()


@pytest.mark.parametrize("url", ["s3://bucket/x", "http://host/x", "/plain/path"])
def test_given_a_storage_url_that_is_not_file_then_it_is_refused(url: str) -> None:
    """Only local folders are supported; anything else fails clearly."""
    with pytest.raises(ConfigError, match="STORAGE_URL"):
        _ = Settings.from_env({"STORAGE_URL": url}).storage_root


@pytest.mark.parametrize("lease", [0.9, 1.0, 3.0, 6.0, 60.0, 600.0])
def test_given_a_lease_then_the_heartbeat_is_at_most_a_third_of_it(lease: float) -> None:
    """SPEC 5: a running attempt heartbeats at least every FERRY_LEASE_SECONDS / 3."""
    settings = Settings.from_env({"FERRY_LEASE_SECONDS": str(lease)})

    assert 0 < settings.heartbeat_seconds <= lease / 3


def test_given_a_sub_second_lease_then_it_is_kept_or_refused_never_broken() -> None:
    """A lease Ferry accepts is a lease it keeps: 0.3 s needs a beat every 0.1 s or sooner.
    Refusing such a short lease at start-up would be honest too."""
    try:
        settings = Settings.from_env({"FERRY_LEASE_SECONDS": "0.3"})
    except ConfigError as exc:
        assert "FERRY_LEASE_SECONDS" in str(exc)
        return

    assert 0 < settings.heartbeat_seconds <= 0.3 / 3


def test_given_a_prefix_then_queues_are_named_under_it() -> None:
    """Tests and tenants sharing a Redis never take each other's messages."""
    settings = Settings.from_env({"FERRY_REDIS_PREFIX": "t1"})

    assert settings.redis_prefix == "t1"
    assert settings.jobs_queue.startswith("t1")
    assert settings.sweep_queue.startswith("t1")
    assert settings.jobs_queue != settings.sweep_queue


def test_settings_are_frozen_and_overrides_make_a_copy() -> None:
    """Settings are read once; a test's override never leaks into another's settings."""
    settings = Settings.from_env({})
    changed = settings.with_overrides(lease_seconds=3.0)

    assert changed.lease_seconds == 3.0
    assert settings.lease_seconds == 60.0
    with pytest.raises(AttributeError):
        settings.lease_seconds = 1.0  # type: ignore[misc]
