"""Accounts and their API tokens (only a hash of a token is stored)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from shared.errors import NotFound
from shared.store.schema import accounts, api_tokens
from shared.timefmt import utcnow
from shared.tokens import hash_token, new_token

ROLES = ("user", "ops")
# last_used_at is written at most this often per token, so polls stay a single read.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's account and role."""

    account_id: str
    account_name: str
    role: str
    token_id: str

    @property
    def is_ops(self) -> bool:
        """Whether the token may use the ops endpoints."""
        return self.role == "ops"


@dataclass(frozen=True, slots=True)
class Account:
    """An account: the owner of a timeline and of jobs."""

    id: str
    name: str


def create_account(engine: Engine, name: str) -> Account:
    """Create the account `name` (names are unique)."""
    account = Account(id=str(uuid.uuid4()), name=name)
    with engine.begin() as conn:
        conn.execute(insert(accounts).values(id=account.id, name=name))
    return account


def get_account(engine: Engine, name_or_id: str) -> Account:
    """The account with this name, or this id."""
    with engine.connect() as conn:
        query = select(accounts.c.id, accounts.c.name).where(accounts.c.name == name_or_id)
        row = conn.execute(query).first()
        if row is None and _is_uuid(name_or_id):
            query = select(accounts.c.id, accounts.c.name).where(accounts.c.id == name_or_id)
            row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no account named {name_or_id!r}")
    return Account(id=row.id, name=row.name)


def get_or_create_account(engine: Engine, name: str) -> tuple[Account, bool]:
    """The account `name`, creating it when missing; True when it was created."""
    try:
        return get_account(engine, name), False
    except NotFound:
        return create_account(engine, name), True


def issue_token(engine: Engine, account_id: str, *, role: str = "user", name: str = "") -> str:
    """A new token for the account; the clear text is returned once and never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    token = new_token()
    with engine.begin() as conn:
        conn.execute(
            insert(api_tokens).values(
                account_id=account_id,
                id=str(uuid.uuid4()),
                role=role,
                token_hash=hash_token(token),
                name=name or role,
            )
        )
    return token


def authenticate(engine: Engine, token: str) -> Principal | None:
    """The principal of a bearer token, or None when the token is unknown."""
    if not token:
        return None
    query = (
        select(
            api_tokens.c.account_id,
            api_tokens.c.id,
            api_tokens.c.role,
            api_tokens.c.last_used_at,
            accounts.c.name,
        )
        .join(accounts, accounts.c.id == api_tokens.c.account_id)
        .where(api_tokens.c.token_hash == hash_token(token))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
        if row is None:
            return None
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > (
            LAST_USED_RESOLUTION_SECONDS
        ):
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.account_id == row.account_id, api_tokens.c.id == row.id)
                .values(last_used_at=now)
            )
            conn.commit()
    return Principal(
        account_id=row.account_id, account_name=row.name, role=row.role, token_id=row.id
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
