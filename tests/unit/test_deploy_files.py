"""The container files: what `docker build` and `docker compose up` users rely on (SPEC 1, 2).

No Docker engine runs here, so the files are read and checked against the real CLI and
settings: every `ferry` command they run must parse with the installed click group, and the
URLs they set must point at the services the compose file defines.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from sqlalchemy.engine import make_url

from cli.main import main as ferry_cli
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "scheduler")
SPEC_SERVICES = ("postgres", "redis", *APP_SERVICES)
SHARED_VARIABLES = ("DATABASE_URL", "REDIS_URL", "STORAGE_URL", "SECRET_KEY")


# --- reading the files ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _dockerfile_instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _stages() -> list[list[Instruction]]:
    """The Dockerfile's build stages, each starting with its FROM."""
    stages: list[list[Instruction]] = []
    for instruction in _dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction.keyword} before the first FROM"
        stages[-1].append(instruction)
    return stages


def _stage_name(stage: list[Instruction]) -> str | None:
    parts = stage[0].args.split()
    return parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None


def _exec_form(instruction: Instruction) -> list[str]:
    """The argv of a CMD/ENTRYPOINT; shell form would hide signals behind /bin/sh."""
    argv = json.loads(instruction.args)
    assert isinstance(argv, list), f"{instruction.keyword} must use the exec (JSON) form"
    return [str(a) for a in argv]


def _env(stage: list[Instruction]) -> dict[str, str]:
    """The ENV values set in a stage (`ENV K=V K2=V2` form)."""
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                key, sep, value = pair.partition("=")
                assert sep, f"use the ENV KEY=VALUE form, got {instruction.args!r}"
                values[key] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = compose.get("services") or {}
    assert name in services, f"docker-compose.yml has no {name!r} service"
    return services[name]


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command, "the service needs an explicit command"
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means `service_started`)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume source, for short and long syntax."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            parts = volume.split(":")
            assert len(parts) >= 2, f"anonymous volume {volume!r} is not shared between services"
            mounts[parts[1]] = parts[0]
        else:
            mounts[volume["target"]] = volume.get("source", "")
    return mounts


def _published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            ports[int(port["target"])] = int(port["published"])
        else:
            *host, container = str(port).split(":")
            assert host, f"port {port!r} is not published on a fixed host port"
            ports[int(container.split("/")[0])] = int(host[-1])
    return ports


def _ferry(argv: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parse a `ferry ...` argv with the real click group, as the process would at start.

    Returns the subcommand path and the leaf command's parsed options; an unknown command,
    option or bad value fails the test. Nothing is invoked.
    """
    assert argv and argv[0] == "ferry", f"not a ferry command: {argv}"
    command: click.Command = ferry_cli
    path: list[str] = []
    args = argv[1:]
    while isinstance(command, click.Group):
        assert args and not args[0].startswith("-"), f"`{shlex.join(argv)}` names no command"
        name = args.pop(0)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"`ferry {' '.join([*path, name])}` is not a ferry command"
        command, path = found, [*path, name]
    try:
        ctx = command.make_context(" ".join(["ferry", *path]), list(args))
    except click.ClickException as exc:
        pytest.fail(f"`{shlex.join(argv)}` does not parse: {exc.format_message()}")
    return tuple(path), dict(ctx.params)


def _image_version(image: str) -> tuple[int, ...]:
    match = re.fullmatch(r"(?:docker\.io/)?(?:library/)?[\w.-]+:(\d+(?:\.\d+)*)\S*", image)
    assert match, f"image {image!r} has no version tag"
    return tuple(int(n) for n in match.group(1).split("."))


# --- docker-compose.yml --------------------------------------------------------------------


def test_when_compose_is_read_then_it_defines_the_spec_stack(compose: dict[str, Any]) -> None:
    """Given docker-compose.yml, when a user runs `docker compose up`, then postgres, redis,
    web, worker and scheduler all start, on the versions SPEC 1 requires."""
    for name in SPEC_SERVICES:
        _service(compose, name)

    assert _image_version(_service(compose, "postgres")["image"])[0] >= 15
    assert _image_version(_service(compose, "redis")["image"])[0] >= 7


def test_when_app_services_start_then_each_runs_its_ferry_process(
    compose: dict[str, Any],
) -> None:
    """Given the app services, when they start, then web, worker and scheduler run the
    matching `ferry` subcommand, and web listens on every interface (else the published
    port reaches nothing)."""
    for name in APP_SERVICES:
        path, _ = _ferry(_command(_service(compose, name)))
        assert path == (name,), f"{name} runs `ferry {' '.join(path)}`"

    _, web = _ferry(_command(_service(compose, "web")))
    assert web["host"] == "0.0.0.0"
    _, worker = _ferry(_command(_service(compose, "worker")))
    assert worker["concurrency"] >= 1


def test_when_compose_runs_ferry_then_every_command_exists_in_the_cli(
    compose: dict[str, Any],
) -> None:
    """Given every service that runs `ferry`, when its command is parsed by the real CLI,
    then the subcommand and its options exist (a renamed option breaks this test, not a
    deployment)."""
    ferry_commands = [
        _command(service)
        for service in compose["services"].values()
        if service.get("command") and _command(service)[0] == "ferry"
    ]

    assert len(ferry_commands) >= len(APP_SERVICES) + 1  # the app and the migration
    for argv in ferry_commands:
        _ferry(argv)


def test_when_the_stack_starts_then_migrations_finish_before_the_app(
    compose: dict[str, Any],
) -> None:
    """Given a fresh database, when the stack starts, then a one-shot `ferry db upgrade` runs
    once postgres answers, and web, worker and scheduler wait until it succeeded and Redis
    answers."""
    migrations = [
        name
        for name, service in compose["services"].items()
        if service.get("command") and _command(service)[:3] == ["ferry", "db", "upgrade"]
    ]
    assert len(migrations) == 1, f"expected one migration service, found {migrations}"
    migrate = _service(compose, migrations[0])
    _ferry(_command(migrate))
    assert _depends_on(migrate).get("postgres") == "service_healthy"
    # A one-shot that restarts after exit 0 would run forever and never count as completed.
    assert str(migrate.get("restart", "no")) in ("no", "on-failure")

    for name in APP_SERVICES:
        deps = _depends_on(_service(compose, name))
        assert deps.get(migrations[0]) == "service_completed_successfully", name
        assert deps.get("redis") == "service_healthy", name

    postgres_check = " ".join(_service(compose, "postgres")["healthcheck"]["test"])
    assert "pg_isready" in postgres_check
    redis_check = " ".join(_service(compose, "redis")["healthcheck"]["test"])
    assert "redis-cli" in redis_check
    assert "ping" in redis_check


def test_when_app_services_start_then_they_share_one_image_and_environment(
    compose: dict[str, Any],
) -> None:
    """Given web, worker, scheduler and the migration, when they start, then they run the
    same image built from this repository with identical connection settings (a worker on
    another database or Redis would never see the web's jobs)."""
    names = [*APP_SERVICES, "migrate"]
    services = [_service(compose, name) for name in names]

    builds = {json.dumps(s.get("build"), sort_keys=True) for s in services}
    images = {s.get("image") for s in services}
    assert len(builds) == 1, f"different builds: {builds}"
    assert len(images) == 1, f"different image names: {images}"
    build = services[0]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (ROOT / context / dockerfile).is_file()

    environments = {name: _environment(s) for name, s in zip(names, services, strict=True)}
    for variable in SHARED_VARIABLES:
        values = {name: env.get(variable) for name, env in environments.items()}
        assert None not in values.values(), f"{variable} missing: {values}"
        assert len(set(values.values())) == 1, f"{variable} differs: {values}"


def test_when_the_worker_writes_an_export_then_web_can_serve_it(
    compose: dict[str, Any],
) -> None:
    """Given the app services, when the worker writes an export under STORAGE_URL, then the
    same file is visible to web (one named volume, mounted where STORAGE_URL points)."""
    storage = Settings(storage_url=_environment(_service(compose, "web"))["STORAGE_URL"])
    root = PurePosixPath(storage.storage_root.as_posix())
    declared = set((compose.get("volumes") or {}).keys())

    sources = set()
    for name in APP_SERVICES:
        mounts = _volume_mounts(_service(compose, name))
        covering = [target for target in mounts if root.is_relative_to(target)]
        assert covering, f"{name}: {root} is not on a mounted volume ({mounts})"
        source = mounts[max(covering, key=len)]
        assert source in declared, f"{name}: {source!r} is not a named volume"
        sources.add(source)
    assert len(sources) == 1, f"storage lives on different volumes: {sources}"


def test_when_the_app_connects_then_urls_name_the_compose_services(
    compose: dict[str, Any],
) -> None:
    """Given the app environment, when Ferry connects, then DATABASE_URL uses the psycopg
    driver and reaches the postgres service's database as its user, and REDIS_URL reaches
    the redis service."""
    env = _environment(_service(compose, "web"))
    postgres = _environment(_service(compose, "postgres"))
    user = postgres.get("POSTGRES_USER", "postgres")

    url = make_url(env["DATABASE_URL"])
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "postgres"
    assert (url.port or 5432) == 5432
    assert url.username == user
    assert url.database == postgres.get("POSTGRES_DB", user)
    if postgres.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        assert url.password == postgres.get("POSTGRES_PASSWORD")

    redis_url = make_url(env["REDIS_URL"])  # same URL grammar: scheme://host:port/db
    assert redis_url.drivername == "redis"
    assert redis_url.host == "redis"
    assert (redis_url.port or 6379) == 6379


def test_when_a_user_opens_port_8000_then_web_answers(compose: dict[str, Any]) -> None:
    """Given the web service, when a user opens the published port, then it reaches the port
    `ferry web` listens on, which is also the one the image exposes."""
    web = _service(compose, "web")
    _, params = _ferry(_command(web))
    published = _published_ports(web)

    assert params["port"] in published, f"web listens on {params['port']}, publishes {published}"
    assert params["port"] in _exposed_ports()


# --- Dockerfile ----------------------------------------------------------------------------


def _exposed_ports() -> set[int]:
    return {
        int(port.split("/")[0])
        for instruction in _stages()[-1]
        if instruction.keyword == "EXPOSE"
        for port in instruction.args.split()
    }


def test_when_the_image_builds_then_it_runs_python_3_11_or_newer() -> None:
    """Given the Dockerfile, when it builds, then every stage uses a Python >= 3.11 image
    (pyproject's `requires-python`)."""
    for stage in _stages():
        image = stage[0].args.split()[0]
        assert image.startswith("python:"), image
        assert _image_version(image)[:2] >= (3, 11), image


def test_when_the_image_builds_then_it_installs_ferry_without_dev_extras() -> None:
    """Given the Dockerfile, when it builds, then the final image has the project installed
    (from this repository, directly or as a wheel built from it) and no dev extras."""
    stages = _stages()
    final = stages[-1]
    runs = [i.args for stage in stages for i in stage if i.keyword == "RUN"]
    assert not any(re.search(r"\[[^\]]*dev[^\]]*\]", run) for run in runs), "dev extras"

    installs = [i.args for i in final if i.keyword == "RUN" and "pip install" in i.args]
    from_repo = any(re.search(r"pip install\b[^&;|]*\s\.(\s|$)", run) for run in installs)
    from_wheel = any(re.search(r"pip install\b[^&;|]*\.whl", run) for run in installs)
    assert from_repo or from_wheel, f"the final stage does not install ferry: {installs}"
    if from_wheel:
        copied_from = {
            m.group(1)
            for i in final
            if i.keyword == "COPY" and (m := re.search(r"--from=(\S+)", i.args))
        }
        builders = [s for s in stages[:-1] if _stage_name(s) in copied_from]
        assert any(
            re.search(r"pip wheel\b[^&;|]*\s\.(\s|$)", i.args)
            for s in builders
            for i in s
            if i.keyword == "RUN"
        ), "the wheel is not built from this repository"


def test_when_a_container_runs_then_it_is_not_root() -> None:
    """Given the image, when a container starts, then its processes run as a user the image
    created, not root."""
    final = _stages()[-1]
    users = [i.args for i in final if i.keyword == "USER"]
    assert users, "no USER: the container runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    if not user.isdigit():
        runs = " ".join(i.args for i in final if i.keyword == "RUN")
        assert re.search(rf"(useradd|adduser)\b[^&;]*\b{re.escape(user)}\b", runs), user


def test_when_no_storage_is_configured_then_exports_go_to_the_volume_path() -> None:
    """Given the image's defaults, when STORAGE_URL is not set, then storage is the absolute
    /data/storage folder, which the image creates and hands to its user (so a named volume
    mounted there is writable)."""
    final = _stages()[-1]
    storage_url = _env(final).get("STORAGE_URL")
    assert storage_url is not None, "the image sets no STORAGE_URL default"
    root = Settings(storage_url=storage_url).storage_root

    assert root.as_posix() == "/data/storage"
    runs = [i.args for i in final if i.keyword == "RUN"]
    assert any("mkdir" in r and "/data" in r and "chown" in r for r in runs), runs


def test_when_a_container_starts_without_a_command_then_it_serves_the_web_app() -> None:
    """Given the image, when it runs with no command, then `ferry web` starts on all
    interfaces and on the port the image exposes."""
    final = _stages()[-1]
    assert not [i for i in final if i.keyword == "ENTRYPOINT"], "compose overrides CMD only"
    cmds = [i for i in final if i.keyword == "CMD"]
    assert cmds, "no default CMD"

    path, params = _ferry(_exec_form(cmds[-1]))

    assert path == ("web",)
    assert params["host"] == "0.0.0.0"
    assert params["port"] in _exposed_ports()


# --- requirements.lock: the image's pinned dependencies ------------------------------------

LOCK = ROOT / "requirements.lock"
# Where the image runs: the lock is resolved for this interpreter and platform.
IMAGE_MARKERS = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: int


def _lock() -> dict[str, Pin]:
    """Name -> pin of every requirement in requirements.lock (continuations joined)."""
    pins: dict[str, Pin] = {}
    text = LOCK.read_text()
    for entry in re.split(r"\n(?=[^\s#])", text):
        line = " ".join(part.strip().rstrip("\\") for part in entry.splitlines())
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split(" --")
        requirement = Requirement(spec)
        pinned = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pinned) == 1 and len(requirement.specifier) == 1, f"not pinned: {spec}"
        hashes = sum(1 for option in options if option.startswith("hash=sha256:"))
        pins[canonicalize_name(requirement.name)] = Pin(Version(pinned[0].version), hashes)
    return pins


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _installed_requirements(name: str, extras: set[str]) -> list[Requirement] | None:
    """What the dev venv's copy of `name` requires with `extras`, on the image's platform;
    None when that copy is not the one the lock pins (its metadata may differ)."""
    try:
        installed = Version(metadata.version(name))
    except metadata.PackageNotFoundError:
        return None
    if installed != _lock()[canonicalize_name(name)].version:
        return None
    wanted = []
    for raw in metadata.requires(name) or []:
        requirement = Requirement(raw)
        markers = requirement.marker
        if markers is None or any(
            markers.evaluate({**IMAGE_MARKERS, "extra": extra}) for extra in {"", *extras}
        ):
            wanted.append(requirement)
    return wanted


def test_when_the_lock_is_read_then_it_pins_every_runtime_dependency_with_hashes() -> None:
    """Given requirements.lock, when the image installs from it, then every runtime
    dependency of pyproject.toml, with the packages its extras bring (`celery[redis]` needs
    kombu's Redis transport: redis-py and packaging), is pinned to a version the project
    accepts, with hashes; dev tools are not in it. (A dependency's own dependencies are
    followed where the dev venv holds the locked version; the install test proves the rest
    by installing from the lock in hash-checking mode.)"""
    pins = _lock()
    assert all(pin.hashes >= 1 for pin in pins.values()), "a pin without --hash"
    assert "--python-version 3.11" in LOCK.read_text(), "the lock is not resolved for 3.11"
    assert "x86_64" in LOCK.read_text(), "the lock is not resolved for linux x86_64"

    pending = _runtime_requirements()
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, frozenset(requirement.extras)) in seen:
            continue
        seen.add((name, frozenset(requirement.extras)))
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"requirements.lock pins {name}=={pins[name].version}, outside {requirement}"
        )
        pending.extend(_installed_requirements(name, set(requirement.extras)) or [])

    for name in ("packaging", "redis", "gevent", "greenlet"):
        assert name in pins, name
    for dev in ("pytest", "ruff", "mypy", "fakeredis", "uv"):
        assert dev not in pins, f"dev tool {dev} in the image's lock"


def test_when_the_image_builds_then_its_dependencies_come_from_the_lock() -> None:
    """Given the Dockerfile, when it builds, then the final image installs its dependencies
    from requirements.lock in hash-checking mode, then Ferry itself with --no-deps (nothing
    resolved again from the index), and runs `pip check`."""
    final = _stages()[-1]
    copies = {
        i.args.split()[-1]: i.args.split()[-2]
        for i in final
        if i.keyword == "COPY" and "--from" not in i.args
    }
    lock_in_image = next((dest for dest, src in copies.items() if src == LOCK.name), None)
    assert lock_in_image is not None, f"the final stage does not copy {LOCK.name}: {copies}"
    runs = [i.args for i in final if i.keyword == "RUN"]
    installs = [
        command.strip()
        for run in runs
        for command in re.split(r"&&|;", run)
        if re.search(r"\bpip install\b", command)
    ]

    from_lock = [c for c in installs if f"-r {lock_in_image}" in c]
    assert len(from_lock) == 1, f"no `pip install -r {lock_in_image}`: {installs}"
    assert "--require-hashes" in from_lock[0]
    others = [c for c in installs if c not in from_lock]
    assert others and all("--no-deps" in c for c in others), f"resolves again: {others}"
    assert installs.index(from_lock[0]) < installs.index(others[0])
    assert any(re.search(r"\bpip check\b", run) for run in runs), "no `pip check`"


def test_when_the_image_serves_the_web_app_then_it_uses_the_worker_class_it_installs() -> None:
    """Given the image's default command, when it starts, then `ferry web` runs gunicorn
    with gevent workers (not Flask's dev server), and gevent is in the image's lock."""
    from cli.gunicorn import options

    _, params = _ferry(_exec_form([i for i in _stages()[-1] if i.keyword == "CMD"][-1]))

    assert params["dev"] is False
    worker_class = options(bind="0.0.0.0:8000", workers=1, connections=10)["worker_class"]
    assert worker_class == "gevent"
    assert worker_class in _lock()


# --- .dockerignore -------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().strip("/") for line in lines if line.strip() and line[0] != "#"]


def _ignored(name: str, patterns: list[str]) -> bool:
    """Docker's rule for a top-level name: the last matching pattern wins, `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").removeprefix("**/")
        if fnmatch.fnmatchcase(name, bare):
            ignored = not negate
    return ignored


def test_when_the_image_builds_then_local_state_stays_out_of_the_context() -> None:
    """Given .dockerignore, when the image builds, then the developer's venv and var/
    (databases, storage) stay out, while everything the package needs goes in."""
    patterns = _ignore_patterns()

    assert _ignored(".venv", patterns)
    assert _ignored("var", patterns)
    needed = [
        "pyproject.toml",
        "requirements.lock",
        "shared",
        "web",
        "worker",
        "cli",
        "migrations",
        "README.md",
    ]
    kept_out = [name for name in needed if _ignored(name, patterns)]
    assert not kept_out, f"needed to install ferry but ignored: {kept_out}"
