"""The two SSE settings of SPEC 2: FERRY_MAX_STREAMS_PER_ACCOUNT and FERRY_STREAM_SECONDS."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.settings import Settings


def test_given_no_stream_variables_then_the_defaults_are_spec_2s() -> None:
    """Given an empty environment, Then 8 streams per account, living 300 s each."""
    settings = Settings.from_env({})

    assert settings.max_streams_per_account == 8
    assert settings.stream_seconds == 300.0


def test_given_the_stream_variables_then_they_are_used() -> None:
    """Given both variables, Then the settings hold their values."""
    settings = Settings.from_env(
        {"FERRY_MAX_STREAMS_PER_ACCOUNT": "3", "FERRY_STREAM_SECONDS": "2.5"}
    )

    assert settings.max_streams_per_account == 3
    assert settings.stream_seconds == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FERRY_MAX_STREAMS_PER_ACCOUNT", "0"),
        ("FERRY_MAX_STREAMS_PER_ACCOUNT", "-1"),
        ("FERRY_MAX_STREAMS_PER_ACCOUNT", "many"),
        ("FERRY_STREAM_SECONDS", "0"),
        ("FERRY_STREAM_SECONDS", "-5"),
        ("FERRY_STREAM_SECONDS", "inf"),
    ],
)
def test_given_a_stream_setting_that_cannot_work_then_start_up_is_refused(
    name: str, value: str
) -> None:
    """Given no stream allowed, or a lifetime that is not a positive finite number, Then
    reading the settings fails naming the variable."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
