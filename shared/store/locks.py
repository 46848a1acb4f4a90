"""The per-account lock that writers of an account's timeline take (SPEC 11, 13).

Imports into one account apply one at a time, and a rollback waits for them: each takes
this transaction-level advisory lock before it writes, and holds it until it commits or
rolls back. A cancel interrupts the wait.
"""

from __future__ import annotations

import psycopg

# The second argument of hashtextextended: a seed that keeps these keys apart from any
# other advisory lock on the same text.
_SEED = 7


def lock_account_data(conn: psycopg.Connection, account_id: str) -> None:
    """Wait for, then hold until the transaction ends, the account's data lock."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (account_id, _SEED))
