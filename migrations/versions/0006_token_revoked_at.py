"""api_tokens.revoked_at: a revoked token stays listed, and answers 401

`ferry tokens revoke ID` sets it; authentication ignores a token whose revoked_at is set,
so the revoke takes effect on the next request. The row is kept so `ferry tokens list`
can say when the token was revoked.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("revoked_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("api_tokens", "revoked_at")
