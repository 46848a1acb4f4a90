"""`create_app(settings)`: the one place the web process wires its resources."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from sqlalchemy import Engine

from shared.jobs.live import LiveStore, RedisLiveStore
from shared.jobs.publisher import Publisher
from shared.pipelines import PIPELINES
from shared.service import JobService
from shared.settings import Settings
from shared.store.db import make_engine
from shared.store.storage import LocalStorage
from web.streams import StreamSlots


@dataclass(frozen=True)
class WebResources:
    """What the views use, attached to the app as `app.extensions["ferry"]`."""

    settings: Settings
    engine: Engine
    live: LiveStore
    storage: LocalStorage
    service: JobService
    streams: StreamSlots


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    live: LiveStore | None = None,
    storage: LocalStorage | None = None,
    publisher: Publisher | None = None,
) -> Flask:
    """Build the Flask app; collaborators may be passed in (tests), else built here."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    # Body limits are per route (web/limits.py): 1 MiB of JSON, uploads to their own limit.
    app.config.update(SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False)
    engine = engine or make_engine(settings.database_url)
    live = live or RedisLiveStore.from_url(settings.redis_url, prefix=settings.redis_prefix)
    storage = storage or LocalStorage(settings.storage_root)
    if publisher is None:
        from web.queue import CeleryPublisher

        publisher = CeleryPublisher(settings.redis_url, settings.jobs_queue)
    service = JobService(
        pipelines=PIPELINES,
        settings=settings,
        engine=engine,
        live=live,
        storage=storage,
        publisher=publisher,
    )
    streams = StreamSlots.from_url(
        settings.redis_url,
        prefix=settings.redis_prefix,
        limit=settings.max_streams_per_account,
        lifetime_seconds=settings.stream_seconds,
    )
    app.extensions["ferry"] = WebResources(settings, engine, live, storage, service, streams)

    from web import api, errors, health, limits, logs, pages, routing, uploads

    logs.init_app(app)  # first: every later hook's answer carries the request id
    errors.init_app(app)
    limits.init_app(app)
    uploads.init_app(app)
    routing.init_app(app)  # before the blueprints, whose rules use its converter
    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    app.register_blueprint(health.blueprint)
    pages.init_app(app)
    return app
