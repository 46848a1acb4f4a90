#!/usr/bin/env bash
# Start PostgreSQL and Redis if they are installed here but not answering.
# Used by `make run` and `make test`; harmless when both already run.
set -u

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp >/dev/null || true
  fi
  for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
fi

pg_up && echo "PostgreSQL: up" || echo "PostgreSQL: NOT answering on 127.0.0.1:5432"
redis_up && echo "Redis: up" || echo "Redis: NOT answering on 127.0.0.1:6379"
exit 0
