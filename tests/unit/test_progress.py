"""Progress arithmetic (SPEC 6): weighted by rows, monotonic, exactly 1 only on success, ETA."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.jobs.progress import ProgressTracker
from shared.jobs.states import PHASES, JobType

EXPORT = PHASES[JobType.EXPORT_ARCHIVE]
IMPORT = PHASES[JobType.IMPORT_ARCHIVE]
WALL = datetime(2026, 11, 22, 10, 15, 3, 120000, tzinfo=UTC)


def export_tracker(places: int = 100, items: int = 100, samples: int = 800) -> ProgressTracker:
    tracker = ProgressTracker(EXPORT, started=0.0)
    tracker.start("prepare")
    tracker.set_total("places", places)
    tracker.set_total("items", items)
    tracker.set_total("samples", samples)
    tracker.complete_phase()
    return tracker


def run_through(tracker: ProgressTracker, phase: str) -> None:
    tracker.start(phase)
    tracker.advance(tracker.phase.total)
    tracker.complete_phase()


def test_the_phases_are_the_ones_spec_6_names() -> None:
    """Clients show these names; they are part of the contract."""
    assert [name for name, _ in EXPORT] == ["prepare", "places", "items", "samples", "finalize"]
    assert [name for name, _ in IMPORT] == [
        "unpack",
        "validate",
        "stage",
        "apply",
        "edges",
        "finalize",
    ]


def test_given_a_new_job_when_nothing_is_done_then_overall_is_zero() -> None:
    """Progress starts at 0."""
    tracker = ProgressTracker(EXPORT, started=0.0)

    assert tracker.overall() == 0.0
    assert tracker.snapshot(now=0.0, wall=WALL)["overall"] == 0.0


def test_given_small_phases_done_and_a_big_one_ahead_then_overall_follows_rows_not_phases() -> None:
    """200 of 1000 rows written is about 20 %, though two of three row phases are done."""
    tracker = export_tracker(places=100, items=100, samples=800)
    run_through(tracker, "places")
    run_through(tracker, "items")
    tracker.start("samples")

    assert 0.18 <= tracker.overall() <= 0.25

    tracker.advance(400)

    assert 0.57 <= tracker.overall() <= 0.63


def test_given_step_phases_when_they_complete_then_they_weigh_little() -> None:
    """prepare and finalize are steps; with rows to write they barely move the bar."""
    tracker = export_tracker(places=1000, items=1000, samples=8000)
    tracker.start("places")

    assert 0.0 < tracker.overall() <= 0.05


def test_given_an_empty_account_when_the_steps_complete_then_progress_still_moves() -> None:
    """With no rows at all, the steps carry the progress, and it still stays below 1."""
    tracker = export_tracker(places=0, items=0, samples=0)
    for phase in ("places", "items", "samples", "finalize"):
        tracker.start(phase)
        tracker.complete_phase()

    assert 0.0 < tracker.overall() < 1.0


def test_given_every_phase_complete_when_not_yet_succeeded_then_overall_is_below_one() -> None:
    """1.0 means succeeded; a job at the end of finalize has not succeeded yet."""
    tracker = export_tracker()
    for phase in ("places", "items", "samples"):
        run_through(tracker, phase)
    tracker.start("finalize")
    tracker.complete_phase()
    tracker.advance(10)

    assert tracker.overall() < 1.0
    assert tracker.snapshot(now=5.0, wall=WALL)["overall"] < 1.0


def test_given_a_succeeded_job_then_overall_is_exactly_one() -> None:
    """succeed() sets overall to 1.0, whatever was counted before."""
    tracker = export_tracker()
    tracker.start("samples")
    tracker.advance(3)

    tracker.succeed()

    assert tracker.overall() == 1.0
    snapshot = tracker.snapshot(now=9.0, wall=WALL)
    assert snapshot["overall"] == 1.0
    assert snapshot["phase"] == "finalize"
    assert snapshot["rows_done"] == snapshot["rows_total"] == 1000
    assert snapshot["eta_seconds"] == 0.0


def test_given_a_phase_total_that_grows_mid_phase_then_overall_does_not_go_back() -> None:
    """More samples found than counted: the bar stalls, it never jumps backwards."""
    tracker = export_tracker(places=100, items=100, samples=800)
    run_through(tracker, "places")
    run_through(tracker, "items")
    tracker.start("samples")
    tracker.advance(400)
    before = tracker.overall()

    tracker.set_total("samples", 80_000)

    assert tracker.overall() == pytest.approx(before)
    assert tracker.overall() >= before
    tracker.advance(70_000)
    assert tracker.overall() > before


def test_given_a_phase_that_overshoots_its_total_then_overall_stays_within_bounds() -> None:
    """Counting more rows than the total never pushes overall past the next phase's share."""
    tracker = export_tracker(places=100, items=100, samples=800)
    tracker.start("places")
    tracker.advance(10_000)

    assert tracker.overall() <= 0.2
    assert tracker.phase.fraction() == 1.0


def test_given_a_snapshot_then_it_has_every_field_of_spec_6() -> None:
    """The progress object's keys and meanings are an API contract."""
    tracker = export_tracker(places=100, items=10, samples=1000)
    run_through(tracker, "places")
    run_through(tracker, "items")
    tracker.start("samples")
    tracker.advance(120)

    snapshot = tracker.snapshot(now=3.0, wall=WALL)

    assert set(snapshot) == {
        "phase",
        "phase_index",
        "phase_count",
        "phase_done",
        "phase_total",
        "rows_done",
        "rows_total",
        "overall",
        "eta_seconds",
        "updated_at",
    }
    assert snapshot["phase"] == "samples"
    assert snapshot["phase_count"] == 5
    assert (snapshot["phase_done"], snapshot["phase_total"]) == (120, 1000)
    assert (snapshot["rows_done"], snapshot["rows_total"]) == (230, 1110)
    assert 0.0 < snapshot["overall"] < 1.0
    assert snapshot["updated_at"] == "2026-11-22T10:15:03.12Z"


def test_given_the_samples_phase_of_an_export_then_phase_index_is_as_in_spec_6() -> None:
    """SPEC 6's example: `{"phase": "samples", "phase_index": 3, "phase_count": 5, …}`."""
    tracker = export_tracker()
    tracker.start("samples")

    snapshot = tracker.snapshot(now=1.0, wall=WALL)

    assert (snapshot["phase"], snapshot["phase_index"], snapshot["phase_count"]) == (
        "samples",
        3,
        5,
    )


def test_given_each_phase_in_turn_then_phase_index_counts_up_by_one() -> None:
    """phase_index moves one step per phase, from the first to the last."""
    tracker = ProgressTracker(IMPORT, started=0.0)
    indexes = []
    for name, _ in IMPORT:
        tracker.start(name)
        indexes.append(tracker.snapshot(now=0.0, wall=WALL)["phase_index"])

    assert indexes == list(range(indexes[0], indexes[0] + len(IMPORT)))
    assert tracker.snapshot(now=0.0, wall=WALL)["phase_count"] == 6


def test_given_no_elapsed_time_then_there_is_no_eta() -> None:
    """Without a rate there is no honest estimate: eta is None, not 0 or infinity."""
    tracker = export_tracker()
    tracker.start("places")
    tracker.advance(50)

    assert tracker.snapshot(now=0.0, wall=WALL)["eta_seconds"] is None


def test_given_no_work_done_yet_then_there_is_no_eta() -> None:
    """Time passing with nothing done gives no rate either."""
    tracker = ProgressTracker(EXPORT, started=0.0)

    assert tracker.eta_seconds(5.0) is None


def test_given_a_steady_rate_then_the_eta_is_positive_and_about_the_time_left() -> None:
    """A quarter done in 10 s leaves about 30 s."""
    tracker = ProgressTracker((("rows", True),), started=100.0)
    tracker.set_total("rows", 1000)
    tracker.start("rows")
    tracker.advance(250)

    eta = tracker.eta_seconds(110.0)

    assert eta is not None
    assert eta > 0
    assert eta == pytest.approx(30.0, rel=0.05)

    tracker.advance(250)
    later = tracker.eta_seconds(120.0)
    assert later is not None
    assert 0 < later < eta


def test_given_phases_out_of_order_when_started_then_it_is_refused() -> None:
    """A phase cannot be re-entered after a later one started."""
    tracker = export_tracker()
    tracker.start("items")

    with pytest.raises(ValueError):
        tracker.start("places")


def test_given_an_unknown_phase_then_it_is_refused() -> None:
    """Typos in phase names fail loudly."""
    tracker = export_tracker()

    with pytest.raises(KeyError):
        tracker.start("sample")
    with pytest.raises(KeyError):
        tracker.set_total("sample", 3)


def test_given_no_phases_then_a_tracker_is_refused() -> None:
    """Every job has at least one phase."""
    with pytest.raises(ValueError):
        ProgressTracker((), started=0.0)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 500)),
        st.tuples(
            st.just("total"), st.sampled_from(["places", "items", "samples"]), st.integers(0, 5000)
        ),
        st.tuples(st.just("next")),
        st.tuples(st.just("complete")),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(_ops)
def test_property_overall_never_decreases_and_stays_below_one_until_success(
    ops: list[tuple[Any, ...]],
) -> None:
    """Whatever the pipeline reports, in any order, overall is monotonic and in [0, 1)."""
    tracker = ProgressTracker(EXPORT, started=0.0)
    names = [name for name, _ in EXPORT]
    seen = [tracker.snapshot(now=0.0, wall=WALL)["overall"]]
    for step, op in enumerate(ops, start=1):
        if op[0] == "advance":
            tracker.advance(op[1])
        elif op[0] == "total":
            tracker.set_total(op[1], op[2])
        elif op[0] == "next":
            index = names.index(tracker.phase.name)
            tracker.start(names[min(index + 1, len(names) - 1)])
        else:
            tracker.complete_phase()
        snapshot = tracker.snapshot(now=step * 0.5, wall=WALL)
        seen.append(snapshot["overall"])
        assert snapshot["eta_seconds"] is None or snapshot["eta_seconds"] >= 0

    assert all(0.0 <= value < 1.0 for value in seen)
    assert seen == sorted(seen)
    tracker.succeed()
    assert tracker.snapshot(now=1e6, wall=WALL)["overall"] == 1.0
