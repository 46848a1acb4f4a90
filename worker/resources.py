"""Per-process resources of a worker: built after the fork, on first use."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from celery import Celery

from shared.jobs.live import RedisLiveStore
from shared.jobs.runner import JobRunner
from shared.jobs.sweeper import Sweeper
from shared.keys import TASK_RUN_JOB
from shared.pipelines import PIPELINES
from shared.settings import Settings
from shared.store.db import make_engine
from shared.store.storage import LocalStorage


class CeleryPublisher:
    """Publishes job messages through the worker's own Celery app."""

    def __init__(self, app: Celery, queue: str) -> None:
        self.app = app
        self.queue = queue

    def publish(self, job_id: str, *, countdown: float | None = None) -> None:
        """Send `ferry.run_job(job_id)` to the jobs queue."""
        self.app.send_task(TASK_RUN_JOB, args=[job_id], queue=self.queue, countdown=countdown)


@dataclass(frozen=True)
class Resources:
    """What the tasks of one worker process share."""

    runner: JobRunner
    sweeper: Sweeper


_lock = threading.Lock()
_cache: dict[int, Resources] = {}


def resources(app: Celery) -> Resources:
    """This process's resources (engines and clients must not cross a fork)."""
    pid = os.getpid()
    with _lock:
        found = _cache.get(pid)
        if found is None:
            found = _cache[pid] = _build(app)
        return found


def _build(app: Celery) -> Resources:
    settings: Settings = app.ferry_settings
    engine = make_engine(settings.database_url, pool_size=3, name="ferry-worker")
    live = RedisLiveStore.from_url(settings.redis_url, prefix=settings.redis_prefix)
    storage = LocalStorage(settings.storage_root)
    publisher = CeleryPublisher(app, settings.jobs_queue)
    runner = JobRunner(
        pipelines=PIPELINES,
        settings=settings,
        engine=engine,
        live=live,
        storage=storage,
        publisher=publisher,
    )
    sweeper = Sweeper(
        pipelines=PIPELINES,
        settings=settings,
        engine=engine,
        live=live,
        storage=storage,
        publisher=publisher,
        # Celery's Redis transport keeps a queue's waiting messages in a list named after
        # the queue (the broker is REDIS_URL, the same server as live progress).
        backlog=lambda: int(live.client.llen(settings.jobs_queue)),
    )
    return Resources(runner=runner, sweeper=sweeper)
