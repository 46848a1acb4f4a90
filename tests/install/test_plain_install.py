"""Ferry as an operator installs it: a wheel in a fresh venv, no dev extras (issue 8).

The wheel is built from this checkout, then installed two ways, each into a new venv:
`plain` is `pip install ferry.whl` with dependencies resolved from the package index;
`locked` is what the Dockerfile does (the pinned requirements.lock in hash-checking mode,
then the wheel with --no-deps). Each venv must pass `pip check`, migrate a new database,
create an account, seed it, and run one export through its own `ferry web` (the image's
server mode), `ferry worker` and `ferry scheduler` over HTTP; the download must be a zip
with metadata.json. The processes run from a folder outside the checkout, with a clean
environment, so nothing can be imported from the source tree or the dev venv.

pip reaches the package index; without it, or without PostgreSQL or Redis, this fails.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import requests

from tests.conftest import ADMIN_DSN, TEST_REDIS_URL
from tests.e2e.harness import free_port
from tests.polling import wait_for

pytestmark = pytest.mark.install

ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 900
# Tools a dev install brings and a plain one must not: the venv is really without extras.
DEV_ONLY = ("pytest", "fakeredis", "hypothesis")
LOCAL_STATE = (".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")


def run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120) -> str:
    """Run a command to completion; fail the test with its output unless it exits 0."""
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"`{' '.join(argv)}` exited {done.returncode}:\n{output}"
    return done.stdout


def pip_env() -> dict[str, str]:
    """The machine's environment (pip's configuration) without anything that points
    Python at this checkout or the dev venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def source_tree(target: Path) -> Path:
    """A copy of the checkout's files (tracked, or new and not ignored), so the build never
    sees local state such as .venv, var/ or a stale build/ folder."""
    if not (ROOT / ".git").exists():  # an unpacked source archive: copy all but local state
        local = shutil.ignore_patterns(*LOCAL_STATE)
        return Path(shutil.copytree(ROOT, target, ignore=local))
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        relative = Path(os.fsdecode(raw))
        if (ROOT / relative).is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target / relative)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ferry's wheel, built from a copy of this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    source = source_tree(base / "src")
    dist = base / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(source)],
        env=pip_env(),
        cwd=base,
        timeout=PIP_TIMEOUT,
    )
    built = sorted(dist.glob("ferry-*.whl"))
    assert len(built) == 1, built
    return built[0]


def fresh_venv(where: Path, wheel: Path, how: str) -> Path:
    """A new venv with Ferry installed `how` (plain or locked); its bin folder."""
    run([sys.executable, "-m", "venv", str(where)], env=pip_env(), cwd=where.parent)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if how == "plain":
        run([*pip, str(wheel)], env=pip_env(), cwd=where.parent, timeout=PIP_TIMEOUT)
    else:
        lock = ROOT / "requirements.lock"
        locked = ["--require-hashes", "--only-binary", ":all:", "-r", str(lock)]
        run([*pip, *locked], env=pip_env(), cwd=where.parent, timeout=PIP_TIMEOUT)
        run([*pip, "--no-deps", str(wheel)], env=pip_env(), cwd=where.parent)
    return where / "bin"


@pytest.fixture
def fresh_database(postgres_template: str) -> Iterator[str]:
    """The URL of a database that does not exist yet (`ferry db upgrade` creates it)."""
    params = dict(p.split("=", 1) for p in ADMIN_DSN.split())
    name = f"ferry_install_{uuid.uuid4().hex[:10]}"
    host, port, user = params.get("host", "127.0.0.1"), params.get("port", "5432"), params["user"]
    yield f"postgresql+psycopg://{user}@{host}:{port}/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Installed:
    """Ferry's processes started from one venv, in a folder outside the checkout."""

    bin: Path
    home: Path
    env: dict[str, str]
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)

    def ferry(self, *args: str, timeout: float = 180) -> str:
        """Run `ferry ARGS` from the venv to completion; its stdout."""
        return run([str(self.bin / "ferry"), *args], env=self.env, cwd=self.home, timeout=timeout)

    def start(self, name: str, *args: str) -> None:
        """Start a long-running `ferry ARGS` in its own process group."""
        log = self.home / f"{name}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                [str(self.bin / "ferry"), *args],
                cwd=self.home,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = (popen, log)

    def log(self, name: str) -> str:
        """What a process printed so far (failing the test if it exited)."""
        popen, log = self.processes[name]
        text = log.read_text(errors="replace")
        assert popen.poll() is None, f"`ferry {name}` exited {popen.returncode}:\n{text}"
        return text

    def stop(self) -> str:
        """Stop every process (SIGTERM, then SIGKILL); their logs, for a failure report."""
        for popen, _ in self.processes.values():
            if popen.poll() is None:
                os.killpg(popen.pid, signal.SIGTERM)
        for popen, _ in self.processes.values():
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=10)
        return "\n".join(
            f"===== {name} =====\n{log.read_text(errors='replace')[-4000:]}"
            for name, (_, log) in self.processes.items()
        )


def read_events(response: requests.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of an SSE stream until it closes."""
    name, data = None, ""
    for raw in response.iter_lines(decode_unicode=True):
        line = raw or ""
        if not line and name is not None:
            yield name, orjson.loads(data)
            name, data = None, ""
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data = line[len("data:") :].strip()


@pytest.mark.parametrize("how", ["plain", "locked"])
def test_given_a_fresh_venv_without_extras_when_ferry_runs_then_an_export_goes_through(
    how: str,
    wheel: Path,
    fresh_database: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    """Given Ferry's wheel installed into a fresh venv without dev extras (`plain`: from the
    index; `locked`: as the Dockerfile does), When `pip check` runs and the venv's own
    `ferry` migrates, creates an account, seeds it and serves web, worker and scheduler,
    Then the dependencies are consistent, web serves with gevent workers, and an export
    posted over HTTP succeeds and downloads as a zip with metadata.json."""
    bin_dir = fresh_venv(tmp_path / "venv", wheel, how)
    run([str(bin_dir / "python"), "-m", "pip", "check"], env=pip_env(), cwd=tmp_path)
    for module in DEV_ONLY:
        probe = subprocess.run(
            [str(bin_dir / "python"), "-c", f"import {module}"], capture_output=True, check=False
        )
        assert probe.returncode != 0, f"{module} is installed: not a plain install"

    home = tmp_path / "run"
    home.mkdir()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(home)),
        "LANG": "C.UTF-8",
        "DATABASE_URL": fresh_database,
        "REDIS_URL": TEST_REDIS_URL,
        "STORAGE_URL": f"file://{home / 'storage'}",
        "FERRY_REDIS_PREFIX": redis_prefix,
        "FERRY_LEASE_SECONDS": "10",
        "FERRY_SWEEP_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    ferry = Installed(bin_dir, home, env)
    where = run(
        [str(bin_dir / "python"), "-c", "import web; print(web.__file__)"], env=env, cwd=home
    )
    assert Path(where.strip()).is_relative_to(tmp_path / "venv"), where

    assert "database created" in ferry.ferry("db", "upgrade")
    token = ferry.ferry("accounts", "create", "install-check").strip().splitlines()[-1]
    ferry.ferry("seed", "install-check", "--days", "3", "--samples-per-day", "200")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        ferry.start("web", "web", "--port", str(port))
        ferry.start("worker", "worker", "--concurrency", "1")
        ferry.start("scheduler", "scheduler")

        def answers(path: str) -> bool:
            ferry.log("web")
            try:
                return requests.get(base + path, timeout=2).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        for name in ("worker", "scheduler"):
            wait_for(lambda n=name: " ready." in ferry.log(n), timeout=90, what=f"{name} ready")
        wait_for(lambda: answers("/readyz"), timeout=60, what="ferry web to be ready")
        assert "Using worker: gevent" in ferry.log("web")

        headers = {"Authorization": f"Bearer {token}"}
        created = requests.post(
            base + "/api/v1/exports", json={"type": "archive"}, headers=headers, timeout=30
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["job"]["id"]
        with requests.get(
            f"{base}/api/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=60
        ) as stream:
            assert stream.status_code == 200, stream.text
            names = []
            for name, _ in read_events(stream):
                names.append(name)
                if name == "end":
                    break
        assert names[0] == "snapshot" and names[-1] == "end", names

        def finished() -> dict[str, Any] | None:
            job = requests.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=30)
            assert job.status_code == 200, job.text
            found: dict[str, Any] = job.json()["job"]
            assert found["status"] not in ("failed", "cancelled"), found
            return found if found["status"] == "succeeded" else None

        wait_for(finished, timeout=120, interval=0.5, what="the export to succeed")
        download = requests.get(
            f"{base}/api/v1/jobs/{job_id}/download", headers=headers, timeout=60
        )
        assert download.status_code == 200, download.text
        with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
            assert archive.testzip() is None
            # The Arc apps' layout: one top folder holding metadata.json and the buckets.
            found = [n for n in archive.namelist() if n.split("/")[-1] == "metadata.json"]
            assert len(found) == 1 and found[0].count("/") <= 1, archive.namelist()
            meta = orjson.loads(archive.read(found[0]))
        assert str(meta["schemaVersion"]).split(".")[0] in ("1", "2"), meta
        ferry.log("worker")
        ferry.log("scheduler")
    except BaseException:
        print(ferry.stop())  # the processes' logs go with the failure report
        raise
    ferry.stop()
