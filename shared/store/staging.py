"""The staging area: per-job scratch tables in the `ferry_staging` schema.

Every pipeline that stages rows (archive and table imports, rollbacks) names its tables
`j_<job id hex>_<part>`, so the sweeper can find and drop what a job left behind without
knowing which pipeline wrote it.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

SCHEMA = "ferry_staging"


def table_name(job_id: str, part: str) -> str:
    """The unqualified name of one of a job's staging tables."""
    return f"j_{job_id.replace('-', '')}_{part}"


def table(job_id: str, part: str) -> sql.Identifier:
    """One of a job's staging tables, schema-qualified."""
    return sql.Identifier(SCHEMA, table_name(job_id, part))


def _job_id(name: str) -> str | None:
    parts = name.split("_", 2)
    if len(parts) == 3 and parts[0] == "j" and len(parts[1]) == 32:
        h = parts[1]
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return None


def leftover_job_ids(conn: psycopg.Connection) -> set[str]:
    """Job ids that have staging tables (for the sweeper)."""
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (SCHEMA,))
    return {job_id for (name,) in rows if (job_id := _job_id(name)) is not None}


def drop_job_tables(conn: psycopg.Connection, job_id: str) -> None:
    """Drop every staging table of a job (the caller commits)."""
    prefix = table_name(job_id, "")
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND starts_with(tablename, %s)",
        (SCHEMA, prefix),
    ).fetchall()
    for (name,) in rows:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=sql.Identifier(SCHEMA, name)))
