"""The `import.rollback` pipeline (SPEC 13): undo one import batch, all or nothing.

Phases:
- check: the batch can still be undone; which of its rows changed since the import.
  When some did and the job does not say what to do with them (`modified`: `keep` or
  `revert`), it stops at `awaiting_confirmation` with them as its preview.
- restore: one transaction, under the per-account lock the imports take: the batch is
  marked rolled back (at most once: a second rollback finds the mark), the rows the
  import created are deleted, the rows it replaced are put back from their
  before-images, the undo data goes, and the `restored` checkpoint is written, fenced by
  attempt. A cancel, a failure or a lost lease before the commit rolls all of it back.
- finalize: nothing is left to remove (temp tables go with the transaction).
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from shared.errors import BadRequest, Conflict, JobCancelled, LeaseLost, RollbackExpired
from shared.jobs.attempt import JobContext
from shared.jobs.job import Job
from shared.jobs.pipeline import AwaitConfirmation, Outcome, Succeeded
from shared.jobs.states import PHASES, JobType
from shared.jobs.store import JobStore
from shared.settings import Settings
from shared.store.locks import lock_account_data
from shared.timefmt import utcnow
from shared.undo.batches import Batch, Batches
from shared.undo.restore import (
    KINDS,
    Marks,
    delete_created,
    forget_batch,
    mark_rolled_back,
    modified,
    plan,
    restore_replaced,
)

log = logging.getLogger(__name__)

MODIFIED_CHOICES = ("keep", "revert")


class RollbackImport:
    """The `import.rollback` pipeline."""

    phases = PHASES[JobType.IMPORT_ROLLBACK]

    def run(self, ctx: JobContext) -> Outcome:
        """Check, then stop for the user's choice or restore in one transaction."""
        if ctx.checkpoint.get("stage") == "restored":
            return self._finalize(ctx)
        choice = ctx.job.params.get("modified")
        if choice is not None and choice not in MODIFIED_CHOICES:
            raise BadRequest("modified must be keep or revert", details={"field": "modified"})
        ctx.start_phase("check")
        batch = Batches(ctx.engine).get(
            str(ctx.job.params.get("import_id")), account_id=ctx.job.account_id
        )
        batch.check_undoable(ctx.settings.rollback_hours)
        marks = _marks(batch)
        if choice is None:
            with ctx.connect() as conn:
                found = modified(conn, marks)
                conn.rollback()
            if found["modified"]:
                return AwaitConfirmation(_preview(marks, found))
        ctx.finish_phase()
        waiting = self._restore(ctx, batch, marks, choice)
        if waiting is not None:
            return waiting
        return self._finalize(ctx)

    def discard(self, job: Job, settings: Settings) -> None:
        """Nothing: a rollback writes only inside its one transaction."""

    def _restore(
        self, ctx: JobContext, batch: Batch, marks: Marks, choice: str | None
    ) -> AwaitConfirmation | None:
        ctx.start_phase("restore")
        with ctx.connect() as conn:
            unregister = ctx.watcher.on_interrupt(conn.cancel_safe)
            try:
                lock_account_data(conn, marks.account_id)
                why = mark_rolled_back(conn, marks, rollback_job_id=ctx.job.id)
                until = batch.rollback_until(ctx.settings.rollback_hours)
                if why is None and until is not None and utcnow() > until:
                    why = "expired"
                if why is not None:
                    conn.rollback()
                    raise _refusal(why)
                if choice is None:
                    # Under the lock now: something may have changed since the check.
                    found = modified(conn, marks)
                    if found["modified"]:
                        conn.rollback()
                        return AwaitConfirmation(_preview(marks, found))
                result = self._undo(ctx, conn, marks, choice)
                checkpoint = {**ctx.checkpoint, "stage": "restored", "result": result}
                if not JobStore.checkpoint_within(conn, ctx.job.id, ctx.attempt, checkpoint):
                    conn.rollback()
                    if ctx.cancel_requested or ctx.store.get(ctx.job.id).status == "cancelling":
                        raise JobCancelled(ctx.job.id)
                    raise LeaseLost(f"attempt {ctx.attempt} of job {ctx.job.id} lost its lease")
                conn.commit()
            finally:
                unregister()
        ctx.committed = True
        ctx.checkpoint = checkpoint
        log.info("job %s: rolled back import %s: %s", ctx.job.id, marks.import_id, result)
        return None

    @staticmethod
    def _undo(
        ctx: JobContext, conn: psycopg.Connection, marks: Marks, choice: str | None
    ) -> dict[str, Any]:
        counts = plan(conn, marks, revert=choice == "revert")
        ctx.tracker.set_total(
            "restore", sum(counts["delete"].values()) + sum(counts["restore"].values())
        )
        ctx.report(force=True)
        deleted: dict[str, int] = {}
        restored: dict[str, int] = {}
        # Deletions first, from the rows that point (samples) to those pointed at (places);
        # restores the other way round, so every reference finds its row.
        for kind in reversed(KINDS):
            deleted[kind] = delete_created(conn, marks, kind, revert=choice == "revert")
            ctx.advance(counts["delete"][kind])
        for kind in KINDS:
            restored[kind] = restore_replaced(conn, marks, kind)
            ctx.advance(counts["restore"][kind])
        forget_batch(conn, marks)
        ctx.check()
        return {
            "import_id": marks.import_id,
            "deleted": deleted,
            "restored": restored,
            "modified": choice,
        }

    def _finalize(self, ctx: JobContext) -> Succeeded:
        ctx.committed = True
        ctx.start_phase("finalize")
        ctx.finish_phase()
        return Succeeded(dict(ctx.checkpoint.get("result") or {}))


def _marks(batch: Batch) -> Marks:
    result = batch.job.result or {}
    return Marks(
        import_id=batch.job.id,
        account_id=batch.job.account_id,
        apply_xid=str(result["apply_xid"]),
        apply_xmin=str(result["apply_xmin"]),
    )


def _preview(marks: Marks, found: dict[str, Any]) -> dict[str, Any]:
    return {"import_id": marks.import_id, "choices": list(MODIFIED_CHOICES), **found}


def _refusal(why: str) -> Conflict | RollbackExpired:
    if why == "rolled_back":
        return Conflict("this import was rolled back already")
    return RollbackExpired("this import's rollback_until has passed; its undo data is gone")
