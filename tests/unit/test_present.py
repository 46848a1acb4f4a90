"""What the pages say of a job (web/present.py): phases, percentages, ETAs, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.jobs.states import PHASES, JobType
from web import present

SPEC_ERROR_CODES = (
    "bad_request",
    "validation_failed",
    "bad_archive",
    "bad_file",
    "unsupported_version",
    "conflict",
    "rollback_expired",
    "storage_error",
    "database_error",
    "interrupted",
    "internal",
)


def export(status: str, progress: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "export.archive", "status": status, "progress": progress}


def test_given_an_export_in_its_samples_phase_then_earlier_phases_are_done_and_later_to_do() -> (
    None
):
    job = export(
        "running",
        {"phase": "samples", "phase_index": 3, "phase_done": 250, "phase_total": 1000},
    )

    lines = present.phase_lines(job)

    assert [line.name for line in lines] == [name for name, _ in PHASES[JobType.EXPORT_ARCHIVE]]
    assert [line.state for line in lines] == ["done", "done", "done", "current", "pending"]
    current = lines[3]
    assert (current.done, current.total, current.percent) == (250, 1000, 25)


def test_given_a_succeeded_job_then_every_phase_is_done_and_it_shows_100() -> None:
    job = export("succeeded", {"phase": "finalize", "overall": 1.0})

    assert {line.state for line in present.phase_lines(job)} == {"done"}
    assert present.percent(job["progress"], "succeeded") == 100


def test_given_a_job_that_has_not_succeeded_then_it_never_shows_100() -> None:
    assert present.percent({"overall": 0.999}, "running") == 99
    assert present.percent({"overall": 1.0}, "cancelling") == 99
    assert present.percent(None, "queued") == 0
    assert present.percent({"overall": 0.42}, "running") == 42


def test_given_a_rollback_in_its_restore_phase_then_its_own_phases_are_listed() -> None:
    job = {"type": "import.rollback", "status": "running", "progress": {"phase": "restore"}}

    assert [(line.label, line.state) for line in present.phase_lines(job)] == [
        ("Checking", "done"),
        ("Restoring", "current"),
        ("Finishing", "pending"),
    ]


def test_given_eta_seconds_then_words_only_while_running() -> None:
    assert present.eta_words({"eta_seconds": 12.4}, "running") == "about 12 s left"
    assert present.eta_words({"eta_seconds": 185}, "running") == "about 3 min left"
    assert present.eta_words({"eta_seconds": 7300}, "running") == "about 2 h 1 min left"
    assert present.eta_words({"eta_seconds": 12}, "succeeded") == ""
    assert present.eta_words({"eta_seconds": None}, "running") == ""


def test_given_every_error_code_of_the_spec_then_each_has_its_own_advice() -> None:
    advice = {code: present.error_advice({"code": code}) for code in SPEC_ERROR_CODES}

    assert all(advice.values())
    assert len(set(advice.values())) == len(SPEC_ERROR_CODES)
    assert present.error_advice({"code": "something-new"}) == advice["internal"]
    assert present.error_advice(None) == ""


def test_given_a_time_then_its_age_in_words() -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    assert present.age_words(now - timedelta(seconds=30), now) == "30 s"
    assert present.age_words(now - timedelta(days=3), now) == "3 d"
    assert present.age_words(None, now) == ""
