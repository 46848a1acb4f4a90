"""Small in-test pipelines and helpers for driving the job lifecycle in-process.

Each pipeline follows the `shared.jobs.pipeline.Pipeline` protocol (`phases`, `run(ctx)`,
`discard(job, settings)`) and records what happened to it, so a test can say what the
runner did to the work rather than only that the runner returned.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable

from shared.jobs.attempt import JobContext
from shared.jobs.pipeline import AwaitConfirmation, Outcome, Succeeded
from shared.jobs.store import Job
from shared.settings import Settings
from tests import polling

FAKE_TYPE = "test.fake"
PHASES: tuple[tuple[str, bool], ...] = (("prepare", False), ("rows", True), ("finalize", False))


# In-process runs move fast: poll more often than across processes.
wait_for = functools.partial(polling.wait_for, interval=0.02)


class _Recorder:
    """What every fake remembers: how often it ran, and which jobs it was told to discard."""

    phases = PHASES

    def __init__(self) -> None:
        self.calls = 0
        self.attempts: list[int] = []
        self.discarded: list[str] = []

    def _enter(self, ctx: JobContext) -> None:
        self.calls += 1
        self.attempts.append(ctx.attempt)
        # Something in the attempt's own work folder, as a real pipeline would leave.
        (ctx.work_dir / "partial.bin").write_bytes(b"half a file")

    def discard(self, job: Job, settings: Settings) -> None:
        """Remember that the runner asked to remove what this job left outside storage."""
        self.discarded.append(job.id)


class CountingPipeline(_Recorder):
    """Does `rows` rows in three phases and succeeds with a result naming them."""

    def __init__(self, rows: int = 50) -> None:
        super().__init__()
        self.rows = rows

    def run(self, ctx: JobContext) -> Succeeded:
        """Prepare, count the rows one batch at a time, finalize."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        ctx.tracker.set_total("rows", self.rows)
        ctx.finish_phase()
        ctx.start_phase("rows")
        for _ in range(0, self.rows, 10):
            ctx.advance(min(10, self.rows))
        ctx.finish_phase()
        ctx.start_phase("finalize")
        ctx.finish_phase()
        return Succeeded({"rows": self.rows, "note": "counted"})


class FailingPipeline(_Recorder):
    """Writes into its work folder, then raises what `make_error` builds, every attempt."""

    def __init__(self, make_error: Callable[[], BaseException]) -> None:
        super().__init__()
        self.make_error = make_error

    def run(self, ctx: JobContext) -> Succeeded:
        """Start, then fail."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        raise self.make_error()


class EndlessPipeline(_Recorder):
    """Works in small batches until the runner's signals stop it (cancel or lost lease).

    `started` is set once it is inside its row phase; `stopped` once `run` has left,
    whichever way; `batches` counts batch boundaries passed.
    """

    def __init__(self, *, batch_seconds: float = 0.01) -> None:
        super().__init__()
        self.batch_seconds = batch_seconds
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.batches = 0
        self.raised: BaseException | None = None

    def run(self, ctx: JobContext) -> Succeeded:
        """Loop forever at batch boundaries; only an exception from `ctx` ends it."""
        try:
            self._enter(ctx)
            ctx.start_phase("prepare")
            ctx.tracker.set_total("rows", 1_000_000_000)
            ctx.finish_phase()
            ctx.start_phase("rows")
            self.started.set()
            while True:
                time.sleep(self.batch_seconds)
                ctx.advance(1)
                self.batches += 1
        except BaseException as exc:
            self.raised = exc
            raise
        finally:
            self.stopped.set()


class GatedPipeline(_Recorder):
    """Stops after every phase boundary until the test lets it go on.

    Each stop puts the boundary's name on `reached` and waits on `go`, so the test can
    look at the database while the attempt is held exactly there.
    """

    def __init__(self, rows: int = 40) -> None:
        super().__init__()
        self.rows = rows
        self.reached: queue.Queue[str] = queue.Queue()
        self.go: queue.Queue[None] = queue.Queue()

    def _hold(self, where: str) -> None:
        self.reached.put(where)
        self.go.get(timeout=30)

    def run(self, ctx: JobContext) -> Succeeded:
        """Three phases, held at the start of each and once mid-way through the rows."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        ctx.tracker.set_total("rows", self.rows)
        self._hold("prepare")
        ctx.finish_phase()
        ctx.start_phase("rows")
        self._hold("rows")
        ctx.advance(self.rows // 2)
        ctx.advance(self.rows - self.rows // 2)
        ctx.finish_phase()
        ctx.start_phase("finalize")
        self._hold("finalize")
        ctx.finish_phase()
        return Succeeded({"rows": self.rows})


class LateCancelPipeline(_Recorder):
    """Publishes its output, then the user's cancel lands just before it reports success."""

    def run(self, ctx: JobContext) -> Succeeded:
        """Write and publish a file, have the job's cancel requested, return success."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        ctx.finish_phase()
        ctx.start_phase("finalize")
        ctx.finish_phase()
        output = ctx.work_dir / "out.zip"
        output.write_bytes(b"PK finished")
        ctx.storage.publish(ctx.job.id, ctx.attempt, output, "out.zip")
        # The request arrives after the runner's last look at the signals.
        ctx.store.request_cancel(ctx.job.id)
        return Succeeded({"name": "out.zip"})


class HeldPipeline(_Recorder):
    """Starts, then waits (calling nothing of the context) until the test lets it end:
    `finish` decides how (return an outcome or raise), as the test set it up."""

    def __init__(self, finish: Callable[[JobContext], Outcome]) -> None:
        super().__init__()
        self.finish = finish
        self.started = threading.Event()
        self.go = threading.Event()

    def run(self, ctx: JobContext) -> Outcome:
        """Write into the work folder, wait for `go`, then `finish`."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        self.started.set()
        assert self.go.wait(30), "the test never let the pipeline go on"
        return self.finish(ctx)


class AwaitingPipeline(_Recorder):
    """Stops for confirmation; the user's cancel lands just before it says so."""

    def run(self, ctx: JobContext) -> Outcome:
        """Prepare, have the job's cancel requested, return AwaitConfirmation."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        ctx.finish_phase()
        ctx.store.request_cancel(ctx.job.id)
        return AwaitConfirmation({"counts": {}})


class LateOutputPipeline(_Recorder):
    """Publishes its output and succeeds (what an export does at its end)."""

    def run(self, ctx: JobContext) -> Succeeded:
        """Write and publish a file, return success."""
        self._enter(ctx)
        ctx.start_phase("prepare")
        ctx.finish_phase()
        output = ctx.work_dir / "out.zip"
        output.write_bytes(b"PK finished")
        ctx.storage.publish(ctx.job.id, ctx.attempt, output, "out.zip")
        return Succeeded({"name": "out.zip"})
