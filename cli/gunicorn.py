"""Serving the web app with gunicorn's gevent workers (what `ferry web` runs).

Each request, an SSE stream included, is a greenlet: a stream that waits on Redis costs a
parked socket, not a thread, so open streams never keep other requests waiting. gevent
must patch the standard library before psycopg, redis-py and SQLAlchemy are imported:
psycopg picks its wait function when it is imported (a cooperative one only once `select`
is patched). The `ferry` command has already imported them, so `serve()` replaces the
process with a fresh interpreter running this module; its gunicorn master imports none of
them, and each worker patches first (gunicorn's gevent worker does) and only then loads
the app. Nothing here imports Ferry's modules at import time for the same reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

WORKER_CLASS = "gevent"


def serve(*, host: str, port: int, workers: int, connections: int) -> NoReturn:
    """Replace this process with gunicorn serving the web app (same pid, same signals)."""
    argv = [
        sys.executable,
        "-P",  # the working directory must not shadow the installed packages
        "-m",
        "cli.gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--connections",
        str(connections),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def options(*, bind: str, workers: int, connections: int) -> dict[str, Any]:
    """gunicorn's settings for `ferry web`."""
    return {
        "bind": bind,
        "workers": workers,
        "worker_class": WORKER_CLASS,
        # Simultaneous connections per worker, SSE streams included (each is a greenlet).
        "worker_connections": connections,
        # Kills a worker whose event loop stops turning (a request that blocks it).
        "timeout": 60,
        # Open SSE streams are cut after this at shutdown; clients reconnect elsewhere.
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        # gunicorn's runtime-control socket sits at one path per user; unused, and two
        # servers on one machine would fight over it.
        "control_socket_disable": True,
    }


def main(argv: list[str] | None = None) -> None:
    """Run gunicorn with the options `serve()` passed (entry point of the new process)."""
    parser = argparse.ArgumentParser(prog="ferry web")
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    args = parser.parse_args(argv)

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            chosen = options(bind=args.bind, workers=args.workers, connections=args.connections)
            for key, value in chosen.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # In the worker, after gevent patched the standard library.
            from web import create_app

            return create_app()

    Server().run()


if __name__ == "__main__":
    main()
