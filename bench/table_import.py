"""The import part of bench/tables.py: a CSV table import through a real worker vs raw
`COPY samples FROM STDIN (FORMAT csv)` of the same file, in the same run.

Preparation (not timed): the account's samples are exported once as CSV by a real worker
(every column, Ferry's own file), then the account's samples are emptied; its items and
places stay, so every sample's `timeline_item_id` resolves as it did. Ferry: the file
imported into that account (`import.table`, table samples, upsert, confirm=true) by a real
`ferry worker --concurrency 1` (read, validate, apply, finalize); queued -> succeeded from
the job row; the samples are emptied again after each run. Raw: `\\copy <scratch>
(<the same columns>) FROM '<file>' (FORMAT csv, HEADER)` with psql into a table created
`(LIKE samples INCLUDING ALL)` whose account_id defaults to the account (dropped and
re-created before each run). The sides alternate their order; peak RSS is the worker pool
child's that ran the import.

Targets (SPEC 12): ratio <= 2.0; peak RSS < 150 MB and flat (1 M vs 100 k differ by less
than 50 MB).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.common import (
    Bench,
    RssSampler,
    Targets,
    Worker,
    job_seconds,
    log,
    phase_seconds,
    psql,
    side_by_side,
    timed_shell,
)
from shared.store.accounts import Account
from shared.store.seed import SeedStats
from shared.tables.columns import TABLES
from shared.tables.params import parse_table_import

TARGETS = Targets(ratio=2.0, rss_mb=150.0, flat_mb=50.0)
SCRATCH = "bench_table_import_copy"


def export_csv(bench: Bench, account: Account, worker: Worker, samples: int) -> Path:
    """The account's samples as Ferry's CSV, kept in the bench's folder; then the account's
    samples are emptied (items and places stay)."""
    body = {"type": "table", "table": "samples", "format": "csv", "delivery": "background"}
    job, _ = bench.service.submit_export(account.id, body)
    done = bench.wait_terminal(job.id, worker=worker)
    bench.require_succeeded(done, worker)
    result = done.result or {}
    path = bench.tmp / f"samples-{samples}.csv"
    shutil.copyfile(bench.storage.path(result["key"]), path)
    bench.storage.remove_output(done.id)
    bench.sql("DELETE FROM samples WHERE account_id = %s", (account.id,))
    bench.vacuum()
    log(f"exported {samples:,} samples once as CSV: {path.stat().st_size:,} bytes")
    return path


def raw_copy(bench: Bench, account: Account, path: Path, samples: int) -> float:
    """Seconds of psql `\\copy` of the CSV into a fresh table like samples."""
    bench.sql(f"DROP TABLE IF EXISTS {SCRATCH}")
    bench.sql(f"CREATE TABLE {SCRATCH} (LIKE samples INCLUDING ALL)")
    bench.sql(f"ALTER TABLE {SCRATCH} ALTER account_id SET DEFAULT '{account.id}'")
    columns = ", ".join(TABLES["samples"].names)
    try:
        seconds = timed_shell(
            psql(bench.dsn, f"\\copy {SCRATCH} ({columns}) FROM '{path}' (FORMAT csv, HEADER)")
        )
        rows = bench.sql(f"SELECT count(*) FROM {SCRATCH}")[0][0]
        if rows != samples:
            raise RuntimeError(f"raw COPY loaded {rows} rows, expected {samples}")
    finally:
        bench.sql(f"DROP TABLE IF EXISTS {SCRATCH}")
    return seconds


def ferry_import(
    bench: Bench, account: Account, worker: Worker, path: Path, samples: int
) -> dict[str, Any]:
    """One confirmed CSV import of the samples through the worker."""
    with bench.storage.incoming_file() as received, path.open("rb") as source:
        shutil.copyfileobj(source, received, 1024 * 1024)
    phases: dict[str, float] = {}
    with RssSampler(worker) as sampler:
        job = bench.service.submit_import(
            account.id,
            received=Path(received.name),
            filename=path.name,
            params=parse_table_import(table="samples", confirm=True),
        )
        done = bench.wait_terminal(job.id, worker=worker, phases=phases)
    bench.require_succeeded(done, worker)
    counts = (done.result or {}).get("counts", {})
    if counts.get("created") != samples:
        raise RuntimeError(f"import wrote {counts}, expected {samples} created")
    total, running = job_seconds(done)
    bench.sql("DELETE FROM samples WHERE account_id = %s", (account.id,))
    bench.vacuum()
    return {
        "job_id": done.id,
        "seconds": total,
        "running_seconds": running,
        "phase_seconds": phase_seconds(phases),
        "counts": counts,
        **sampler.report(done),
    }


def measure_import(bench: Bench, account: Account, stats: SeedStats, repeat: int) -> dict[str, Any]:
    """`repeat` pairs of raw and Ferry runs of one account's CSV, in a fresh worker."""
    worker = bench.start_worker()
    ferry: list[dict[str, Any]] = []
    raw: list[float] = []
    samples = stats.samples
    try:
        path = export_csv(bench, account, worker, samples)
        for index in range(repeat):
            order = ("raw", "ferry") if index % 2 == 0 else ("ferry", "raw")
            for side in order:
                if side == "raw":
                    raw.append(raw_copy(bench, account, path, samples))
                    log(f"{samples:,} csv import, run {index + 1}: raw {raw[-1]:.2f}s")
                else:
                    ferry.append(ferry_import(bench, account, worker, path, samples))
                    run = ferry[-1]
                    log(
                        f"{samples:,} csv import, run {index + 1}: ferry {run['seconds']:.2f}s,"
                        f" peak RSS {run['peak_rss_mb']} MB; phases {run['phase_seconds']}"
                    )
    finally:
        bench.stop_worker(worker)
    return side_by_side(ferry, raw, samples=samples, items=stats.items, places=stats.places)
