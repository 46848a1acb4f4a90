"""Several copies of one id in an import's staging: which one stays (SPEC 4).

An Arc backup that the app updated incrementally holds older copies of a record (an item
whose start moved to another month's file keeps its old copy in the old file). The copy
with the newest lastSaved stays; the others are reported: older or identical ones as
warnings, equally new but different ones as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from shared.archive.report import LISTED
from shared.archive.staging import COLUMNS, Staging


@dataclass(slots=True)
class Repeats:
    """Copies of ids that `remove_repeats` removed: older (or identical) ones, and conflicts.

    Each holds the first LISTED in archive order, with where the kept copy is.
    """

    older: list[dict[str, Any]] = field(default_factory=list)
    older_total: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    conflict_total: int = 0


def remove_repeats(conn: psycopg.Connection, staging: Staging, kind: str) -> Repeats:
    """Keep one copy of every id: the one with the newest lastSaved; report the rest.

    An app backup updated incrementally holds older copies of a record (an item whose
    start moved to another month file): those go with a warning. Copies as new as
    the kept one go too: with a warning when their content is the same, as an error
    when it differs (which one is right cannot be told). Ties go to the first in the
    archive's order.
    """
    table = staging.table(kind)
    repeated = conn.execute(
        sql.SQL("SELECT 1 FROM {t} GROUP BY id HAVING count(*) > 1 LIMIT 1").format(t=table)
    ).fetchone()
    if repeated is None:  # the usual case: one hash aggregate and done
        return Repeats()
    content = sql.SQL("ROW({cols})::text").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[kind])
    )
    rows = conn.execute(
        sql.SQL(
            "WITH ranked AS (SELECT file_no, idx, last_saved, row_number() OVER w AS n,"
            " first_value(file_no) OVER w AS f0, first_value(idx) OVER w AS i0,"
            " first_value(last_saved) OVER w AS newest,"
            " {content} = first_value({content}) OVER w AS same"
            " FROM {t} WHERE id IN (SELECT id FROM {t} GROUP BY id HAVING count(*) > 1)"
            " WINDOW w AS (PARTITION BY id ORDER BY last_saved DESC NULLS LAST,"
            " file_no, idx)),"
            " gone AS (DELETE FROM {t} s USING ranked r"
            " WHERE r.n > 1 AND s.file_no = r.file_no AND s.idx = r.idx"
            " RETURNING r.file_no, r.idx, r.f0, r.i0, r.last_saved, r.newest,"
            " (r.last_saved IS NOT DISTINCT FROM r.newest) AS tie, r.same),"
            " listed AS (SELECT *, row_number() OVER (PARTITION BY tie AND NOT same"
            " ORDER BY file_no, idx) AS k,"
            " count(*) OVER (PARTITION BY tie AND NOT same) AS total FROM gone)"
            " SELECT tie AND NOT same, total, file_no, idx, f0, i0, last_saved::text,"
            " newest::text, tie FROM listed WHERE k <= {limit} ORDER BY file_no, idx"
        ).format(t=table, content=content, limit=sql.Literal(LISTED))
    ).fetchall()
    found = Repeats()
    for conflict, total, file_no, idx, f0, i0, saved, newest, tie in rows:
        entry = {
            "file_no": file_no,
            "index": idx,
            "kept_file_no": f0,
            "kept_index": i0,
            "last_saved": saved,
            "kept_last_saved": newest,
            "same": tie and not conflict,
        }
        if conflict:
            found.conflicts.append(entry)
            found.conflict_total = total
        else:
            found.older.append(entry)
            found.older_total = total
    return found
