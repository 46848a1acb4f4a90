"""What every pipeline offers the runner, and what it can end with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.jobs.attempt import JobContext
    from shared.jobs.store import Job
    from shared.settings import Settings
    from shared.store.storage import LocalStorage


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The pipeline finished; `result` goes on the job."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AwaitConfirmation:
    """The pipeline stops for the user's decision; `preview` goes on the job."""

    preview: dict[str, Any]


Outcome = Succeeded | AwaitConfirmation


def hold_for_confirmation(
    ctx: JobContext,
    preview: dict[str, Any],
    *,
    errors: int,
    confirm: bool,
    skip_invalid: bool,
    refused: str,
) -> AwaitConfirmation | None:
    """An import's decision once its report is ready: wait for the user, fail, or go on.

    With errors (and no `skip_invalid`) it waits, or with `confirm` fails with
    `validation_failed` (`refused` says why) keeping the report as the preview. Without
    `confirm` it waits. Otherwise it goes on (None), the report staying on the job.
    """
    from shared.errors import ValidationFailed

    if errors and not skip_invalid:
        if confirm:
            ctx.store.save_preview(ctx.job.id, ctx.attempt, preview)
            raise ValidationFailed(refused, details={"error_count": errors})
        return AwaitConfirmation(preview)
    if not confirm:
        return AwaitConfirmation(preview)
    ctx.store.save_preview(ctx.job.id, ctx.attempt, preview)
    return None


class Pipeline(Protocol):
    """The work of one job type, run inside an attempt."""

    phases: tuple[tuple[str, bool], ...]

    def run(self, ctx: JobContext) -> Outcome:
        """Do the work; raise FerryError, JobCancelled or LeaseLost to stop."""

    def discard(self, job: Job, settings: Settings) -> None:
        """Remove what the job wrote outside storage (e.g. staging tables), if anything."""


Pipelines = Mapping[str, Pipeline]


def discard_job(
    job: Job,
    *,
    settings: Settings,
    storage: LocalStorage,
    pipelines: Pipelines,
    up_to_attempt: int | None = None,
) -> None:
    """Remove what a failed or cancelled job left: work folders and published output
    (with `up_to_attempt`, those of that attempt and earlier ones only: an attempt that
    cleans up never touches a later attempt's), and what the pipeline keeps outside
    storage (staging tables).

    The upload stays, so the job can be restarted; the sweeper removes it once
    FERRY_UPLOAD_RETENTION_HOURS have passed (SPEC 8). Callers run this only while they
    hold the job (inside the state change that ends it), never after losing it.
    """
    older_than = None if up_to_attempt is None else up_to_attempt + 1
    storage.remove_work(job.id, older_than=older_than)
    storage.remove_output(job.id, older_than=older_than)
    pipeline = pipelines.get(job.type)
    if pipeline is not None:
        pipeline.discard(job, settings)
