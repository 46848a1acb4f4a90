# Ferry: one image for every process (web, worker, scheduler, migrations); the command picks.
#   docker build -t ferry .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=... -e REDIS_URL=... ferry
# `docker compose up` runs the whole stack (docker-compose.yml).

# --- build: turn the sources into a wheel, so the final image holds no source tree ---------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STORAGE_URL=file:///data/storage

# An unprivileged user that owns the storage folder. A named volume mounted on /data/storage
# starts as a copy of this folder, so it is writable by that user too.
RUN groupadd --system --gid 10001 ferry \
    && useradd --system --uid 10001 --gid ferry --create-home --home-dir /home/ferry ferry \
    && mkdir -p /data/storage /app \
    && chown -R ferry:ferry /data /app

# Dependencies only, pinned with hashes by requirements.lock (`make lock`: compiled from
# pyproject.toml for Python 3.11 on linux x86_64). Hash-checking mode refuses any package
# the lock does not pin, so a lock that misses a dependency fails the build here. This layer
# is rebuilt when the lock changes, not on every source change.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes --only-binary :all: -r /tmp/requirements.lock \
    && rm /tmp/requirements.lock

# The project itself, without resolving anything again (no dev extras); `pip check` fails
# the build if the locked layer above does not satisfy the package's requirements.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels \
    && pip check

USER ferry
WORKDIR /app

EXPOSE 8000

# worker, scheduler and `db upgrade` override the command (see docker-compose.yml).
CMD ["ferry", "web", "--host", "0.0.0.0", "--port", "8000"]
