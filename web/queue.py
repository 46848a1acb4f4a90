"""The web process's way onto the job queue: a broker-only Celery client."""

from __future__ import annotations

from celery import Celery

from shared.keys import TASK_RUN_JOB


class CeleryPublisher:
    """Sends `ferry.run_job` messages by name; the web never imports the worker."""

    def __init__(self, broker_url: str, queue: str) -> None:
        self.queue = queue
        self._app = Celery("ferry-web", broker=broker_url, set_as_current=False)
        self._app.conf.broker_connection_retry_on_startup = True

    def publish(self, job_id: str, *, countdown: float | None = None) -> None:
        """Publish the job's message to the jobs queue."""
        self._app.send_task(TASK_RUN_JOB, args=[job_id], queue=self.queue, countdown=countdown)
