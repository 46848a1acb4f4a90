"""Rollback of an archive import vs the import itself, in the same run (SPEC 12, 13).

    .venv/bin/python bench/rollback.py [--rows 1_000_000] [--repeat 3] [--keep-db]

Preparation (not timed): seed an account with about `--rows` samples (plus items and
places), export it once through a real worker and keep the zip.

Each run, through one real `ferry worker --concurrency 1`: the zip is imported into a
fresh, empty account (confirm=true), then that import is rolled back (`import.rollback`:
check, restore in one transaction, finalize), and the account is checked to be empty
again. Both times are queued -> succeeded from the job rows.

Target (SPEC 12): rollback of a 1 M-row import takes at most the time of the import.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Bench,
    Worker,
    base_parser,
    bench_session,
    job_seconds,
    log,
    median,
    phase_seconds,
    table,
    verdict,
    write_result,
)
from shared.params import ImportArchiveParams
from shared.store.accounts import create_account

TARGET_RATIO = 1.0


def prepare(bench: Bench, rows: int) -> tuple[Path, dict[str, int]]:
    """Seed an account, export it once; the zip and what it holds."""
    account, stats = bench.seed_account("source", rows)
    worker = bench.start_worker()
    try:
        job, _ = bench.service.submit_export(account.id, {"type": "archive"})
        done = bench.wait_terminal(job.id, worker=worker)
        bench.require_succeeded(done, worker)
        zip_path = bench.tmp / "archive.zip"
        shutil.copyfile(bench.storage.path((done.result or {})["key"]), zip_path)
    finally:
        bench.stop_worker(worker)
    return zip_path, {"samples": stats.samples, "items": stats.items, "places": stats.places}


def one_run(
    bench: Bench, zip_path: Path, expected: dict[str, int], worker: Worker
) -> dict[str, Any]:
    """Import into a fresh account, roll it back; both timings."""
    account = create_account(bench.engine, f"undo-{uuid.uuid4().hex[:8]}")
    with bench.storage.incoming_file() as received, zip_path.open("rb") as zipped:
        shutil.copyfileobj(zipped, received, 1024 * 1024)
    import_phases: dict[str, float] = {}
    job = bench.service.submit_import(
        account.id,
        received=Path(received.name),
        filename=zip_path.name,
        params=ImportArchiveParams(confirm=True),
    )
    imported = bench.wait_terminal(job.id, worker=worker, phases=import_phases)
    bench.require_succeeded(imported, worker)
    if (imported.result or {}).get("written") != expected:
        raise RuntimeError(f"import wrote {(imported.result or {}).get('written')}")
    rollback_phases: dict[str, float] = {}
    rollback = bench.service.request_rollback(imported.id, account_id=account.id)
    rolled = bench.wait_terminal(rollback.id, worker=worker, phases=rollback_phases)
    bench.require_succeeded(rolled, worker)
    left = bench.sql(
        "SELECT (SELECT count(*) FROM samples WHERE account_id = %(a)s)"
        " + (SELECT count(*) FROM timeline_items WHERE account_id = %(a)s)"
        " + (SELECT count(*) FROM places WHERE account_id = %(a)s)",
        {"a": account.id},
    )[0][0]
    if left:
        raise RuntimeError(f"{left} rows left after the rollback")
    bench.sql("TRUNCATE deleted_records")
    import_seconds, _ = job_seconds(imported)
    rollback_seconds, _ = job_seconds(rolled)
    return {
        "import_seconds": import_seconds,
        "rollback_seconds": rollback_seconds,
        "ratio": rollback_seconds / import_seconds,
        "import_phases": phase_seconds(import_phases),
        "rollback_phases": phase_seconds(rollback_phases),
        "deleted": (rolled.result or {}).get("deleted"),
    }


def main() -> int:
    """Run the benchmark; 0 when it ran (the target is reported, not enforced)."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        dest="samples",
        type=lambda raw: int(raw.replace("_", "")),
        help="samples to seed (the import's rows; same as --samples)",
    )
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with bench_session("rollback", keep_db=args.keep_db) as bench:
        zip_path, expected = prepare(bench, args.samples)
        worker = bench.start_worker()
        try:
            for index in range(args.repeat):
                runs.append(one_run(bench, zip_path, expected, worker))
                run = runs[-1]
                log(
                    f"run {index + 1}: import {run['import_seconds']:.2f}s,"
                    f" rollback {run['rollback_seconds']:.2f}s {run['rollback_phases']}"
                )
        finally:
            bench.stop_worker(worker)
    rows = [
        [i + 1, r["import_seconds"], r["rollback_seconds"], r["ratio"]] for i, r in enumerate(runs)
    ]
    print(
        f"\nRollback vs import of {expected['samples']:,} samples (+{expected['items']:,} items)\n"
    )
    print(table(["run", "import s", "rollback s", "ratio"], rows))
    ratio = median([r["rollback_seconds"] for r in runs]) / median(
        [r["import_seconds"] for r in runs]
    )
    print(f"\nratio (medians)    {ratio:.2f}  (target <= {TARGET_RATIO})  {verdict(ratio <= 1.0)}")
    summary = {"samples": expected["samples"], "ratio": ratio}
    path = write_result("rollback", {"args": vars(args), "runs": runs, "summary": summary})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
