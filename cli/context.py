"""What CLI commands share: settings and lazily built resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from shared.pipelines import PIPELINES
from shared.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from shared.jobs.live import RedisLiveStore
    from shared.service import JobService
    from shared.store.storage import LocalStorage


@dataclass
class Cli:
    """Resources of one CLI invocation, built on first use (no I/O at import time)."""

    settings: Settings = field(default_factory=Settings.from_env)

    @cached_property
    def engine(self) -> Engine:
        """The database engine."""
        from shared.store.db import make_engine

        return make_engine(self.settings.database_url, pool_size=2)

    @cached_property
    def live(self) -> RedisLiveStore:
        """The Redis live store."""
        from shared.jobs.live import RedisLiveStore

        return RedisLiveStore.from_url(self.settings.redis_url, prefix=self.settings.redis_prefix)

    @cached_property
    def storage(self) -> LocalStorage:
        """The storage folder."""
        from shared.store.storage import LocalStorage

        return LocalStorage(self.settings.storage_root)

    @cached_property
    def service(self) -> JobService:
        """The job service, publishing through the worker's Celery app."""
        from shared.service import JobService
        from worker.celery_app import make_celery
        from worker.resources import CeleryPublisher

        publisher = CeleryPublisher(make_celery(self.settings), self.settings.jobs_queue)
        return JobService(
            pipelines=PIPELINES,
            settings=self.settings,
            engine=self.engine,
            live=self.live,
            storage=self.storage,
            publisher=publisher,
        )
