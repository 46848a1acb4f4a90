"""`ferry`: the command line for operators and scripts (SPEC 10)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from cli.context import Cli
from cli.imports import imports
from cli.render import job_details, jobs_table, progress_line, table_preview
from cli.tokens import tokens
from shared.errors import FerryError

pass_cli = click.make_pass_decorator(Cli, ensure=True)


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns Ferry's errors into one clean line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as exc:
            _fail(f"{exc.code}: {exc.message}")


@click.group(cls=_Group)
@click.version_option(package_name="ferry")
def main() -> None:
    """Ferry moves location timelines out of and into the service, as background jobs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


# --- database and accounts -----------------------------------------------------------------


@main.group()
def db() -> None:
    """The database."""


@db.command("upgrade")
@pass_cli
def db_upgrade(cli: Cli) -> None:
    """Create the database if missing, then run the migrations."""
    from shared.store.migrate import upgrade

    created = upgrade(cli.settings.database_url)
    click.echo("database created and migrated" if created else "database migrated")


@main.group()
def accounts() -> None:
    """Accounts and their tokens."""


@accounts.command("create")
@click.argument("name")
@click.option("--ops", is_flag=True, help="Issue an ops token instead of a user token.")
@pass_cli
def accounts_create(cli: Cli, *, name: str, ops: bool) -> None:
    """Create account NAME if missing and print a new token, alone, on the last line."""
    from shared.store.accounts import get_or_create_account, issue_token

    account, created = get_or_create_account(cli.engine, name)
    role = "ops" if ops else "user"
    token = issue_token(cli.engine, account.id, role=role, name=f"cli-{role}")
    verb = "created" if created else "found"
    click.echo(f"{verb} account {account.name} ({account.id}); new {role} token:")
    click.echo(token)


@main.command()
@click.argument("account")
@click.option("--days", type=click.IntRange(min=1), required=True)
@click.option("--samples-per-day", type=click.IntRange(min=0), default=2880, show_default=True)
@click.option("--seed", "seed_value", type=int, default=0, show_default=True)
@click.option("--start", type=click.DateTime(), help="First day (UTC); default: DAYS days ago.")
@click.option("--if-empty", is_flag=True, help="Do nothing when the account has items already.")
@pass_cli
def seed(
    cli: Cli,
    *,
    account: str,
    days: int,
    samples_per_day: int,
    seed_value: int,
    start: datetime | None,
    if_empty: bool,
) -> None:
    """Write a realistic synthetic timeline into ACCOUNT (created if missing)."""
    from datetime import UTC

    from shared.store.accounts import get_or_create_account
    from shared.store.seed import seed_timeline

    found, _ = get_or_create_account(cli.engine, account)
    if if_empty and _has_items(cli, found.id):
        click.echo(f"{found.name} already has a timeline; not seeding")
        return
    began = time.monotonic()
    stats = seed_timeline(
        cli.settings.database_url,
        found.id,
        days=days,
        samples_per_day=samples_per_day,
        seed=seed_value,
        start=start.replace(tzinfo=UTC) if start else None,
    )
    click.echo(
        f"seeded {found.name}: {stats.places} places, {stats.items} items, "
        f"{stats.samples} samples in {time.monotonic() - began:.1f}s"
    )


def _has_items(cli: Cli, account_id: str) -> bool:
    from sqlalchemy import text

    with cli.engine.connect() as conn:
        query = text("SELECT EXISTS (SELECT 1 FROM timeline_items WHERE account_id = :a)")
        return bool(conn.execute(query, {"a": account_id}).scalar())


main.add_command(tokens)
main.add_command(imports)


# --- processes -----------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Simultaneous connections per worker, SSE streams included.",
)
@click.option("--dev", is_flag=True, help="Flask's own server instead of gunicorn.")
@pass_cli
def web(cli: Cli, *, host: str, port: int, workers: int, connections: int, dev: bool) -> None:
    """Run the web process (JSON API and SSE) with gunicorn's gevent workers."""
    if dev:
        from web import create_app

        create_app(cli.settings).run(host=host, port=port, threaded=True)
        return
    from cli.gunicorn import serve

    # `cli` already read the settings, so a bad one has failed before gunicorn starts.
    serve(host=host, port=port, workers=workers, connections=connections)


@main.command()
@click.option("--concurrency", type=int, default=2, show_default=True)
@pass_cli
def worker(cli: Cli, *, concurrency: int) -> None:
    """Run a Celery worker for jobs."""
    from worker.celery_app import make_celery

    app = make_celery(cli.settings)
    app.worker_main(
        [
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "-Q",
            cli.settings.jobs_queue,
            "-n",
            f"ferry-jobs-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command()
@pass_cli
def scheduler(cli: Cli) -> None:
    """Run Celery beat with the sweeper (one per deployment)."""
    from worker.celery_app import make_celery

    app = make_celery(cli.settings)
    schedule = Path(tempfile.mkdtemp(prefix="ferry-beat-")) / "schedule"
    # An embedded beat plus a one-process worker on the sweep queue: sweeps never wait
    # behind long jobs, and run even when every job worker is busy.
    app.worker_main(
        [
            "worker",
            "-B",
            "--loglevel=INFO",
            "--concurrency=1",
            "-Q",
            cli.settings.sweep_queue,
            "-s",
            str(schedule),
            "-n",
            f"ferry-sweep-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--concurrency", type=int, default=2, show_default=True)
def up(host: str, port: int, concurrency: int) -> None:
    """Run web, worker and scheduler together in the foreground (Ctrl-C stops all)."""
    me = [sys.executable, "-m", "cli"]
    commands = [
        [*me, "web", "--host", host, "--port", str(port)],
        [*me, "worker", "--concurrency", str(concurrency)],
        [*me, "scheduler"],
    ]
    children = [subprocess.Popen(c) for c in commands]

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        stop()
        for child in children:
            child.wait(timeout=30)


# --- jobs ----------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Find, watch, cancel and restart jobs."""


def _account_names(cli: Cli) -> dict[str, str]:
    from sqlalchemy import select

    from shared.store.schema import accounts as accounts_table

    with cli.engine.connect() as conn:
        return {
            r.id: r.name for r in conn.execute(select(accounts_table.c.id, accounts_table.c.name))
        }


def _filter(
    cli: Cli,
    *,
    status: tuple[str, ...],
    type_: str | None,
    account: str | None,
    error_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Any:
    from datetime import UTC

    from shared.jobs.store import JobFilter
    from shared.store.accounts import get_account

    return JobFilter(
        account_id=get_account(cli.engine, account).id if account else None,
        status=list(status) or None,
        type=type_,
        error_code=error_code,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
    )


@jobs.command("list")
@click.option("--status", multiple=True, help="Repeat for several.")
@click.option("--type", "type_")
@click.option("--account")
@click.option("--error-code")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@pass_cli
def jobs_list(
    cli: Cli,
    *,
    status: tuple[str, ...],
    type_: str | None,
    account: str | None,
    error_code: str | None,
    limit: int,
) -> None:
    """A table of jobs, newest first."""
    where = _filter(cli, status=status, type_=type_, account=account, error_code=error_code)
    found, _ = cli.service.page(where, limit=limit)
    click.echo(jobs_table(found, _account_names(cli)))


@jobs.command("show")
@click.argument("job_id")
@pass_cli
def jobs_show(cli: Cli, job_id: str) -> None:
    """One job, with its error and attempt history."""
    job = cli.service.get(job_id)
    account = _account_names(cli).get(job.account_id, job.account_id)
    click.echo(job_details(cli.service.view(job), cli.service.history(job.id), account))


def _watch(cli: Cli, job_id: str) -> dict[str, Any]:
    """Show a live progress bar until the job ends or waits; returns the last job view."""
    from shared.jobs.follow import follow

    tty = sys.stdout.isatty()
    status = "queued"
    last_line, last_print = "", 0.0
    final: dict[str, Any] = {}
    from shared.jobs.states import TERMINAL, Status

    stops = TERMINAL | {Status.AWAITING_CONFIRMATION}
    for update in follow(cli.service, cli.live, job_id, until=stops):
        if update.job is not None:
            status = update.job["status"]
            final = update.job
            line = progress_line(update.job.get("progress"), status)
        elif update.progress is not None:
            line = progress_line(update.progress, status)
        else:
            continue
        now = time.monotonic()
        if tty:
            click.echo("\r" + line.ljust(len(last_line)), nl=False)
        elif line != last_line and (now - last_print >= 2.0 or update.kind != "progress"):
            click.echo(line)
            last_print = now
        last_line = line
    if tty:
        click.echo()
    error = final.get("error")
    if error:
        click.echo(f"{error['code']}: {error['message']}", err=True)
    return final


@jobs.command("watch")
@click.argument("job_id")
@pass_cli
def jobs_watch(cli: Cli, job_id: str) -> None:
    """A live progress bar until the job ends (exit 1 unless it succeeded)."""
    final = _watch(cli, job_id)
    sys.exit(0 if final.get("status") == "succeeded" else 1)


@jobs.command("confirm")
@click.argument("job_id")
@click.option("--skip-invalid", is_flag=True, help="Import the valid records, skip the rest.")
@click.option(
    "--modified",
    type=click.Choice(["keep", "revert"]),
    help="A rollback: keep the rows changed since the import, or revert them too.",
)
@pass_cli
def jobs_confirm(cli: Cli, *, job_id: str, skip_invalid: bool, modified: str | None) -> None:
    """Let an import waiting at its report go on to apply (or a rollback go on)."""
    job = cli.service.confirm(job_id, skip_invalid=skip_invalid, modified=modified)
    click.echo(f"{job.id} {job.status}")


@jobs.command("cancel")
@click.argument("job_id")
@pass_cli
def jobs_cancel(cli: Cli, job_id: str) -> None:
    """Cancel a job."""
    job = cli.service.cancel(job_id)
    click.echo(f"{job.id} {job.status}")


@jobs.command("retry")
@click.argument("job_id", required=False)
@click.option("--failed", "all_failed", is_flag=True, help="Every failed job matching the filters.")
@click.option("--type", "type_")
@click.option("--account")
@click.option("--error-code")
@click.option("--since", type=click.DateTime(), help="Created at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Created before (UTC).")
@pass_cli
def jobs_retry(
    cli: Cli,
    *,
    job_id: str | None,
    all_failed: bool,
    type_: str | None,
    account: str | None,
    error_code: str | None,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Restart one failed or cancelled job, or (--failed) all failed jobs that match."""
    if job_id and all_failed:
        _fail("give a job id or --failed, not both", 2)
    if job_id:
        job = cli.service.retry(job_id, by="ops:cli")
        click.echo(f"{job.id} queued (attempt {job.attempt})")
        return
    if not all_failed:
        _fail("give a job id, or --failed with optional filters", 2)
    where = _filter(
        cli,
        status=("failed",),
        type_=type_,
        account=account,
        error_code=error_code,
        since=since,
        until=until,
    )
    restarted = cli.service.retry_matching(where, by="ops:cli")
    for job in restarted:
        click.echo(f"{job.id} queued (attempt {job.attempt})")
    click.echo(f"restarted {len(restarted)} job(s)")


# --- exports and imports -------------------------------------------------------------------


@main.command()
@click.argument("account")
@click.option("--out", type=click.Path(path_type=Path), help="Copy the file here when done.")
@click.option("--from", "start", help="Range start, ISO 8601.")
@click.option("--to", "end", help="Range end (exclusive), ISO 8601.")
@click.option("--incremental", is_flag=True, help="Archive: only what changed since the last.")
@click.option(
    "--compress",
    type=click.Choice(["samples", "all", "none"]),
    help="Archive only: which folders are gzipped (default samples). 'all' is for Ferry and"
    " other tools only: the Arc apps read places and items only as plain .json, so they would"
    " import no places and no items.",
)
@click.option(
    "--table", type=click.Choice(["samples", "items", "places"]), help="Export one table."
)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["csv", "tsv", "json", "jsonl", "xlsx"]),
    help="The table's file format (with --table).",
)
@click.option("--columns", help="Table: comma-separated columns, in this order (default all).")
@click.option("--timezone", help="Table: the zone dates are written in (default UTC).")
@click.option("--bom", is_flag=True, help="Table (CSV/TSV): start with a BOM, for Excel.")
@click.option("--no-wait", is_flag=True, help="Queue the export and print its id.")
@pass_cli
def export(
    cli: Cli,
    *,
    account: str,
    out: Path | None,
    start: str | None,
    end: str | None,
    incremental: bool,
    compress: str | None,
    table: str | None,
    format_: str | None,
    columns: str | None,
    timezone: str | None,
    bom: bool,
    no_wait: bool,
) -> None:
    """Export ACCOUNT's timeline as an archive, or one table with --table; watch it and
    optionally save the file."""
    from shared.store.accounts import get_account

    found = get_account(cli.engine, account)
    if table is None:
        if format_ or columns or timezone or bom:
            _fail("--format, --columns, --timezone and --bom go with --table", 2)
        body: dict[str, Any] = {"type": "archive", "compress": compress or "samples"}
        if incremental:
            body["incremental"] = True
    else:
        if incremental or compress:
            _fail("--incremental and --compress are for archives, not --table", 2)
        if format_ is None:
            _fail("--table needs --format (csv, tsv, json, jsonl or xlsx)", 2)
        body = {"type": "table", "table": table, "format": format_, "delivery": "background"}
        if columns is not None:
            body["columns"] = [name.strip() for name in columns.split(",") if name.strip()]
        if timezone:
            body["timezone"] = timezone
        if bom:
            body["bom"] = True
    if start:
        body["from"] = start
    if end:
        body["to"] = end
    job, _ = cli.service.submit_export(found.id, body)
    click.echo(f"export {job.id} queued")
    if no_wait:
        return
    final = _watch(cli, job.id)
    if final.get("status") != "succeeded":
        sys.exit(1)
    download = cli.service.download(job.id)
    if out is not None:
        target = out / download.name if out.is_dir() else out
        shutil.copyfile(download.path, target)
        click.echo(f"saved {target} ({download.size:,} bytes)")
    else:
        click.echo(f"ready: {download.path} ({download.size:,} bytes)")


@main.command("import")
@click.argument("account")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--preview", is_flag=True, help="Stop at the validation report (confirm later).")
@click.option(
    "--on-conflict", type=click.Choice(["skip", "newer"]), default="skip", show_default=True
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid records, skip the rest.")
@click.option(
    "--table",
    type=click.Choice(["samples", "items", "places"]),
    help="PATH is a table file (CSV, TSV, JSON, JSON Lines or XLSX) of this table.",
)
@click.option(
    "--mapping",
    help="Table: a JSON object, file column -> Ferry column or null, e.g."
    ' \'{"When": "date", "Notes": null}\'.',
)
@click.option(
    "--mode",
    type=click.Choice(["insert", "upsert"]),
    help="Table: insert (rows must be new) or upsert by id (default).",
)
@click.option("--timezone", help="Table: the zone of dates without an offset (default UTC).")
@click.option("--sheet", help="Table, XLSX: the sheet to read (default the first).")
@click.option("--no-wait", is_flag=True, help="Queue the import and print its id.")
@pass_cli
def import_(
    cli: Cli,
    *,
    account: str,
    path: Path,
    preview: bool,
    on_conflict: str,
    skip_invalid: bool,
    table: str | None,
    mapping: str | None,
    mode: str | None,
    timezone: str | None,
    sheet: str | None,
    no_wait: bool,
) -> None:
    """Import an archive, or with --table a table file, into ACCOUNT and watch it.

    PATH is a zip, a tar or tar.gz, or an unpacked archive folder as the Arc apps write it
    (the `export-…` folder, or an iCloud backup folder, holding metadata.json); with
    --table, a CSV, TSV, JSON, JSON Lines or XLSX file.
    """
    from shared.store.accounts import get_account

    found = get_account(cli.engine, account)
    path = path.resolve()
    if table is not None:
        if on_conflict != "skip":
            _fail("--on-conflict is for archives; a table import takes --mode", 2)
        _import_table(
            cli,
            found.id,
            path,
            fields={
                "table": table,
                "mapping": mapping,
                "mode": mode or "upsert",
                "timezone": timezone,
                "sheet": sheet,
                "confirm": not preview,
                "skip_invalid": skip_invalid,
            },
            no_wait=no_wait,
        )
        return
    if mapping or mode or timezone or sheet:
        _fail("--mapping, --mode, --timezone and --sheet go with --table", 2)
    _import_archive(
        cli,
        found.id,
        path,
        preview=preview,
        on_conflict=on_conflict,
        skip_invalid=skip_invalid,
        no_wait=no_wait,
    )


def _receive(cli: Cli, path: Path) -> Path:
    """Copy a file into storage's incoming folder (the server takes one upload)."""
    with cli.storage.incoming_file() as received, path.open("rb") as source:
        shutil.copyfileobj(source, received, 1024 * 1024)
    return Path(received.name)


def _import_table(
    cli: Cli, account_id: str, path: Path, *, fields: dict[str, Any], no_wait: bool
) -> None:
    from shared.tables.params import parse_table_import

    if path.is_dir():
        _fail(f"{path} is a folder; --table takes one CSV, TSV, JSON, JSON Lines or XLSX file", 2)
    params = parse_table_import(**fields)
    job = cli.service.submit_import(
        account_id, received=_receive(cli, path), filename=path.name, params=params
    )
    click.echo(f"import {job.id} queued")
    if no_wait:
        return
    final = _watch(cli, job.id)
    shown = final.get("preview") or {}
    if shown:
        click.echo(table_preview(shown))
    status = final.get("status")
    if status == "awaiting_confirmation":
        click.echo(
            f"waiting for confirmation: ferry jobs confirm {job.id}"
            + (" --skip-invalid" if shown.get("error_total") else "")
        )
        return
    if status != "succeeded":
        sys.exit(1)
    click.echo(f"imported: {(final.get('result') or {}).get('counts')}")


def _import_archive(
    cli: Cli,
    account_id: str,
    path: Path,
    *,
    preview: bool,
    on_conflict: str,
    skip_invalid: bool,
    no_wait: bool,
) -> None:
    from shared.archive.files import write_zip
    from shared.params import ImportArchiveParams

    if path.is_dir() and not (path / "metadata.json").is_file():
        _fail(
            f"{path} is a folder without metadata.json; give the archive folder itself"
            " (the export-… folder that holds metadata.json, places, items and samples)"
        )
    with cli.storage.incoming_file() as received:
        if path.is_dir():
            # The server takes one upload: the folder goes as a zip, packed the way an
            # export is (gzipped files stored as they are).
            received.close()
            write_zip(path, path.name, Path(received.name))
        else:
            with path.open("rb") as source:
                shutil.copyfileobj(source, received, 1024 * 1024)
    params = ImportArchiveParams(
        confirm=not preview, on_conflict=on_conflict, skip_invalid=skip_invalid
    )
    filename = f"{path.name}.zip" if path.is_dir() else path.name
    job = cli.service.submit_import(
        account_id, received=Path(received.name), filename=filename, params=params
    )
    click.echo(f"import {job.id} queued")
    if no_wait:
        return
    final = _watch(cli, job.id)
    summary = final.get("preview") or {}
    if summary:
        click.echo(
            f"report: {summary.get('counts')}; {summary.get('error_count', 0)} error(s),"
            f" {summary.get('warning_count', 0)} warning(s)"
        )
        for problem in (summary.get("errors") or [])[:10]:
            click.echo(
                f"  error: {problem['file']}[{problem['index']}] {problem['field']}:"
                f" {problem['reason']}"
            )
    status = final.get("status")
    if status == "awaiting_confirmation":
        click.echo(f"waiting for confirmation: ferry jobs confirm {job.id}")
        return
    if status != "succeeded":
        sys.exit(1)
    click.echo(f"imported: {(final.get('result') or {}).get('written')}")
