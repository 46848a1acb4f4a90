"""Job statuses, their transitions and retry backoff (SPEC 5, 7, 8)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.jobs.states import (
    CANCEL_AT_ONCE,
    RESTARTABLE,
    TERMINAL,
    TRANSITIONS,
    JobType,
    Status,
    backoff_seconds,
    can_transition,
    is_terminal,
)


def test_the_statuses_and_types_are_the_ones_spec_5_names() -> None:
    """Clients filter on these strings."""
    assert {s.value for s in Status} == {
        "queued",
        "running",
        "awaiting_confirmation",
        "cancelling",
        "cancelled",
        "failed",
        "succeeded",
    }
    assert {t.value for t in JobType} == {
        "export.archive",
        "import.archive",
        "export.table",
        "import.table",
        "import.rollback",
    }


def test_every_status_has_its_transitions_defined() -> None:
    """No status is a dead end by omission."""
    assert set(TRANSITIONS) == set(Status)


def test_terminal_statuses_are_succeeded_failed_and_cancelled() -> None:
    """SPEC 5: terminal means succeeded, failed or cancelled."""
    assert {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED} == TERMINAL
    for status in Status:
        assert is_terminal(status.value) is (status in TERMINAL)


def test_given_a_succeeded_job_then_nothing_can_change_its_status() -> None:
    """A finished export stays finished: no retry, no cancel, no re-run."""
    for target in Status:
        assert not can_transition(Status.SUCCEEDED, target)


@pytest.mark.parametrize("status", [Status.FAILED, Status.CANCELLED])
def test_given_a_failed_or_cancelled_job_then_the_only_way_out_is_a_restart_to_queued(
    status: Status,
) -> None:
    """SPEC 8: an operator restart queues it again; nothing else moves it."""
    allowed = {target for target in Status if can_transition(status, target)}

    assert allowed == {Status.QUEUED}
    assert status in RESTARTABLE


def test_only_failed_and_cancelled_jobs_are_restartable() -> None:
    """A succeeded job cannot be restarted; live jobs are not restarted either."""
    assert {Status.FAILED, Status.CANCELLED} == RESTARTABLE


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.QUEUED, Status.RUNNING),  # a worker claims it
        (Status.QUEUED, Status.CANCELLED),  # cancel before it runs: at once
        (Status.RUNNING, Status.SUCCEEDED),
        (Status.RUNNING, Status.FAILED),
        (Status.RUNNING, Status.QUEUED),  # retry, or the sweeper after a lost lease
        (Status.RUNNING, Status.CANCELLING),
        (Status.RUNNING, Status.AWAITING_CONFIRMATION),
        (Status.AWAITING_CONFIRMATION, Status.CANCELLED),
        (Status.AWAITING_CONFIRMATION, Status.QUEUED),  # confirmed: goes on to apply
        (Status.CANCELLING, Status.CANCELLED),
    ],
)
def test_given_the_lifecycle_of_spec_5_to_8_then_each_of_its_moves_is_allowed(
    current: Status, target: Status
) -> None:
    """The moves the lifecycle needs are all possible."""
    assert can_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (Status.QUEUED, Status.SUCCEEDED),  # never succeeds without running
        (Status.QUEUED, Status.CANCELLING),  # nobody to stop: cancelled at once instead
        (Status.AWAITING_CONFIRMATION, Status.CANCELLING),
        (Status.CANCELLING, Status.SUCCEEDED),  # a cancel request is honoured
        (Status.CANCELLING, Status.RUNNING),
        (Status.FAILED, Status.RUNNING),  # a restart goes through the queue
        (Status.CANCELLED, Status.RUNNING),
    ],
)
def test_given_a_move_the_lifecycle_forbids_then_it_is_refused(
    current: Status, target: Status
) -> None:
    """Moves that would skip a step or undo a cancel are refused."""
    assert not can_transition(current, target)


def test_queued_and_awaiting_jobs_are_cancelled_at_once() -> None:
    """SPEC 7: no worker is needed to cancel these."""
    assert {Status.QUEUED, Status.AWAITING_CONFIRMATION} == CANCEL_AT_ONCE
    for status in CANCEL_AT_ONCE:
        assert can_transition(status, Status.CANCELLED)


# --- backoff --------------------------------------------------------------------------


class _Highest(random.Random):
    """A draw that always takes the top of the range (the exponential bound itself)."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Lowest(random.Random):
    """A draw that always takes the bottom of the range."""

    def uniform(self, a: float, b: float) -> float:
        return a


def test_given_successive_attempts_then_the_backoff_bound_doubles() -> None:
    """Attempt 1 waits up to base, attempt 2 up to 2 * base, attempt 3 up to 4 * base."""
    delays = [backoff_seconds(n, base=5.0, rng=_Highest()) for n in range(1, 6)]

    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0]


def test_given_the_lowest_draw_then_no_retry_comes_sooner_than_half_its_bound() -> None:
    """Jitter never collapses the delay to nothing."""
    delays = [backoff_seconds(n, base=5.0, rng=_Lowest()) for n in range(1, 6)]

    assert delays == [2.5, 5.0, 10.0, 20.0, 40.0]


def test_given_many_attempts_then_the_backoff_stays_under_the_cap() -> None:
    """A job retried often never waits longer than the cap."""
    assert backoff_seconds(40, base=5.0, cap=600.0, rng=_Highest()) == 600.0
    assert backoff_seconds(10_000, base=5.0, cap=600.0, rng=_Highest()) == 600.0


def test_given_jobs_failing_together_then_their_retries_spread_out() -> None:
    """Jitter: the same attempt number does not give every job the same delay."""
    rng = random.Random(7)
    delays = {backoff_seconds(3, base=5.0, rng=rng) for _ in range(50)}

    assert len(delays) > 40


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.01, max_value=100.0),
    cap=st.floats(min_value=1.0, max_value=3600.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_property_backoff_lies_between_half_and_all_of_its_capped_bound(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """bound/2 <= delay <= bound, where bound = min(cap, base * 2^(attempt-1))."""
    bound = min(cap, base * 2.0 ** (attempt - 1))

    delay = backoff_seconds(attempt, base=base, cap=cap, rng=random.Random(seed))

    assert bound / 2 <= delay <= bound
    assert delay <= cap
