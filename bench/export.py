"""Archive export through a real worker vs the raw PostgreSQL pipeline, in the same run.

    .venv/bin/python bench/export.py [--samples 1_000_000] [--repeat 3] [--flat] [--keep-db]

Ferry: an `export.archive` job (places, items and samples; samples gzipped, the default)
queued with JobService and run by a real `ferry worker --concurrency 1`; its time is
queued -> succeeded from the job row. Raw: `psql -c "COPY (SELECT row_to_json(s) FROM
samples s WHERE account_id = '…') TO STDOUT" | gzip -1 > /dev/null` on the same data. The
two alternate their order from one repeat to the next. Peak RSS is the worker pool child's
that ran the job. With --flat a second account of 100 k samples runs too (in a fresh
worker) and the RSS difference between the sizes is reported.

Targets (SPEC 12): ratio <= 1.5, peak RSS < 250 MB, RSS(N) - RSS(100 k) < 50 MB.
"""

from __future__ import annotations

import sys
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
from shared.store.accounts import Account

TARGETS = Targets(ratio=1.5, rss_mb=250.0, flat_mb=50.0)
FLAT_SAMPLES = 100_000


def raw_export(bench: Bench, account: Account) -> float:
    """Seconds of the raw COPY | gzip -1 pipeline for the account's samples."""
    copy = (
        f"COPY (SELECT row_to_json(s) FROM samples s WHERE account_id = '{account.id}') TO STDOUT"
    )
    return timed_shell(f"{psql(bench.dsn, copy)} | gzip -1 > /dev/null")


def ferry_export(bench: Bench, account: Account, worker: Worker, expected: int) -> dict[str, Any]:
    """One archive export job through the worker: times, RSS and what it wrote."""
    phases: dict[str, float] = {}
    with RssSampler(worker) as sampler:
        job, _ = bench.service.submit_export(account.id, {"type": "archive"})
        done = bench.wait_terminal(job.id, worker=worker, phases=phases)
    bench.require_succeeded(done, worker)
    total, running = job_seconds(done)
    result = done.result or {}
    stats = result.get("stats", {})
    if stats.get("sampleCount") != expected:
        raise RuntimeError(f"export wrote {stats.get('sampleCount')} samples, expected {expected}")
    bench.storage.remove_output(done.id)  # keep the disk free for the next run
    return {
        "job_id": done.id,
        "seconds": total,
        "running_seconds": running,
        "phase_seconds": phase_seconds(phases),
        "zip_bytes": result.get("bytes"),
        "files": result.get("files"),
        **sampler.report(done),
    }


def measure_size(
    bench: Bench, account: Account, samples: int, repeat: int
) -> tuple[list[dict[str, Any]], list[float]]:
    """`repeat` pairs of raw and Ferry runs on one account, in a fresh worker."""
    worker = bench.start_worker()
    ferry: list[dict[str, Any]] = []
    raw: list[float] = []
    try:
        # One untimed pass reads the account's pages into the caches, so the first timed
        # run (raw, in repeat 1) does not pay for a cold start the others never see.
        log(f"{samples:,} samples: warm-up {raw_export(bench, account):.2f}s (not counted)")
        for index in range(repeat):
            order = ("raw", "ferry") if index % 2 == 0 else ("ferry", "raw")
            for side in order:
                if side == "raw":
                    raw.append(raw_export(bench, account))
                    log(f"{samples:,} samples, run {index + 1}: raw {raw[-1]:.2f}s")
                else:
                    ferry.append(ferry_export(bench, account, worker, samples))
                    run = ferry[-1]
                    log(
                        f"{samples:,} samples, run {index + 1}: ferry {run['seconds']:.2f}s,"
                        f" peak RSS {run['peak_rss_mb']} MB; phases {run['phase_seconds']}"
                    )
    finally:
        bench.stop_worker(worker)
    return ferry, raw


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
    results: list[dict[str, Any]] = []
    with bench_session("export", keep_db=args.keep_db) as bench:
        seeded = [bench.seed_account(f"export-{size}", size) for size in sizes]
        for (account, stats), size in zip(seeded, sizes, strict=True):
            ferry, raw = measure_size(bench, account, stats.samples, args.repeat)
            results.append(
                side_by_side(
                    ferry,
                    raw,
                    requested_samples=size,
                    samples=stats.samples,
                    items=stats.items,
                    places=stats.places,
                )
            )
    summary = print_side_by_side(
        "Archive export: Ferry (real worker) vs psql COPY (SELECT row_to_json(s) ...) | gzip -1",
        results,
        TARGETS,
    )
    path = write_result("export", {"args": vars(args), "sizes": results, "summary": summary})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
