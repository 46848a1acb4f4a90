"""`ferry tokens list ACCOUNT`, `ferry tokens revoke ID` (SPEC 10)."""

from __future__ import annotations

import click

from cli.context import Cli
from cli.render import short_time, table

pass_cli = click.make_pass_decorator(Cli, ensure=True)


@click.group()
def tokens() -> None:
    """API tokens: see them, revoke them (the token itself is never shown again)."""


@tokens.command("list")
@click.argument("account")
@pass_cli
def tokens_list(cli: Cli, account: str) -> None:
    """A table of ACCOUNT's tokens (name or id), oldest first, revoked ones included."""
    from shared.store.accounts import get_account, list_tokens

    found = get_account(cli.engine, account)
    rows = [
        (
            t.id,
            t.name,
            t.role,
            short_time(t.created_at),
            short_time(t.last_used_at),
            short_time(t.revoked_at),
        )
        for t in list_tokens(cli.engine, found.id)
    ]
    click.echo(table(("ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"), rows))


@tokens.command("revoke")
@click.argument("token_id")
@pass_cli
def tokens_revoke(cli: Cli, token_id: str) -> None:
    """Revoke the token TOKEN_ID: its next request is a 401."""
    from shared.store.accounts import revoke_token

    info, changed = revoke_token(cli.engine, token_id)
    when = short_time(info.revoked_at)
    if changed:
        click.echo(f"revoked token {info.id} ({info.name}, {info.role}) at {when}")
    else:
        click.echo(f"token {info.id} ({info.name}, {info.role}) was already revoked at {when}")
