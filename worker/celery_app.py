"""The Celery app factory: the only place in the worker that wires Celery.

Settings that make SPEC 8 hold (and why):
- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after
  its task returned, and goes back to the queue if the worker process dies mid-task.
- `worker_prefetch_multiplier = 1`: a worker holds one message per process, so a busy
  worker does not sit on messages another one could run.
- time limits (soft 5 h, hard 5.5 h) below the broker's visibility timeout (6 h): Redis
  never re-delivers a message whose task is still legitimately running.
- no result backend: Postgres is the record of every job.
Duplicate or late deliveries are harmless anyway: a task that cannot claim its job
(SPEC 5) does nothing, and the sweeper re-publishes what a lost message left queued.
"""

from __future__ import annotations

from celery import Celery

from shared.keys import TASK_SWEEP
from shared.settings import Settings

VISIBILITY_TIMEOUT = 6 * 3600
SOFT_TIME_LIMIT = 5 * 3600
HARD_TIME_LIMIT = int(5.5 * 3600)


def make_celery(settings: Settings) -> Celery:
    """A Celery app for `settings`, with Ferry's tasks registered."""
    app = Celery("ferry", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=settings.jobs_queue,
        task_routes={TASK_SWEEP: {"queue": settings.sweep_queue}},
        task_soft_time_limit=SOFT_TIME_LIMIT,
        task_time_limit=HARD_TIME_LIMIT,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
        beat_schedule={
            "ferry-sweep": {
                "task": TASK_SWEEP,
                "schedule": settings.sweep_seconds,
                # A tick nobody ran within its interval is superseded by the next one.
                "options": {"queue": settings.sweep_queue, "expires": settings.sweep_seconds},
            }
        },
    )
    app.ferry_settings = settings
    from worker import tasks

    tasks.register(app)
    return app
