"""Batches fetched ahead by a reader thread: in order, errors surfaced, the reader stopped."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.tables.batches import prefetched


class FakeCursor:
    """`fetchmany` over a list, recording how far it was asked to read."""

    def __init__(self, rows: int, *, fail_at: int | None = None) -> None:
        self.rows = [(n,) for n in range(rows)]
        self.position = 0
        self.fail_at = fail_at
        self.threads: set[str] = set()

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and self.position >= self.fail_at:
            raise RuntimeError("the server went away")
        batch = self.rows[self.position : self.position + size]
        self.position += len(batch)
        return batch


def test_given_rows_when_prefetched_then_every_batch_comes_in_order_from_the_reader() -> None:
    cursor = FakeCursor(25)

    batches = list(prefetched(cursor, 10))  # type: ignore[arg-type]

    assert [len(b) for b in batches] == [10, 10, 5]
    assert [row[0] for batch in batches for row in batch] == list(range(25))
    assert cursor.threads == {"ferry-prefetch"}


def test_given_a_failing_fetch_when_prefetched_then_the_consumer_gets_the_error() -> None:
    cursor = FakeCursor(100, fail_at=20)
    seen = []

    with pytest.raises(RuntimeError, match="went away"):
        for batch in prefetched(cursor, 10):  # type: ignore[arg-type]
            seen.extend(batch)

    assert len(seen) == 20


def test_given_a_consumer_that_stops_early_when_closed_then_the_reader_stops_too() -> None:
    cursor = FakeCursor(10_000)
    before = threading.active_count()

    batches = prefetched(cursor, 10, depth=2)  # type: ignore[arg-type]
    next(batches)
    batches.close()

    assert threading.active_count() == before
    assert cursor.position <= 10 * 4, "read at most a few batches ahead"
