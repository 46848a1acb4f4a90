"""The operators' pages with many jobs (SPEC 14): server time of `/ops/jobs` and `/ops`.

Fills `jobs` with `--jobs` rows (default 1 M) in one INSERT … SELECT over generate_series
(not the API: a million submissions would measure the API, not the pages), spread over
1,000 accounts, 90 days, every type, and statuses as a busy service has them (mostly
succeeded; 8 % failed with five error codes; a few hundred queued and running). Then
VACUUM ANALYZE, as autovacuum would, so the planner knows the table and index-only scans
are possible.

Each page is asked `--requests` times through Flask's test client with an ops session
(the app in this process: the time is the server's, from request to last byte, with no
network), and p50/p95 are reported against the target (p95 < 300 ms). EXPLAIN of the
queries behind each page shows the index used.

    .venv/bin/python bench/pages.py                 # 1 M jobs, 40 requests per page
    .venv/bin/python bench/pages.py --jobs 100000   # quick
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from bench.common import (
    bench_session,
    log,
    percentile,
    table,
    verdict,
    write_result,
)
from shared.jobs.live import MemoryLiveStore
from shared.jobs.publisher import RecordingPublisher
from shared.store.accounts import create_account, issue_token
from web import create_app

TARGET_MS = 300.0
ACCOUNTS = 1000

FILL = """
INSERT INTO jobs (account_id, id, type, params, status, attempt, created_at, updated_at,
                  queued_at, started_at, finished_at, error, progress)
WITH owners AS (SELECT array_agg(id ORDER BY id) AS ids FROM accounts)
SELECT owners.ids[1 + n % :accounts], gen_random_uuid(), t.type, '{}'::jsonb, s.status, 1 + (n % 3),
       c.created, c.created, c.created, c.created + interval '2 seconds',
       CASE WHEN s.status IN ('succeeded', 'failed', 'cancelled')
            THEN c.created + interval '40 seconds' END,
       CASE WHEN s.status = 'failed' THEN jsonb_build_object(
            'code', (ARRAY['storage_error', 'database_error', 'interrupted', 'bad_archive',
                           'internal'])[1 + (n / 7) % 5],
            'message', 'failed in the benchmark', 'retryable', false) END,
       CASE WHEN s.status = 'running' THEN jsonb_build_object(
            'phase', 'samples', 'phase_index', 3, 'phase_count', 5, 'phase_done', 500,
            'phase_total', 1000, 'rows_done', 600, 'rows_total', 1100, 'overall', 0.5,
            'eta_seconds', 10, 'updated_at', '2026-11-22T10:15:03.120Z') END
FROM generate_series(1, :n) AS n
CROSS JOIN owners
CROSS JOIN LATERAL (SELECT (ARRAY['export.archive', 'export.archive', 'import.archive',
                                  'export.table', 'import.table'])[1 + n % 5] AS type) AS t
CROSS JOIN LATERAL (SELECT CASE
    WHEN n % 10000 < 3 THEN 'running'
    WHEN n % 10000 < 30 THEN 'queued'
    WHEN n % 100 < 8 THEN 'failed'
    WHEN n % 100 < 11 THEN 'cancelled'
    ELSE 'succeeded' END AS status) AS s
CROSS JOIN LATERAL (SELECT now() - (n * interval '90 days' / :n) AS created) AS c
"""


def fill(engine: Any, jobs: int) -> dict[str, int]:
    """`jobs` job rows over ACCOUNTS accounts; how many of each status."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL statement_timeout = 0"))  # one long INSERT
        conn.execute(
            text(
                "INSERT INTO accounts (id, name) SELECT gen_random_uuid(), 'bench-' || i"
                " FROM generate_series(0, :k - 1) AS i"
            ),
            {"k": ACCOUNTS},
        )
        conn.execute(text(FILL), {"n": jobs, "accounts": ACCOUNTS})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("SET statement_timeout = 0"))
        conn.execute(text("VACUUM ANALYZE jobs"))
        counts = {
            r.status: r.n
            for r in conn.execute(text("SELECT status, count(*) AS n FROM jobs GROUP BY status"))
        }
    log(f"filled {jobs:,} jobs in {time.perf_counter() - started:.1f} s: {counts}")
    return counts


def explain(engine: Any, sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN (ANALYZE) of one query, as text."""
    with engine.connect() as conn:
        rows = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql), params)
        return "\n".join(r[0] for r in rows)


def timed(client: Any, url: str, requests: int) -> list[float]:
    """Milliseconds of each of `requests` GETs of `url` (after one warm-up)."""
    first = client.get(url)
    assert first.status_code == 200, (url, first.status_code, first.get_data(as_text=True)[:500])
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        response.get_data()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, url
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=lambda raw: int(raw.replace("_", "")), default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    logging.getLogger("web.requests").setLevel(logging.WARNING)  # one line per request

    with bench_session("pages", keep_db=args.keep_db) as bench:
        counts = fill(bench.engine, args.jobs)
        operator = create_account(bench.engine, "bench-operator")
        token = issue_token(bench.engine, operator.id, role="ops")
        app = create_app(bench.settings, live=MemoryLiveStore(), publisher=RecordingPublisher())
        client = app.test_client()
        page = client.get("/")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert csrf is not None
        signed = client.post("/", data={"token": token, "csrf_token": csrf.group(1)})
        assert signed.status_code == 303

        # The cursor of a page deep in the failed jobs (the 20th), to time paging too.
        url, cursor = "/ops/jobs", None
        for _ in range(20):
            html = client.get(url).get_data(as_text=True)
            found = re.search(r'href="/ops/jobs\?([^"]*cursor=[^"]+)"', html)
            assert found, "no next page"
            url = "/ops/jobs?" + found.group(1).replace("&amp;", "&")
            cursor = url
        pages = {
            "/ops/jobs (failed, newest)": "/ops/jobs",
            "/ops/jobs?error_code=interrupted": "/ops/jobs?error_code=interrupted",
            "/ops/jobs?type=import.table": "/ops/jobs?type=import.table",
            "/ops/jobs?account=bench-7": "/ops/jobs?account=bench-7",
            "/ops/jobs?window=24h": "/ops/jobs?window=24h",
            "/ops/jobs (20th page, cursor)": cursor,
            "/ops/jobs?status=any": "/ops/jobs?status=any",
            "/ops (overview)": "/ops",
        }
        results = {}
        for name, target in pages.items():
            times = timed(client, str(target), args.requests)
            results[name] = {
                "p50_ms": percentile(times, 50),
                "p95_ms": percentile(times, 95),
                "max_ms": max(times),
                "times_ms": times,
            }
            log(f"{name}: p95 {results[name]['p95_ms']:.1f} ms")

        plans = {
            "failed, newest first": (
                "SELECT id FROM jobs WHERE status = 'failed'"
                " ORDER BY created_at DESC, id DESC LIMIT 26",
                {},
            ),
            "failed by error code": (
                "SELECT id FROM jobs WHERE status = 'failed' AND error->>'code' = 'interrupted'"
                " ORDER BY created_at DESC, id DESC LIMIT 26",
                {},
            ),
            "counts by status and type": (
                "SELECT type, status, count(*) FROM jobs GROUP BY type, status",
                {},
            ),
            "oldest queued": (
                "SELECT created_at FROM jobs WHERE status = 'queued'"
                " ORDER BY created_at, id LIMIT 1",
                {},
            ),
            "failed in 24 h": (
                "SELECT coalesce(error->>'code', 'unknown'), count(*) FROM jobs"
                " WHERE status = 'failed' AND finished_at >= now() - interval '24 hours'"
                " GROUP BY 1",
                {},
            ),
        }
        explained = {name: explain(bench.engine, sql, p) for name, (sql, p) in plans.items()}
        app.extensions["ferry"].engine.dispose()

    rows = [
        [
            name,
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            verdict(r["p95_ms"] < TARGET_MS),
        ]
        for name, r in results.items()
    ]
    print(
        f"\n{args.jobs:,} jobs ({counts.get('failed', 0):,} failed), {args.requests} requests"
        " per page, server time through Flask's test client\n"
    )
    print(table(["page", "p50 ms", "p95 ms", "max ms", f"p95 < {TARGET_MS:.0f} ms"], rows))
    for name, plan in explained.items():
        print(f"\n-- {name}\n{plan}")
    path = write_result(
        "pages",
        {"jobs": args.jobs, "counts": counts, "results": results, "plans": explained},
    )
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
