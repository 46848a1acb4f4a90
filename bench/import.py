"""Archive import through a real worker vs plain `COPY samples FROM STDIN`, in the same run.

    .venv/bin/python bench/import.py [--samples 1_000_000] [--repeat 3] [--flat] [--keep-db]

Preparation (not timed): seed an account, export it once through a real worker, keep the
zip, and dump the same account's sample rows with `\\copy (SELECT * FROM samples …) TO`
a file. Then the live timeline tables are emptied, so every import starts from the same
state as the raw side (an empty table).

Ferry: the zip imported into a fresh account with confirm=true by a real `ferry worker
--concurrency 1` (unpack, validate, stage, apply, edges, finalize); queued -> succeeded
from the job row; the live tables are emptied again after each run. Raw: `\\copy
bench_samples_copy FROM '<dump>'` with psql into a table created `(LIKE samples INCLUDING
ALL)` (dropped and re-created before each run). The sides alternate their order. Peak
RSS is the worker pool child's that ran the import. With --flat a 100 k-sample archive runs
too (in its own fresh worker) and the RSS difference is reported.

Targets (SPEC 12): ratio <= 1.3 at 1 M (<= 1.6 at 100 k, read from the table), peak RSS
< 300 MB, RSS(N) - RSS(100 k) < 50 MB.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Bench,
    RssSampler,
    Targets,
    Worker,
    base_parser,
    bench_session,
    job_seconds,
    log,
    phase_seconds,
    print_side_by_side,
    psql,
    side_by_side,
    timed_shell,
    write_result,
)
from shared.params import ImportArchiveParams
from shared.store.accounts import create_account
from shared.store.seed import SeedStats

TARGETS = Targets(ratio=1.3, rss_mb=300.0, flat_mb=50.0)
FLAT_SAMPLES = 100_000
SCRATCH = "bench_samples_copy"
LIVE_TABLES = "samples, timeline_items, places"


@dataclass(frozen=True)
class Source:
    """One size's inputs: the archive, the dumped sample rows, and what they hold."""

    requested: int
    stats: SeedStats
    zip_path: Path
    zip_bytes: int
    dump_path: Path


def prepare(bench: Bench, sizes: list[int]) -> list[Source]:
    """Seed, export once, dump the samples, then empty the live tables."""
    seeded = [(size, *bench.seed_account(f"source-{size}", size)) for size in sizes]
    worker = bench.start_worker()
    sources = []
    try:
        for size, account, stats in seeded:
            job, _ = bench.service.submit_export(account.id, {"type": "archive"})
            done = bench.wait_terminal(job.id, worker=worker)
            bench.require_succeeded(done, worker)
            result = done.result or {}
            zip_path = bench.tmp / f"archive-{size}.zip"
            shutil.copyfile(bench.storage.path(result["key"]), zip_path)
            bench.storage.remove_output(done.id)
            dump_path = bench.tmp / f"samples-{size}.copy"
            timed_shell(
                psql(
                    bench.dsn,
                    f"\\copy (SELECT * FROM samples WHERE account_id = '{account.id}')"
                    f" TO '{dump_path}'",
                )
            )
            log(
                f"exported {stats.samples:,} samples once: {zip_path.stat().st_size:,} bytes;"
                f" dumped rows to {dump_path.name}"
            )
            sources.append(Source(size, stats, zip_path, zip_path.stat().st_size, dump_path))
    finally:
        bench.stop_worker(worker)
    bench.sql(f"TRUNCATE {LIVE_TABLES}")
    return sources


def raw_import(bench: Bench, source: Source) -> float:
    """Seconds of `\\copy` of the dumped rows into a fresh table like samples."""
    bench.sql(f"DROP TABLE IF EXISTS {SCRATCH}")
    bench.sql(f"CREATE TABLE {SCRATCH} (LIKE samples INCLUDING ALL)")
    try:
        seconds = timed_shell(psql(bench.dsn, f"\\copy {SCRATCH} FROM '{source.dump_path}'"))
        rows = bench.sql(f"SELECT count(*) FROM {SCRATCH}")[0][0]
        if rows != source.stats.samples:
            raise RuntimeError(f"raw COPY loaded {rows} rows, expected {source.stats.samples}")
    finally:
        bench.sql(f"DROP TABLE IF EXISTS {SCRATCH}")
    return seconds


def ferry_import(bench: Bench, source: Source, worker: Worker) -> dict[str, Any]:
    """One confirmed archive import into a fresh account through the worker."""
    account = create_account(bench.engine, f"import-{uuid.uuid4().hex[:8]}")
    with bench.storage.incoming_file() as received, source.zip_path.open("rb") as zipped:
        shutil.copyfileobj(zipped, received, 1024 * 1024)
    phases: dict[str, float] = {}
    with RssSampler(worker) as sampler:
        job = bench.service.submit_import(
            account.id,
            received=Path(received.name),
            filename=source.zip_path.name,
            params=ImportArchiveParams(confirm=True),
        )
        done = bench.wait_terminal(job.id, worker=worker, phases=phases)
    bench.require_succeeded(done, worker)
    written = (done.result or {}).get("written", {})
    expected = {
        "samples": source.stats.samples,
        "items": source.stats.items,
        "places": source.stats.places,
    }
    if written != expected:
        raise RuntimeError(f"import wrote {written}, expected {expected}")
    total, running = job_seconds(done)
    bench.sql(f"TRUNCATE {LIVE_TABLES}")
    return {
        "job_id": done.id,
        "seconds": total,
        "running_seconds": running,
        "phase_seconds": phase_seconds(phases),
        "written": written,
        **sampler.report(done),
    }


def measure(bench: Bench, source: Source, repeat: int) -> dict[str, Any]:
    """`repeat` pairs of raw and Ferry runs for one archive, in a fresh worker."""
    worker = bench.start_worker()
    ferry: list[dict[str, Any]] = []
    raw: list[float] = []
    samples = source.stats.samples
    try:
        for index in range(repeat):
            order = ("raw", "ferry") if index % 2 == 0 else ("ferry", "raw")
            for side in order:
                if side == "raw":
                    raw.append(raw_import(bench, source))
                    log(f"{samples:,} samples, run {index + 1}: raw {raw[-1]:.2f}s")
                else:
                    ferry.append(ferry_import(bench, source, worker))
                    run = ferry[-1]
                    log(
                        f"{samples:,} samples, run {index + 1}: ferry {run['seconds']:.2f}s,"
                        f" peak RSS {run['peak_rss_mb']} MB; phases {run['phase_seconds']}"
                    )
    finally:
        bench.stop_worker(worker)
    return side_by_side(
        ferry,
        raw,
        requested_samples=source.requested,
        samples=samples,
        items=source.stats.items,
        places=source.stats.places,
        zip_bytes=source.zip_bytes,
    )


def main() -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--flat", action="store_true", help=f"also run {FLAT_SAMPLES:,} samples (RSS flatness)"
    )
    args = parser.parse_args()
    sizes = [args.samples]
    if args.flat and args.samples != FLAT_SAMPLES:
        sizes.append(FLAT_SAMPLES)
    with bench_session("import", keep_db=args.keep_db) as bench:
        sources = prepare(bench, sizes)
        results = [measure(bench, source, args.repeat) for source in sources]
    summary = print_side_by_side(
        "Archive import: Ferry (real worker, confirm=true) vs psql \\copy samples-like FROM file",
        results,
        TARGETS,
        raw_note="  (COPY of the same sample rows into an empty table like samples)",
    )
    path = write_result("import", {"args": vars(args), "sizes": results, "summary": summary})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
