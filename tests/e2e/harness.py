"""Real Ferry processes for end-to-end tests: `ferry web`, `ferry worker`, `ferry scheduler`.

Each process runs in its own process group, so `kill_worker()` can SIGKILL a Celery
worker together with its pool children, the way a machine loss would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from shared.settings import Settings
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    """One running Ferry process and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def text(self) -> str:
        """Its log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal its whole process group (a worker and its pool children)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Api:
    """A tiny HTTP client for one bearer token."""

    base: str
    token: str | None
    session: requests.Session = field(default_factory=requests.Session)

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET /api/v1{path}."""
        headers = self._headers(kwargs.pop("headers", None))
        return self.session.get(self.base + path, headers=headers, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST /api/v1{path}."""
        headers = self._headers(kwargs.pop("headers", None))
        return self.session.post(self.base + path, headers=headers, timeout=60, **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        """The job object, asserting a 200."""
        response = self.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()["job"]  # type: ignore[no-any-return]

    def wait_status(
        self, job_id: str, statuses: set[str] | str, *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll the job until its status is one of `statuses`."""
        wanted = {statuses} if isinstance(statuses, str) else statuses
        return wait_for(
            lambda: (j := self.job(job_id)) and j["status"] in wanted and j,
            timeout=timeout,
            what=f"job {job_id} to reach {sorted(wanted)}",
        )


class Stack:
    """Ferry's processes on one test's database, Redis prefix and storage."""

    def __init__(self, settings: Settings, logs: Path, *, extra_env: dict[str, str] | None = None):
        self.settings = settings
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.port: int | None = None
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "STORAGE_URL": settings.storage_url,
            "FERRY_REDIS_PREFIX": settings.redis_prefix,
            "FERRY_LEASE_SECONDS": str(settings.lease_seconds),
            "FERRY_SWEEP_SECONDS": str(settings.sweep_seconds),
            "FERRY_MAX_ATTEMPTS": str(settings.max_attempts),
            "FERRY_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
            "FERRY_MAX_ROWS_PER_SECOND": str(settings.max_rows_per_second),
            "FERRY_EXPORT_RETENTION_HOURS": str(settings.export_retention_hours),
            "FERRY_MAX_UPLOAD_BYTES": str(settings.max_upload_bytes),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self._counter = 0

    def _spawn(self, name: str, *args: str) -> Process:
        self._counter += 1
        log = self.logs / f"{self._counter:02d}-{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "cli", *args],
            cwd=ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    @property
    def base_url(self) -> str:
        """Where the web process listens."""
        assert self.port is not None, "start_web() first"
        return f"http://127.0.0.1:{self.port}"

    def api(self, token: str | None) -> Api:
        """A client of /api/v1 with `token`."""
        return Api(self.base_url + "/api/v1", token)

    def start_web(self) -> Process:
        """Start `ferry web` (gunicorn) and wait until /healthz answers."""
        self.port = free_port()
        process = self._spawn(
            "web", "web", "--port", str(self.port), "--workers", "1", "--threads", "16"
        )

        def healthy() -> bool:
            assert process.alive(), process.text()
            try:
                return requests.get(self.base_url + "/healthz", timeout=1).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                # The port opens before the worker has loaded the app; on a busy machine
                # the first answer can take longer than a second.
                return False

        wait_for(healthy, timeout=30, what="ferry web to answer")
        return process

    def _start_celery(self, name: str, *args: str) -> Process:
        process = self._spawn(name, *args)

        def ready() -> bool:
            assert process.alive(), process.text()
            return " ready." in process.text()

        wait_for(ready, timeout=60, what=f"{name} to be ready")
        return process

    def start_worker(self, concurrency: int = 1) -> Process:
        """Start `ferry worker` and wait until Celery says it is ready."""
        return self._start_celery("worker", "worker", "--concurrency", str(concurrency))

    def start_scheduler(self) -> Process:
        """Start `ferry scheduler` (beat + sweeper) and wait until it is ready."""
        return self._start_celery("scheduler", "scheduler")

    def workers(self) -> list[Process]:
        """Worker processes that are still alive."""
        return [p for p in self.processes if p.name == "worker" and p.alive()]

    def kill_workers(self) -> None:
        """SIGKILL every live worker with its pool children (no cleanup can run)."""
        for process in self.workers():
            process.kill(signal.SIGKILL)

    def stop(self) -> None:
        """Stop everything (gracefully, then by force)."""
        for process in reversed(self.processes):
            process.kill(signal.SIGTERM)

    def dump_logs(self) -> str:
        """Every process's log, for a failing test's report."""
        return "\n".join(f"===== {p.log.name} =====\n{p.text()[-6000:]}" for p in self.processes)
