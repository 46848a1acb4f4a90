"""Cancel latency of running exports, and what heartbeats, progress and cancel checks cost.

    .venv/bin/python bench/cancel.py [--samples 200_000] [--jobs 12] [--repeat 3] [--keep-db]

Part 1, latency (SPEC 7): `--jobs` archive exports of one seeded account run one after the
other in a real `ferry worker --concurrency 1`, slowed with FERRY_MAX_ROWS_PER_SECOND so
each would take about `--job-seconds`. Each is cancelled (JobService.cancel, what
`POST /jobs/{id}/cancel` calls) after a random delay once it is `running`; the latency is
from that call to the moment the job row says `cancelled` AND storage holds neither
`work/<id>` nor `exports/<id>`. Target: p95 < 1 s.

Part 2, overhead (SPEC 6, 12): the export pipeline runs in this process on the same
account, unthrottled, `--repeat` times in each of two modes, alternating which goes first:
- "with": exactly what the worker runs: a real `Watcher` thread (Redis cancel flag every
  0.1 s, heartbeat + jobs-row cancel check every min(lease/3, 2 s)), live progress to
  Redis (at most 4/s), Postgres snapshots at phase boundaries and every 5 s, and a cancel
  check at every batch;
- "without": the same pipeline, data, storage and checkpoints, with a `JobContext` whose
  `check`, `advance` and `report` do nothing and whose watcher is never started.
The overhead is median(with) / median(without) - 1; the time spent inside the progress
and cancel calls on the pipeline's own thread is measured directly too (the watcher's
own thread shows up only in the A/B difference). Target: < 3 %.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Bench,
    Worker,
    base_parser,
    bench_session,
    log,
    median,
    percentile,
    table,
    verdict,
    write_result,
)
from shared.errors import Conflict
from shared.jobs.attempt import JobContext, Watcher
from shared.jobs.pipeline import Succeeded
from shared.jobs.progress import ProgressTracker
from shared.jobs.store import JobStore
from shared.params import parse_export_request
from shared.pipelines import PIPELINES
from shared.store.accounts import Account

P95_TARGET_SECONDS = 1.0
OVERHEAD_TARGET = 0.03
CANCEL_TIMEOUT = 30.0
R = TypeVar("R")
# One overhead measurement: (the "with" run, the "without" run).
Pair = tuple[dict[str, Any], dict[str, Any]]


# --- part 1: cancel latency ------------------------------------------------------------------


def storage_left(bench: Bench, job_id: str) -> list[str]:
    """What storage still holds for the job (work folder, published export)."""
    root = bench.storage.root
    return [area for area in ("work", "exports") if (root / area / job_id).exists()]


def cancel_one(bench: Bench, account: Account, worker: Worker, delay: float) -> dict[str, Any]:
    """Queue an export, cancel it `delay` s after it runs; time until cancelled and clean."""
    service = bench.service
    job, _ = service.submit_export(account.id, {"type": "archive"})

    def running() -> bool:
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.text()[-4000:]}")
        return service.get(job.id).status == "running"

    deadline = time.monotonic() + 120
    while not running():
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job.id} never started running")
        time.sleep(0.01)
    time.sleep(delay)
    progress = bench.live.get_progress(job.id) or {}
    started = time.perf_counter()
    try:
        service.cancel(job.id)
    except Conflict:
        done = bench.wait_terminal(job.id, worker=worker)
        return {"job_id": job.id, "delay": delay, "outcome": f"ended first ({done.status})"}
    call = time.perf_counter() - started
    while True:
        current = service.get(job.id)
        left = storage_left(bench, job.id)
        elapsed = time.perf_counter() - started
        if current.status == "cancelled" and not left:
            outcome = "cancelled"
            break
        if current.status in ("succeeded", "failed"):
            outcome = f"ended {current.status} despite the cancel"
            break
        if elapsed > CANCEL_TIMEOUT:
            outcome = f"timed out ({current.status}, storage {left})"
            break
        time.sleep(0.005)
    return {
        "job_id": job.id,
        "delay": delay,
        "phase": progress.get("phase"),
        "overall": progress.get("overall"),
        "call_seconds": call,
        "seconds": elapsed,
        "outcome": outcome,
    }


def cancel_latencies(
    bench: Bench, account: Account, *, jobs: int, job_seconds: float, rng: random.Random
) -> tuple[list[dict[str, Any]], float]:
    """Cancel `jobs` running exports at random points; every measurement."""
    rows = account_rows(bench, account)
    rate = max(1.0, rows / job_seconds)
    worker = bench.start_worker(FERRY_MAX_ROWS_PER_SECOND=f"{rate:.1f}")
    runs = []
    try:
        for index in range(jobs):
            delay = rng.uniform(0.1, 0.85 * job_seconds)
            run = cancel_one(bench, account, worker, delay)
            runs.append(run)
            seconds = run.get("seconds")
            shown = f"{seconds * 1000:.0f} ms" if seconds is not None else "-"
            log(
                f"cancel {index + 1}/{jobs}: after {delay:.2f}s in {run.get('phase')}:"
                f" {run['outcome']} in {shown}"
            )
    finally:
        bench.stop_worker(worker)
    return runs, rate


def account_rows(bench: Bench, account: Account) -> int:
    """Places + items + samples of the account (what an export advances through)."""
    query = (
        "SELECT (SELECT count(*) FROM places WHERE account_id = %(a)s)"
        " + (SELECT count(*) FROM timeline_items WHERE account_id = %(a)s)"
        " + (SELECT count(*) FROM samples WHERE account_id = %(a)s)"
    )
    return int(bench.sql(query, {"a": account.id})[0][0])


# --- part 2: overhead ------------------------------------------------------------------------


class CountingWatcher(Watcher):
    """The real watcher, counting its Redis polls and heartbeats."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.polls = 0
        self.beats = 0

    def _redis_flag(self) -> bool:
        self.polls += 1
        return super()._redis_flag()

    def _beat(self) -> None:
        self.beats += 1
        super()._beat()


class TimedContext(JobContext):
    """The real JobContext; times the pipeline thread's progress and cancel calls.

    Time is charged to the outermost call (advance -> check -> report counts once, as
    "advance"); `calls` counts every call, nested ones included.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spent: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._depth = 0

    def _timed(self, name: str, call: Callable[[], R]) -> R:
        self.calls[name] += 1
        if self._depth:
            return call()
        self._depth += 1
        started = time.perf_counter()
        try:
            return call()
        finally:
            self.spent[name] += time.perf_counter() - started
            self._depth -= 1

    def check(self) -> None:
        self._timed("check", super().check)

    def advance(self, rows: int) -> None:
        self._timed("advance", lambda: super(TimedContext, self).advance(rows))

    def start_phase(self, name: str) -> None:
        self._timed("boundary", lambda: super(TimedContext, self).start_phase(name))

    def finish_phase(self) -> None:
        self._timed("boundary", super().finish_phase)

    def report(self, *, force: bool = False, now: float | None = None) -> None:
        self._timed("report", lambda: super(TimedContext, self).report(force=force, now=now))


class QuietContext(JobContext):
    """A JobContext without progress writes or cancel checks (its watcher never runs)."""

    def check(self) -> None:
        """No cancel or lease check."""

    def advance(self, rows: int) -> None:
        """No counting, no report."""

    def report(self, *, force: bool = False, now: float | None = None) -> None:
        """No Redis, no Postgres snapshot."""

    def start_phase(self, name: str) -> None:
        self.tracker.start(name)

    def finish_phase(self) -> None:
        self.tracker.complete_phase()


def export_in_process(bench: Bench, account: Account, *, real: bool) -> dict[str, Any]:
    """One export pipeline run in this process; its time and what the side channels did."""
    store = JobStore(bench.engine)
    job_type, params = parse_export_request({"type": "archive"})
    created, _ = store.create(account_id=account.id, type=job_type, params=params)
    job = store.claim(created.id, worker=f"bench:{os.getpid()}")
    assert job is not None
    pipeline = PIPELINES[job.type]
    watcher = CountingWatcher(
        store=store,
        live=bench.live,
        job_id=job.id,
        attempt=job.attempt,
        heartbeat_seconds=bench.settings.heartbeat_seconds,
        lease_seconds=bench.settings.lease_seconds,
    )
    context = TimedContext if real else QuietContext
    ctx = context(
        job=job,
        settings=bench.settings,
        engine=bench.engine,
        store=store,
        live=bench.live,
        storage=bench.storage,
        tracker=ProgressTracker(pipeline.phases, started=time.monotonic()),
        watcher=watcher,
    )
    started, cpu = time.perf_counter(), time.process_time()
    if real:
        watcher.start()
    try:
        # What JobRunner does around the pipeline.
        ctx.report(force=True)
        outcome = pipeline.run(ctx)
        ctx.check()
    finally:
        watcher.stop()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert isinstance(outcome, Succeeded), outcome
    ctx.tracker.succeed()
    store.succeed(job.id, job.attempt, result=outcome.result, progress=ctx.snapshot())
    bench.storage.remove_job(job.id)
    run: dict[str, Any] = {
        "mode": "with" if real else "without",
        "seconds": seconds,
        "cpu_seconds": cpu,
    }
    if isinstance(ctx, TimedContext):
        run.update(
            inside_calls_seconds=sum(ctx.spent.values()),
            per_batch_seconds=ctx.spent["advance"] + ctx.spent["check"],
            boundary_seconds=ctx.spent["boundary"] + ctx.spent["report"],
            calls=dict(ctx.calls),
            redis_polls=watcher.polls,
            heartbeats=watcher.beats,
        )
    return run


def overhead(bench: Bench, account: Account, repeat: int) -> list[Pair]:
    """`repeat` pairs of with/without runs, alternating which goes first."""
    export_in_process(bench, account, real=False)  # warm caches and connections (not counted)
    pairs: list[Pair] = []
    for index in range(repeat):
        order = (True, False) if index % 2 == 0 else (False, True)
        runs = {real: export_in_process(bench, account, real=real) for real in order}
        pairs.append((runs[True], runs[False]))
        log(
            f"overhead pair {index + 1}/{repeat}: with {runs[True]['seconds']:.3f}s,"
            f" without {runs[False]['seconds']:.3f}s"
        )
    return pairs


def _percent(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.1f}" if base > 0 else "-"


# --- the run ---------------------------------------------------------------------------------


def main() -> int:
    """Run both parts; 0 when they ran (targets are reported, not enforced)."""
    parser = base_parser(__doc__.splitlines()[0], samples=200_000)
    parser.add_argument("--jobs", type=int, default=12, help="exports to cancel (default 12)")
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=6.0,
        help="how long each throttled export would run uncancelled (default 6)",
    )
    parser.add_argument("--seed", type=int, help="random seed of the cancel points")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    rng = random.Random(args.seed)
    # The in-process runs must not be throttled, whatever the environment says.
    with bench_session("cancel", keep_db=args.keep_db, max_rows_per_second=0.0) as bench:
        account, stats = bench.seed_account("cancel", args.samples)
        runs, rate = cancel_latencies(
            bench, account, jobs=args.jobs, job_seconds=args.job_seconds, rng=rng
        )
        pairs = overhead(bench, account, args.repeat)
        heartbeat = bench.settings.heartbeat_seconds
    summary = report(runs, pairs, rate=rate, samples=stats.samples, heartbeat=heartbeat)
    path = write_result(
        "cancel",
        {
            "args": vars(args),
            "samples": stats.samples,
            "rows_per_second": rate,
            "cancels": runs,
            "overhead_pairs": [{"with": w, "without": wo} for w, wo in pairs],
            "summary": summary,
        },
    )
    print(f"\nresults: {path}")
    return 0


def report(
    runs: list[dict[str, Any]],
    pairs: list[Pair],
    *,
    rate: float,
    samples: int,
    heartbeat: float,
) -> dict[str, Any]:
    """Print both parts' tables and target lines; the summary for the JSON file."""
    print(f"\nCancel latency: {len(runs)} running exports of {samples:,} samples")
    print(f"(throttled to {rate:,.0f} rows/s; call -> cancelled + work/ and exports/ gone)\n")
    rows = [
        [
            index + 1,
            f"{run['delay']:.2f}",
            run.get("phase") or "-",
            f"{run['call_seconds'] * 1000:.0f}" if "call_seconds" in run else "-",
            f"{run['seconds'] * 1000:.0f}" if "seconds" in run else "-",
            run["outcome"],
        ]
        for index, run in enumerate(runs)
    ]
    print(table(["job", "delay s", "phase", "call ms", "latency ms", "outcome"], rows))
    measured = [r["seconds"] for r in runs if "seconds" in r]
    bad = [r for r in runs if "seconds" in r and r["outcome"] != "cancelled"]
    p50, p95 = percentile(measured, 50), percentile(measured, 95)
    worst = max(measured) if measured else float("nan")
    print(
        f"\nmeasured {len(measured)} of {len(runs)}"
        f" ({len(runs) - len(measured)} ended before the cancel; {len(bad)} not cancelled)"
    )
    print(f"p50 {p50 * 1000:.0f} ms   p95 {p95 * 1000:.0f} ms   max {worst * 1000:.0f} ms")
    print(
        f"p95 target < {P95_TARGET_SECONDS * 1000:.0f} ms  "
        f"{verdict(p95 < P95_TARGET_SECONDS and not bad and len(measured) >= 10)}"
        + ("" if len(measured) >= 10 else "  (fewer than 10 measured: use more --jobs)")
    )

    print(f"\nOverhead of heartbeats (every {heartbeat:g} s), progress and cancel checks")
    print("(in-process export pipeline, same data; with = real watcher + progress + checks)\n")
    rows = []
    for index, (with_run, without_run) in enumerate(pairs):
        rows.append(
            [
                index + 1,
                "with first" if index % 2 == 0 else "without first",
                without_run["seconds"],
                with_run["seconds"],
                _percent(with_run["seconds"], without_run["seconds"]),
                _percent(with_run["cpu_seconds"], without_run["cpu_seconds"]),
                f"{with_run['per_batch_seconds'] * 1000:.1f}",
                f"{with_run['boundary_seconds'] * 1000:.1f}",
                with_run["calls"].get("advance", 0),
                with_run["calls"].get("report", 0),
                with_run["heartbeats"],
                with_run["redis_polls"],
            ]
        )
    headers = ["pair", "order", "without s", "with s", "wall %", "cpu %", "batch ms"]
    headers += ["boundary ms", "advances", "reports", "heartbeats", "flag polls"]
    print(table(headers, rows))
    print(
        "\nwall % / cpu %: with vs without, wall time and this process's CPU time;"
        " batch ms: time in advance/check"
        "\n(cancel checks, throttled Redis progress); boundary ms: phase boundaries"
        " (Redis + Postgres snapshot)"
    )
    with_median = median([w["seconds"] for w, _ in pairs])
    without_median = median([wo["seconds"] for _, wo in pairs])
    measured_overhead = with_median / without_median - 1
    paired = median([w["seconds"] / wo["seconds"] - 1 for w, wo in pairs])
    cpu = (
        median([w["cpu_seconds"] for w, _ in pairs])
        / median([wo["cpu_seconds"] for _, wo in pairs])
        - 1
    )
    inside = median([w["inside_calls_seconds"] / w["seconds"] for w, _ in pairs])
    batch = median([w["per_batch_seconds"] / w["seconds"] for w, _ in pairs])
    ok = measured_overhead < OVERHEAD_TARGET
    print(
        f"\nmedian without {without_median:.3f} s, with {with_median:.3f} s:"
        f" overhead {measured_overhead * 100:+.2f} %"
        f"  (target < {OVERHEAD_TARGET * 100:.0f} %)  {verdict(ok)}"
    )
    print(f"median of paired wall differences  {paired * 100:+.2f} %")
    print(f"CPU time of the process (medians)  {cpu * 100:+.2f} %")
    print(
        f"inside the calls on the pipeline thread: {inside * 100:.2f} % of the run"
        f" ({batch * 100:.2f} % per batch, the rest at phase boundaries)"
    )
    return {
        "cancel": {
            "jobs": len(runs),
            "measured": len(measured),
            "not_cancelled": len(bad),
            "p50_seconds": p50,
            "p95_seconds": p95,
            "max_seconds": worst,
            "target_p95_seconds": P95_TARGET_SECONDS,
        },
        "overhead": {
            "with_median_seconds": with_median,
            "without_median_seconds": without_median,
            "overhead": measured_overhead,
            "paired_median": paired,
            "cpu_overhead": cpu,
            "inside_calls_share": inside,
            "per_batch_share": batch,
            "target": OVERHEAD_TARGET,
        },
    }


if __name__ == "__main__":
    sys.exit(main())
