"""Ferry's Celery tasks: a few lines each; the lifecycle lives in `shared.jobs.runner`."""

from __future__ import annotations

from celery import Celery

from shared.keys import TASK_RUN_JOB, TASK_SWEEP
from worker.resources import resources


def register(app: Celery) -> None:
    """Register the tasks on `app`."""

    @app.task(name=TASK_RUN_JOB, ignore_result=True)
    def run_job(job_id: str) -> str | None:
        """Run one delivery of a job (claiming it first; a duplicate does nothing)."""
        return resources(app).runner.run(job_id)

    @app.task(name=TASK_SWEEP, ignore_result=True)
    def sweep() -> None:
        """One sweep: recover interrupted attempts and lost messages, remove leftovers."""
        resources(app).sweeper.sweep()
