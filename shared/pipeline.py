"""What every pipeline offers the runner, and what it can end with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.attempt import JobContext
    from shared.jobstore import Job
    from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The pipeline finished; `result` goes on the job."""

    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AwaitConfirmation:
    """The pipeline stops for the user's decision; `preview` goes on the job."""

    preview: dict[str, Any]


Outcome = Succeeded | AwaitConfirmation


class Pipeline(Protocol):
    """The work of one job type, run inside an attempt."""

    phases: tuple[tuple[str, bool], ...]

    def run(self, ctx: JobContext) -> Outcome:
        """Do the work; raise FerryError, JobCancelled or LeaseLost to stop."""

    def discard(self, job: Job, settings: Settings) -> None:
        """Remove what the job wrote outside storage (e.g. staging tables), if anything."""
