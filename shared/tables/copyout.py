"""`COPY … TO STDOUT` read straight from libpq, one record per call, handed on in batches.

psycopg's `Copy` iteration runs two Python generators and a wait loop per record, about
1.2 µs each: 1.2 s of the worker's CPU for 1 M rows, as much as the rest of a CSV export's
Python together, which on two busy cores decided the time (bench/tables.py). This loop
asks psycopg's public libpq wrapper (`psycopg.pq`) for each record and waits on the socket
only when libpq has nothing buffered: 0.4 s for the same rows. The connection must be in
its transaction already (the export's snapshot); the socket wait releases the GIL, and a
cancel (`conn.cancel_safe()` from the watcher thread) ends the COPY with an error here.

Each record is copied into the batch's one `bytearray` at once, and only its end offset
is kept: the objects libpq's wrapper makes per record (a memoryview, its buffer, a tuple)
are freed in the same iteration. Kept in a list until the batch was full, a million of
them a million rows were what set off the cyclic garbage collector, whose full passes
over the worker's heap cost more than the reading itself (client CPU for 1 M rows of a
CSV export 1.17 s, of which ~0.6 s was collections; 0.55 s with the collector off).
"""

from __future__ import annotations

import select
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.pq.abc
from psycopg import pq


@dataclass(frozen=True, slots=True)
class Batch:
    """Records of a COPY, back to back in `data`; `ends[i]` is where record i ends."""

    data: bytearray
    ends: list[int]

    def __len__(self) -> int:
        return len(self.ends)

    def records(self) -> Iterator[memoryview]:
        """Each record (with its record end)."""
        view = memoryview(self.data)
        start = 0
        for end in self.ends:
            yield view[start:end]
            start = end


def copy_out(
    conn: psycopg.Connection,
    statement: str,
    params: Mapping[str, Any],
    *,
    batch_bytes: int = 256 * 1024,
) -> Iterator[Batch]:
    """The records of a `COPY … TO STDOUT` (each ending with the format's record end), in
    batches of about `batch_bytes`: the consumer's work is per batch, not per record."""
    query = psycopg.ClientCursor(conn).mogrify(statement, params)
    pgconn = conn.pgconn
    pgconn.send_query(query.encode(conn.info.encoding))  # raises when it cannot send
    socket = pgconn.socket
    while pgconn.flush():
        select.select([], [socket], [])
    result = _next_result(pgconn, socket)
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        _drain(pgconn, socket)
        _raise(pgconn, result)
    get = pgconn.get_copy_data
    read = pgconn.consume_input
    data = bytearray()
    ends: list[int] = []
    end = ends.append
    gathered = 0
    drained = False  # libpq's buffer is empty and so was the socket when last read
    while True:
        size, record = get(1)
        if size > 0:
            data += record
            gathered += size
            end(gathered)
            drained = False
            if gathered >= batch_bytes:
                yield Batch(data, ends)
                data = bytearray()
                ends = []
                end = ends.append
                gathered = 0
        elif size == 0:
            # Read what the socket holds before waiting on it: one syscall, not two.
            if drained:
                select.select([socket], [], [])
            read()
            drained = True
        else:
            break
    # -1: the COPY ended; its command result (or the error that ended it) follows.
    result = _next_result(pgconn, socket)
    _drain(pgconn, socket)
    if result is None or result.status != pq.ExecStatus.COMMAND_OK:
        _raise(pgconn, result)
    if ends:
        yield Batch(data, ends)


def _drain(pgconn: pq.abc.PGconn, socket: int) -> None:
    """Read the results left, so the connection is ready for its next command."""
    while _next_result(pgconn, socket) is not None:
        pass


def _next_result(pgconn: pq.abc.PGconn, socket: int) -> pq.abc.PGresult | None:
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            return pgconn.get_result()
        select.select([socket], [], [])


def _raise(pgconn: pq.abc.PGconn, result: pq.abc.PGresult | None) -> None:
    if result is None:
        raise psycopg.OperationalError(_text(pgconn.error_message) or "COPY got no result")
    code = result.error_field(pq.DiagnosticField.SQLSTATE)
    message = _text(result.error_message) or f"COPY ended with {pq.ExecStatus(result.status).name}"
    try:
        error = psycopg.errors.lookup(code.decode()) if code else psycopg.DatabaseError
    except KeyError:
        error = psycopg.DatabaseError
    raise error(message)


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace").strip()
