"""Job types, statuses and the transitions between them (SPEC 5). Pure."""

from __future__ import annotations

import random
from enum import StrEnum


class JobType(StrEnum):
    """What a job does."""

    EXPORT_ARCHIVE = "export.archive"
    IMPORT_ARCHIVE = "import.archive"
    EXPORT_TABLE = "export.table"
    IMPORT_TABLE = "import.table"
    IMPORT_ROLLBACK = "import.rollback"


class Status(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    SUCCEEDED = "succeeded"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
# A worker attempt owns the job in these statuses (its writes are fenced by attempt).
OWNED = frozenset({Status.RUNNING, Status.CANCELLING})
# Cancelling these needs no worker: they become `cancelled` at once.
CANCEL_AT_ONCE = frozenset({Status.QUEUED, Status.AWAITING_CONFIRMATION})
# An operator or user may restart these.
RESTARTABLE = frozenset({Status.FAILED, Status.CANCELLED})
# Jobs that run from an uploaded file, kept until they succeed or for
# FERRY_UPLOAD_RETENTION_HOURS after they failed or were cancelled (SPEC 8).
UPLOAD_TYPES = frozenset({JobType.IMPORT_ARCHIVE, JobType.IMPORT_TABLE})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
    Status.RUNNING: frozenset(
        {
            Status.SUCCEEDED,
            Status.FAILED,
            Status.QUEUED,  # retry after a retryable error, or the sweeper after a lost lease
            Status.CANCELLING,
            Status.AWAITING_CONFIRMATION,
        }
    ),
    Status.AWAITING_CONFIRMATION: frozenset({Status.QUEUED, Status.CANCELLED, Status.FAILED}),
    Status.CANCELLING: frozenset({Status.CANCELLED}),
    Status.CANCELLED: frozenset({Status.QUEUED}),
    Status.FAILED: frozenset({Status.QUEUED}),
    Status.SUCCEEDED: frozenset(),
}

PHASES: dict[JobType, tuple[tuple[str, bool], ...]] = {
    # (name, counts rows)
    JobType.EXPORT_ARCHIVE: (
        ("prepare", False),
        ("places", True),
        ("items", True),
        ("samples", True),
        ("finalize", False),
    ),
    JobType.IMPORT_ARCHIVE: (
        ("unpack", False),
        ("validate", True),
        ("stage", True),
        ("apply", True),
        ("edges", True),
        ("finalize", False),
    ),
    JobType.EXPORT_TABLE: (
        ("prepare", False),
        ("rows", True),
        ("finalize", False),
    ),
    JobType.IMPORT_TABLE: (
        ("read", True),
        ("validate", True),
        ("apply", True),
        ("finalize", False),
    ),
    JobType.IMPORT_ROLLBACK: (
        ("check", False),
        ("restore", True),
        ("finalize", False),
    ),
}
# The jobs that make an import batch (SPEC 13: the import history, undo).
IMPORT_TYPES = frozenset({JobType.IMPORT_ARCHIVE, JobType.IMPORT_TABLE})


def can_transition(current: Status, target: Status) -> bool:
    """Whether a job may move from `current` to `target`."""
    return target in TRANSITIONS[current]


def is_terminal(status: str) -> bool:
    """Whether `status` is final (succeeded, failed, cancelled)."""
    return status in TERMINAL


def backoff_seconds(
    attempt: int, *, base: float, cap: float = 600.0, rng: random.Random | None = None
) -> float:
    """Delay before retrying after failed attempt `attempt`: exponential, with jitter.

    The draw lies between half and all of the exponential bound: jobs that failed
    together spread out, so a recovering database is not hit by all of them at once,
    and no retry comes sooner than half its bound.
    """
    # The exponent stops growing long before a float would overflow.
    bound = min(cap, base * 2.0 ** min(max(0, attempt - 1), 32))
    draw = (rng or random).uniform(0.5, 1.0)
    return bound * draw
