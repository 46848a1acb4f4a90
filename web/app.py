"""`create_app(settings)`: the one place the web process wires its resources."""

from __future__ import annotations

import logging
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
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Werkzeug refuses larger bodies with 413 before a byte is stored.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
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

    from web import api, errors, health, uploads

    errors.init_app(app)
    uploads.init_app(app)
    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    app.register_blueprint(health.blueprint)
    logging.getLogger("shared").setLevel(logging.INFO)
    return app
