"""Accounts and their API tokens (only a hash of a token is stored)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, insert, select, update

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


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What may be shown of an API token: never the token, never its hash."""

    id: str
    account_id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


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


def account_names(engine: Engine, ids: Iterable[str]) -> dict[str, str]:
    """The names of the accounts `ids` (those that exist), by id."""
    wanted = sorted({i for i in ids if _is_uuid(i)})
    if not wanted:
        return {}
    query = select(accounts.c.id, accounts.c.name).where(accounts.c.id.in_(wanted))
    with engine.connect() as conn:
        return {row.id: row.name for row in conn.execute(query)}


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
        # A revoked token is refused on its next request: nothing caches a principal.
        .where(api_tokens.c.token_hash == hash_token(token), api_tokens.c.revoked_at.is_(None))
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


_TOKEN_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.account_id,
    api_tokens.c.name,
    api_tokens.c.role,
    api_tokens.c.created_at,
    api_tokens.c.last_used_at,
    api_tokens.c.revoked_at,
)


def _token_info(row: object) -> TokenInfo:
    return TokenInfo(**{c.name: getattr(row, c.name) for c in _TOKEN_COLUMNS})


def list_tokens(engine: Engine, account_id: str) -> list[TokenInfo]:
    """The account's tokens, oldest first, revoked ones included."""
    query = (
        select(*_TOKEN_COLUMNS)
        .where(api_tokens.c.account_id == account_id)
        .order_by(api_tokens.c.created_at, api_tokens.c.id)
    )
    with engine.connect() as conn:
        return [_token_info(row) for row in conn.execute(query)]


def revoke_token(engine: Engine, token_id: str) -> tuple[TokenInfo, bool]:
    """Revoke a token by its id (its row stays, for the listing); True when it was live."""
    if not _is_uuid(token_id):
        raise NotFound(f"no token with id {token_id!r}")
    with engine.begin() as conn:
        row = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(*_TOKEN_COLUMNS)
        ).first()
        if row is not None:
            return _token_info(row), True
        row = conn.execute(select(*_TOKEN_COLUMNS).where(api_tokens.c.id == token_id)).first()
    if row is None:
        raise NotFound(f"no token with id {token_id!r}")
    return _token_info(row), False


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
