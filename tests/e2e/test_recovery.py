"""Recovery with real processes (SPEC 5, 8): a worker killed mid-export, a Redis that
restarts empty, and a message delivered twice. No job is lost, none runs twice, and a
resumed export keeps the files it had finished.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse, urlunparse

import pytest
import redis
from sqlalchemy import Engine, text

from shared.jobs.store import JobStore
from shared.params import parse_export_request
from shared.settings import Settings
from shared.store.accounts import Account
from shared.store.seed import seed_timeline
from tests.e2e.harness import Stack, wait_for
from tests.e2e.test_cancel import events, finished_deliveries, start_export, throttle
from worker.celery_app import make_celery
from worker.resources import CeleryPublisher

pytestmark = pytest.mark.e2e
# The kill test's timeline: 8 ISO weeks of samples, so 8 sample files.
SAMPLE_FILES = 8


def archive_records(content: bytes) -> tuple[dict[str, list[str]], dict[str, Any], list[str]]:
    """Ids per folder, the manifest, and the data files whose bytes do not match it."""
    ids: dict[str, list[str]] = {"places": [], "items": [], "samples": []}
    manifest: dict[str, Any] = {}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        members = {name.split("/", 1)[1]: name for name in archive.namelist()}
        manifest = json.loads(archive.read(members["manifest.json"]))
        for path, name in members.items():
            folder = path.split("/", 1)[0]
            if folder not in ids:
                continue
            raw = archive.read(name)
            records = json.loads(gzip.decompress(raw) if path.endswith(".gz") else raw)
            for record in records:
                ids[folder].append(record["base"]["id"] if folder == "items" else record["id"])
        mismatched = [
            entry["path"]
            for entry in manifest["files"]
            if hashlib.sha256(archive.read(members[entry["path"]])).hexdigest() != entry["sha256"]
        ]
    return ids, manifest, mismatched


def account_ids(engine: Engine, account_id: str) -> dict[str, Counter[str]]:
    """Every id the account holds, per archive folder (upper case, as the archive has them)."""
    tables = {"places": "places", "items": "timeline_items", "samples": "samples"}
    found: dict[str, Counter[str]] = {}
    with engine.connect() as conn:
        for folder, table in tables.items():
            rows = conn.execute(
                text(f"SELECT upper(id::text) FROM {table} WHERE account_id = :a"),
                {"a": account_id},
            )
            found[folder] = Counter(r[0] for r in rows)
    return found


def test_given_a_worker_killed_mid_samples_when_a_new_worker_starts_then_attempt_2_resumes(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """kill -9 mid-samples: attempt 2 keeps the finished files and completes the archive."""
    person, token = account
    seed_timeline(
        settings.database_url,
        person.id,
        days=7 * SAMPLE_FILES,
        samples_per_day=100,
        seed=21,
        start=datetime(2024, 1, 1, tzinfo=UTC),
    )
    throttle(stack, 800)
    stack.start_web()
    stack.start_scheduler()
    stack.start_worker()
    api = stack.api(token)
    store = JobStore(engine)
    job_id = start_export(api)

    def mid_samples() -> bool:
        job = store.get(job_id)
        assert job.status in ("queued", "running"), f"job ended before the kill: {job.status}"
        files = (job.checkpoint or {}).get("files", {})
        return len([path for path in files if path.startswith("samples/")]) >= 2

    wait_for(mid_samples, timeout=60, interval=0.05, what="two finished sample files")
    stack.kill_workers()
    killed_at = time.time()
    checkpoint = store.get(job_id).checkpoint
    assert checkpoint is not None
    finished = checkpoint["files"]
    samples_done = [path for path in finished if path.startswith("samples/")]
    assert 2 <= len(samples_done) < SAMPLE_FILES, f"not killed mid-samples: {samples_done}"
    attempt_1 = settings.storage_root / "work" / job_id / "1" / checkpoint["name"]
    assert all((attempt_1 / path).is_file() for path in finished), "finished files vanished"

    stack.start_worker()
    attempt_2 = settings.storage_root / "work" / job_id / "2" / checkpoint["name"]
    wait_for(
        lambda: all((attempt_2 / path).is_file() for path in finished),
        timeout=60,
        interval=0.05,
        what="attempt 2 to take over the finished files",
    )
    rewritten = [p for p in finished if (attempt_2 / p).stat().st_mtime > killed_at]
    assert rewritten == [], f"files finished before the crash were written again: {rewritten}"
    job = api.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)

    assert job["status"] == "succeeded", job
    assert job["attempt"] == 2
    resumed = events(engine, job_id, "resumed")
    assert len(resumed) == 1, resumed
    assert resumed[0]["attempt"] == 2
    assert sorted(resumed[0]["detail"]["kept"]) == sorted(finished)
    assert [e["attempt"] for e in events(engine, job_id, "claimed")] == [1, 2]
    download = api.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    ids, manifest, mismatched = archive_records(download.content)
    assert mismatched == []
    listed = {entry["path"]: entry for entry in manifest["files"]}
    for path, entry in finished.items():
        assert listed[path]["sha256"] == entry["sha256"], path
    expected = account_ids(engine, person.id)
    for folder in ("places", "items", "samples"):
        got = Counter(ids[folder])
        duplicates = [i for i, n in got.items() if n > 1]
        assert duplicates == [], f"{folder}: duplicated records {duplicates[:5]}"
        assert got == expected[folder], f"{folder}: archive and account differ"
    assert not (settings.storage_root / "work" / job_id).exists(), "work folders were left"


@pytest.fixture
def private_redis(settings: Settings) -> Iterator[str]:
    """A Redis database of this test's own (index 1-15), so FLUSHDB touches nobody else."""
    shared = redis.Redis.from_url(settings.redis_url)
    for index in random.sample(range(1, 16), 15):
        lock = f"ferrytest-private-db-{index}"
        if not shared.set(lock, settings.redis_prefix, nx=True, ex=900):
            continue
        url = urlunparse(urlparse(settings.redis_url)._replace(path=f"/{index}"))
        own = redis.Redis.from_url(url)
        if own.dbsize() == 0:
            try:
                yield url
            finally:
                own.flushdb()
                own.close()
                shared.delete(lock)
                shared.close()
            return
        own.close()
        shared.delete(lock)
    pytest.fail("no empty Redis database (1-15) is free for this test")


def test_given_queued_jobs_when_redis_loses_everything_then_the_sweeper_runs_them_all(
    private_redis: str,
    stack: Stack,
    settings: Settings,
    engine: Engine,
    account: tuple[Account, str],
) -> None:
    """FLUSHDB with 3 exports queued and no worker: once one starts, all 3 succeed."""
    person, token = account
    seed_timeline(settings.database_url, person.id, days=3, samples_per_day=300, seed=7)
    stack.settings = stack.settings.with_overrides(redis_url=private_redis)
    stack.env["REDIS_URL"] = private_redis
    stack.start_web()
    api = stack.api(token)
    job_ids = [start_export(api) for _ in range(3)]
    broker = redis.Redis.from_url(private_redis)
    assert broker.llen(settings.jobs_queue) == 3

    broker.flushdb()
    assert broker.dbsize() == 0
    broker.close()
    stack.start_scheduler()
    stack.start_worker()

    for job_id in job_ids:
        job = api.wait_status(job_id, {"succeeded", "failed", "cancelled"}, timeout=90)
        assert job["status"] == "succeeded", job
        assert job["attempt"] == 1
        assert len(events(engine, job_id, "claimed")) == 1
        assert api.get(f"/jobs/{job_id}/download").status_code == 200


def test_given_a_job_published_twice_when_workers_get_both_then_it_runs_once(
    stack: Stack, settings: Settings, engine: Engine, account: tuple[Account, str]
) -> None:
    """Two deliveries of one job, to two worker processes at once: one claim, one run."""
    person, _ = account
    seed_timeline(settings.database_url, person.id, days=7, samples_per_day=300, seed=9)
    throttle(stack, 1000)  # ~3 s of work, so the second delivery meets a running job
    worker = stack.start_worker(concurrency=2)
    job_type, params = parse_export_request({"type": "archive"})
    job, created = JobStore(engine).create(account_id=person.id, type=job_type, params=params)
    assert created
    app = make_celery(settings)
    publisher = CeleryPublisher(app, settings.jobs_queue)

    publisher.publish(job.id)
    publisher.publish(job.id)
    app.close()

    wait_for(lambda: finished_deliveries(worker) >= 2, timeout=90, what="both deliveries")
    final = JobStore(engine).get(job.id)
    assert final.status == "succeeded"
    assert final.attempt == 1
    claimed = events(engine, job.id, "claimed")
    assert len(claimed) == 1, claimed
    assert [e["kind"] for e in events(engine, job.id)].count("succeeded") == 1
