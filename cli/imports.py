"""`ferry imports list ACCOUNT`, `ferry imports rollback ID` (SPEC 10, 13)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from cli.context import Cli
from cli.render import table

pass_cli = click.make_pass_decorator(Cli, ensure=True)


@click.group()
def imports() -> None:
    """The import history, and undoing an import."""


def _when(value: str | None) -> str:
    return "-" if value is None else value.replace("T", " ")[:19]


@imports.command("list")
@click.argument("account")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@pass_cli
def imports_list(cli: Cli, *, account: str, limit: int) -> None:
    """ACCOUNT's imports (name or id), newest first, with until when each can be undone."""
    from shared.store.accounts import get_account

    found = get_account(cli.engine, account)
    records, _ = cli.service.imports_page(found.id, limit=limit)
    rows = []
    for r in records:
        counts = r["counts"]
        rows.append(
            (
                r["id"],
                r["type"] if r["table"] is None else f"{r['type']}:{r['table']}",
                r["status"],
                f"+{counts['created']} ~{counts['updated']} ={counts['skipped']}"
                f" !{counts['invalid']}",
                _when(r["finished_at"]),
                _when(r["rollback_until"]),
                _when(r["rolled_back_at"]),
                r["filename"],
            )
        )
    headers = ("ID", "TYPE", "STATUS", "COUNTS", "FINISHED", "UNDO UNTIL", "ROLLED BACK", "FILE")
    click.echo(table(headers, rows))
    click.echo("counts: +created ~updated =skipped !invalid")


def _show_modified(preview: dict[str, Any]) -> None:
    click.echo(f"{preview.get('modified', 0)} row(s) changed since the import:")
    for entry in (preview.get("ids") or [])[:20]:
        fields = f" ({', '.join(entry['fields'])})" if entry.get("fields") else ""
        click.echo(f"  {entry['kind']} {entry['id']}: {entry['change']}{fields}")


@imports.command("rollback")
@click.argument("import_id")
@click.option(
    "--modified",
    type=click.Choice(["keep", "revert"]),
    help="What to do with rows changed since the import, if there are any (else it asks).",
)
@click.option("--no-wait", is_flag=True, help="Queue the rollback and print its id.")
@pass_cli
def imports_rollback(cli: Cli, *, import_id: str, modified: str | None, no_wait: bool) -> None:
    """Undo the import IMPORT_ID and watch it (a live progress bar)."""
    from cli.main import _watch as watch

    batch = cli.service.batches.get(import_id)
    job = cli.service.request_rollback(import_id, account_id=batch.job.account_id)
    click.echo(f"rollback {job.id} queued")
    if no_wait:
        return
    final = watch(cli, job.id)
    if final.get("status") == "awaiting_confirmation":
        preview = final.get("preview") or {}
        _show_modified(preview)
        choice = modified or _ask(click.prompt)
        if choice is None:
            click.echo(f"waiting: ferry jobs confirm {job.id} --modified keep|revert")
            return
        cli.service.confirm(job.id, modified=choice)
        final = watch(cli, job.id)
    if final.get("status") != "succeeded":
        sys.exit(1)
    result = final.get("result") or {}
    click.echo(f"rolled back: deleted {result.get('deleted')}, restored {result.get('restored')}")


def _ask(prompt: Callable[..., Any]) -> str | None:
    """Ask keep or revert on a terminal; None when nobody can answer."""
    if not sys.stdin.isatty():
        return None
    answer = prompt(
        "keep those rows as they are now, or revert them too?",
        type=click.Choice(["keep", "revert"]),
    )
    return str(answer)
