"""Rows of a server-side cursor in batches, the next batch fetched while this one is used.

A server-side cursor computes rows only when asked (FETCH), so a plain loop has the
server and Python take turns; one reader thread asking ahead lets both work at once, on
two cores about halving an XLSX export (bench/tables.py). At most `depth` batches wait, so
memory stays flat. psycopg waits on the socket without the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import psycopg

# How long a blocked hand-over waits before it looks at the stop flag again.
_POLL_SECONDS = 0.1


def prefetched(
    cursor: psycopg.ServerCursor[Any], size: int, *, depth: int = 2
) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of up to `size` rows until the cursor is exhausted; errors re-raised here."""
    handed: queue.Queue[list[tuple[Any, ...]] | BaseException] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item: list[tuple[Any, ...]] | BaseException) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(size)
                if not hand(batch) or not batch:
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            hand(exc)

    reader = threading.Thread(target=read, name="ferry-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = handed.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()
        reader.join()
