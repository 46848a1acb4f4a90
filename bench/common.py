"""What the benchmarks share: an isolated environment, real workers, RSS sampling, output.

Every benchmark gets its own database (`ferry_bench_<name>`, migrated with
`shared.store.migrate.upgrade`), its own Redis key prefix and Celery queues, and its own storage
folder under a temporary directory. Jobs run in real `ferry worker` processes
(`python -m cli worker --concurrency 1`), started with the benchmark's environment the way
tests/e2e/harness.py does.

Memory is the worker's, not the benchmark's: a sampler thread reads the RSS of the
worker's pool children (each child plus its own descendants) every 250 ms, and the kernel's
high-water mark of the child (VmHWM, reset before each job through /proc/<pid>/clear_refs)
catches any spike between samples; the peak reported is the larger of the two.

The benchmark itself stays light while it measures: on two cores its sampler and its job
polls (each a query, a Redis read and a read of the worker's log) compete with the job
and the server. Jobs are polled every 100 ms (their times come from the job rows, not
from the polls); the sampler was at 20 ms and the poll at 50 ms before 2026-12-01.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import psycopg
import redis
from sqlalchemy.engine import Engine, make_url

from shared.jobs.live import RedisLiveStore
from shared.jobs.store import Job
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.accounts import Account, create_account
from shared.store.db import libpq_dsn, make_engine, raw_connection
from shared.store.migrate import upgrade
from shared.store.seed import SeedStats, seed_timeline
from shared.store.storage import LocalStorage

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MB = 1024 * 1024
# seed_timeline's default density: a sample every 30 s on average.
SAMPLES_PER_DAY = 2880
TERMINAL = {"succeeded", "failed", "cancelled"}
T = TypeVar("T")


# --- command line ----------------------------------------------------------------------------


def base_parser(description: str, *, samples: int = 1_000_000) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--samples",
        type=lambda raw: int(raw.replace("_", "")),
        default=samples,
        help=f"samples to seed (default {samples:_})",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each side; the median is reported"
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="keep the benchmark database afterwards"
    )
    return parser


# --- numbers and output ----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mb(value: float | None) -> str:
    """Megabytes with one decimal ("-" when unknown)."""
    return "-" if value is None else f"{value:.1f}"


def verdict(ok: bool) -> str:
    """OK or MISS, for a target line."""
    return "OK" if ok else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (the load average says how quiet it was)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "memory_total_mb": round(psutil.virtual_memory().total / MB),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write bench/results/<name>-<UTC time>.json and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    payload = {"benchmark": name, "finished_at": stamp, "machine": machine_info(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def log(message: str) -> None:
    """A progress line on stderr (the summary goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(
    check: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str
) -> T:
    """Call `check` until it returns something truthy; RuntimeError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- seeding ---------------------------------------------------------------------------------


def seed_plan(samples: int) -> tuple[int, int]:
    """(days, samples_per_day) for seed_timeline that give about `samples` samples."""
    days = max(1, round(samples / SAMPLES_PER_DAY))
    return days, max(1, round(samples / days))


# --- the worker process ----------------------------------------------------------------------


@dataclass
class Worker:
    """One `ferry worker --concurrency 1` process (its own process group) and its log."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        """The Celery main process."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def text(self) -> str:
        """Its log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """The pool children (the processes that run tasks)."""
        try:
            return [c.pid for c in psutil.Process(self.pid).children()]
        except psutil.Error:
            return []

    def stop(self) -> None:
        """SIGTERM the process group (warm shutdown), SIGKILL if it lingers."""
        for sig, timeout in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)


# --- RSS -------------------------------------------------------------------------------------


def _rss(pid: int) -> int:
    """RSS of one process (bytes); 0 when it is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


def _descendants(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _reset_hwm(pid: int) -> None:
    # Linux >= 4.0: writing 5 resets VmHWM to the current RSS.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _read_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Peak RSS of each pool child of a worker while a job runs (a background thread)."""

    def __init__(self, worker: Worker, *, interval: float = 0.25) -> None:
        self.worker = worker
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.before: dict[int, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._trees: dict[int, list[int]] = {}

    def _refresh(self) -> None:
        # Listing children scans /proc: done rarely (a pool child is stable during a job).
        self._trees = {pid: _descendants(pid) for pid in self.worker.pool_pids()}

    def _tree_rss(self, pid: int) -> int:
        return _rss(pid) + sum(_rss(child) for child in self._trees.get(pid, ()))

    def __enter__(self) -> RssSampler:
        self._refresh()
        for pid in self._trees:
            self.before[pid] = self._tree_rss(pid)
            _reset_hwm(pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 0.5:
                self._refresh()
                refreshed = time.monotonic()
            for pid in list(self._trees):
                rss = self._tree_rss(pid)
                if rss > self.peaks.get(pid, 0):
                    self.peaks[pid] = rss
            self.samples += 1
            self._stop.wait(self.interval)

    def report(self, job: Job) -> dict[str, Any]:
        """Peak RSS (MB) of the child that ran `job`, its RSS before, and its VmHWM."""
        pid = _worker_pid(job)
        hwm = _read_hwm(pid) if pid else None
        peak = self.peaks.get(pid or -1)
        if peak is None and self.peaks:
            peak = max(self.peaks.values())  # job.worker unreadable: the biggest child
        return {
            "pid": pid,
            "peak_rss_mb": round(max(peak or 0, hwm or 0) / MB, 1),
            "rss_before_mb": round(self.before.get(pid or -1, 0) / MB, 1),
            "vm_hwm_mb": round(hwm / MB, 1) if hwm else None,
            "samples": self.samples,
        }


def _worker_pid(job: Job) -> int | None:
    """The pid in the job's `worker` field ("host:pid")."""
    if not job.worker:
        return None
    try:
        return int(job.worker.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


# --- the environment -------------------------------------------------------------------------


def admin_dsn(database_url: str) -> str:
    """libpq DSN of the maintenance database on the same server."""
    url = make_url(database_url).set(database="postgres")
    return libpq_dsn(url.render_as_string(hide_password=False))


@dataclass
class Bench:
    """One benchmark's database, Redis prefix, storage, services and workers."""

    name: str
    settings: Settings
    tmp: Path
    engine: Engine
    service: JobService
    storage: LocalStorage
    live: RedisLiveStore
    keep_db: bool = False
    workers: list[Worker] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    # --- life cycle ---

    @classmethod
    def create(cls, name: str, *, keep_db: bool = False, **overrides: Any) -> Bench:
        """Drop and re-create `ferry_bench_<name>`, migrate it, and wire the services."""
        from worker.celery_app import make_celery
        from worker.resources import CeleryPublisher

        base = Settings.from_env()
        database_url = (
            make_url(base.database_url)
            .set(database=f"ferry_bench_{name}")
            .render_as_string(hide_password=False)
        )
        tmp = Path(tempfile.mkdtemp(prefix=f"ferry-bench-{name}-"))
        (tmp / "storage").mkdir()
        settings = base.with_overrides(
            database_url=database_url,
            storage_url=f"file://{tmp / 'storage'}",
            redis_prefix=f"ferrybench-{name}-{uuid.uuid4().hex[:8]}",
            **overrides,
        )
        with psycopg.connect(admin_dsn(database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "ferry_bench_{name}" WITH (FORCE)')
        upgrade(database_url)
        engine = make_engine(database_url, pool_size=3)
        live = RedisLiveStore.from_url(settings.redis_url, prefix=settings.redis_prefix)
        storage = LocalStorage(settings.storage_root)
        publisher = CeleryPublisher(make_celery(settings), settings.jobs_queue)
        service = JobService(
            pipelines=PIPELINES,
            settings=settings,
            engine=engine,
            live=live,
            storage=storage,
            publisher=publisher,
        )
        log(f"database {make_url(database_url).database}, storage {tmp / 'storage'}")
        return cls(
            name=name,
            settings=settings,
            tmp=tmp,
            engine=engine,
            service=service,
            storage=storage,
            live=live,
            keep_db=keep_db,
        )

    def close(self, *, failed: bool = False) -> None:
        """Stop workers, remove Redis keys, the database (unless kept) and temp files."""
        for worker in self.workers:
            worker.stop()
        self.engine.dispose()
        client = redis.Redis.from_url(self.settings.redis_url)
        prefix = self.settings.redis_prefix
        with contextlib.suppress(redis.RedisError):
            for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*"):
                for key in client.scan_iter(match=pattern, count=1000):
                    client.delete(key)
        client.close()
        if self.keep_db:
            log(f"kept database {self.database}")
        else:
            with psycopg.connect(admin_dsn(self.settings.database_url), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if failed:
            log(f"worker logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def database(self) -> str:
        """The benchmark database's name."""
        return str(make_url(self.settings.database_url).database)

    @property
    def dsn(self) -> str:
        """libpq DSN of the benchmark database (for psql)."""
        return libpq_dsn(self.settings.database_url)

    # --- data ---

    def seed_account(self, label: str, samples: int, *, seed: int = 7) -> tuple[Account, SeedStats]:
        """A new account with a seeded timeline of about `samples` samples, vacuumed."""
        account = create_account(self.engine, f"{label}-{uuid.uuid4().hex[:6]}")
        days, per_day = seed_plan(samples)
        started = time.monotonic()
        stats = seed_timeline(
            self.settings.database_url,
            account.id,
            days=days,
            samples_per_day=per_day,
            seed=seed,
            start=datetime(2024, 1, 1, tzinfo=UTC),
        )
        log(
            f"seeded {label}: {stats.samples:,} samples, {stats.items:,} items,"
            f" {stats.places} places ({days} days) in {time.monotonic() - started:.1f}s"
        )
        self.vacuum()
        return account, stats

    def vacuum(self) -> None:
        """VACUUM ANALYZE the timeline tables: hint bits and statistics set for everyone."""
        with raw_connection(self.settings.database_url, autocommit=True) as conn:
            for table_name in ("places", "timeline_items", "samples"):
                conn.execute(f"VACUUM (ANALYZE) {table_name}")

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows (if any)."""
        with raw_connection(self.settings.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    # --- processes ---

    def env(self) -> dict[str, str]:
        """The environment of a worker process."""
        s = self.settings
        return {
            **os.environ,
            "DATABASE_URL": s.database_url,
            "REDIS_URL": s.redis_url,
            "STORAGE_URL": s.storage_url,
            "FERRY_REDIS_PREFIX": s.redis_prefix,
            "FERRY_LEASE_SECONDS": str(s.lease_seconds),
            "FERRY_SWEEP_SECONDS": str(s.sweep_seconds),
            "FERRY_MAX_ATTEMPTS": str(s.max_attempts),
            "FERRY_RETRY_BASE_SECONDS": str(s.retry_base_seconds),
            "FERRY_MAX_ROWS_PER_SECOND": str(s.max_rows_per_second),
            "FERRY_EXPORT_RETENTION_HOURS": str(s.export_retention_hours),
            "FERRY_MAX_UPLOAD_BYTES": str(s.max_upload_bytes),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start_worker(self, **extra_env: str) -> Worker:
        """Start `python -m cli worker --concurrency 1` and wait until Celery is ready."""
        log_path = self.tmp / f"worker-{len(self.workers) + 1:02d}.log"
        with log_path.open("wb") as handle:
            popen = subprocess.Popen(
                [sys.executable, "-m", "cli", "worker", "--concurrency", "1"],
                cwd=ROOT,
                env={**self.env(), **extra_env},
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(popen, log_path)
        self.workers.append(worker)

        def ready() -> bool:
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.text()[-4000:]}")
            return " ready." in worker.text() and bool(worker.pool_pids())

        wait_for(ready, timeout=90, interval=0.1, what="the worker to be ready")
        return worker

    def stop_worker(self, worker: Worker) -> None:
        """Stop one worker."""
        worker.stop()
        if worker in self.workers:
            self.workers.remove(worker)

    # --- jobs ---

    def wait_terminal(
        self,
        job_id: str,
        *,
        timeout: float = 3600,
        worker: Worker | None,
        phases: dict[str, float] | None = None,
    ) -> Job:
        """Poll the job row until it reaches a terminal status.

        Fails early when the worker dies, when its task crashed outside Ferry's error
        handling (Celery logs "raised unexpected" and the row would stay `running` until a
        sweeper notices), or when the job's heartbeat is older than the lease. With
        `phases`, records when each progress phase was first seen (time.monotonic()),
        and "end" when the job ended, for `phase_seconds`.
        """
        seen = len(worker.text()) if worker is not None else 0

        def done() -> Job | None:
            if worker is not None:
                if not worker.alive():
                    raise RuntimeError(f"the worker died:\n{worker.text()[-4000:]}")
                if "raised unexpected" in worker.text()[seen:]:
                    raise RuntimeError(f"the task crashed:\n{worker.text()[seen:][-4000:]}")
            if phases is not None:
                with contextlib.suppress(redis.RedisError):
                    phase = (self.live.get_progress(job_id) or {}).get("phase")
                    if phase and phase not in phases:
                        phases[phase] = time.monotonic()
            job = self.service.get(job_id)
            if job.status in TERMINAL:
                if phases is not None:
                    phases["end"] = time.monotonic()
                return job
            beat = job.heartbeat_at
            if job.status == "running" and beat is not None:
                silent = (datetime.now(UTC) - beat).total_seconds()
                if silent > self.settings.lease_seconds + 5:
                    tail = worker.text()[-4000:] if worker is not None else ""
                    raise RuntimeError(f"job {job_id}: no heartbeat for {silent:.0f}s\n{tail}")
            return None

        return wait_for(done, timeout=timeout, interval=0.1, what=f"job {job_id} to end")

    def require_succeeded(self, job: Job, worker: Worker | None) -> None:
        """Raise with the job's error and the worker's log tail unless it succeeded."""
        if job.status != "succeeded":
            tail = worker.text()[-4000:] if worker else ""
            raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}\n{tail}")


def phase_seconds(phases: dict[str, float]) -> dict[str, float]:
    """Seconds spent in each phase (as seen by polling live progress every 100 ms)."""
    ordered = sorted(phases.items(), key=lambda kv: kv[1])
    return {
        name: round(ordered[i + 1][1] - at, 2)
        for i, (name, at) in enumerate(ordered[:-1])
        if name != "end"
    }


def job_seconds(job: Job) -> tuple[float, float]:
    """(queued -> finished, started -> finished) in seconds, from the job row's clock."""
    assert job.finished_at is not None and job.started_at is not None
    queued = job.queued_at or job.created_at
    return (
        (job.finished_at - queued).total_seconds(),
        (job.finished_at - job.started_at).total_seconds(),
    )


def timed_shell(command: str) -> float:
    """Run a bash pipeline (pipefail), raising on failure; its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, check=False
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"command failed ({done.returncode}): {command}\n{done.stderr.decode()[-2000:]}"
        )
    return elapsed


def psql(dsn: str, command: str) -> str:
    """A psql invocation (no .psqlrc, stop on error) of one command, shell-quoted."""
    return f"psql -X -q -v ON_ERROR_STOP=1 {_quote(dsn)} -c {_quote(command)}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def bench_session(name: str, *, keep_db: bool, **overrides: Any) -> Iterator[Bench]:
    """A `Bench` that is cleaned up on the way out (logs kept when something failed)."""
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the workers are stopped too.
    signal.signal(signal.SIGTERM, _terminate)
    bench = Bench.create(name, keep_db=keep_db, **overrides)
    failed = True
    try:
        yield bench
        failed = False
    finally:
        bench.close(failed=failed)


# --- side-by-side summaries (export and import) ----------------------------------------------


@dataclass(frozen=True)
class Targets:
    """SPEC 12's targets for one side-by-side benchmark."""

    ratio: float
    rss_mb: float
    flat_mb: float


def side_by_side(ferry: list[dict[str, Any]], raw: list[float], **facts: Any) -> dict[str, Any]:
    """One size's result: every run, the medians, the ratio and the peak RSS."""
    ferry_median = median([r["seconds"] for r in ferry])
    raw_median = median(raw)
    return {
        **facts,
        "ferry_seconds": [r["seconds"] for r in ferry],
        "raw_seconds": raw,
        "ferry_median": ferry_median,
        "raw_median": raw_median,
        "ratio": ferry_median / raw_median,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ferry),
        "ferry_runs": ferry,
    }


def print_side_by_side(
    title: str, results: list[dict[str, Any]], targets: Targets, *, raw_note: str = ""
) -> dict[str, Any]:
    """Print every run and the target lines; the summary for the JSON file.

    `results[0]` is the main size; `results[1]`, when present, the small size of the
    flatness check.
    """
    rows = []
    for size in results:
        for index, (f, r) in enumerate(zip(size["ferry_runs"], size["raw_seconds"], strict=True)):
            rows.append(
                [
                    size["samples"],
                    index + 1,
                    r,
                    f["seconds"],
                    f["running_seconds"],
                    f["seconds"] / r,
                    mb(f["peak_rss_mb"]),
                    mb(f["vm_hwm_mb"]),
                    mb(f["rss_before_mb"]),
                ]
            )
    headers = ["samples", "run", "raw s", "ferry s", "(running s)", "ratio"]
    headers += ["peak RSS MB", "VmHWM MB", "idle RSS MB"]
    print(f"\n{title}\n")
    print(table(headers, rows))
    print()
    main = results[0]
    ok_ratio = main["ratio"] <= targets.ratio
    ok_rss = main["peak_rss_mb"] < targets.rss_mb
    lines = [
        f"samples            {main['samples']:,} (+{main['items']:,} items,"
        f" {main['places']} places)",
        f"raw median         {main['raw_median']:.2f} s{raw_note}",
        f"ferry median       {main['ferry_median']:.2f} s  (queued -> succeeded)",
        f"ratio              {main['ratio']:.2f}  (target <= {targets.ratio})  {verdict(ok_ratio)}",
        f"peak worker RSS    {main['peak_rss_mb']:.1f} MB  (target < {targets.rss_mb:.0f} MB)"
        f"  {verdict(ok_rss)}",
    ]
    summary: dict[str, Any] = {
        "samples": main["samples"],
        "raw_median_seconds": main["raw_median"],
        "ferry_median_seconds": main["ferry_median"],
        "ratio": main["ratio"],
        "peak_rss_mb": main["peak_rss_mb"],
        "targets": vars(targets),
        "met": {"ratio": ok_ratio, "rss": ok_rss},
    }
    if len(results) > 1:
        small = results[1]
        growth = main["peak_rss_mb"] - small["peak_rss_mb"]
        ok_flat = growth < targets.flat_mb
        lines += [
            f"peak RSS at {small['samples']:,}  {small['peak_rss_mb']:.1f} MB"
            f"  (ratio there {small['ratio']:.2f})",
            f"RSS growth         {growth:+.1f} MB  (target < {targets.flat_mb:.0f} MB)"
            f"  {verdict(ok_flat)}",
        ]
        summary["flat"] = {
            "small_samples": small["samples"],
            "small_peak_rss_mb": small["peak_rss_mb"],
            "growth_mb": growth,
        }
        summary["met"]["flat"] = ok_flat
    print("\n".join(lines))
    return summary
