"""Keeper status (SPEC 3): derived from duration and sample count, never stored."""

from __future__ import annotations

from datetime import datetime

VISIT_KEEPER_SECONDS = 120.0
TRIP_KEEPER_SECONDS = 60.0
TRIP_KEEPER_SAMPLES = 2


def is_keeper(*, is_visit: bool, start: datetime, end: datetime, sample_count: int) -> bool:
    """A visit lasting 120 s or more; a trip lasting 60 s or more with 2 samples or more."""
    seconds = (end - start).total_seconds()
    if is_visit:
        return seconds >= VISIT_KEEPER_SECONDS
    return seconds >= TRIP_KEEPER_SECONDS and sample_count >= TRIP_KEEPER_SAMPLES
