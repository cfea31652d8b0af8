"""`digest subscribers …`: CSV import and export, lists-as-files sync (`digest.audience.listfiles`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from digest.audience.confirmations import queue_confirmations, send_all_due
from digest.audience.listfiles import sync_folder
from digest.audience.subscribers import ImportReport, export_csv, import_csv
from digest.cli.common import emit_json, err_console, json_option, out_console, settings_from
from digest.db import audience as queries
from digest.errors import DigestError
from digest.pipeline import connect


@click.group()
def subscribers() -> None:
    """Import, export and sync subscribers."""


@subscribers.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--list", "list_slug", required=True, help="Slug of the list to subscribe them to.")
@click.option("--confirmed", is_flag=True,
              help="You hold these people's consent: subscribe them at once (otherwise confirmation mails go out).")
@json_option
@click.pass_context
def import_(ctx: click.Context, csv_file: Path, list_slug: str, confirmed: bool, as_json: bool) -> None:
    """Import FILE.csv (header: email[,name,timezone,send_hour,topics,locale]) into a list.

    Bad rows are reported with their line number; good rows are imported.
    """
    settings = settings_from(ctx)
    settings.get_list(list_slug)
    database = connect(settings)
    report = _import_file(database, settings, csv_file, list_slug, confirmed=confirmed, source=f"import:{csv_file.name}")
    confirmations = send_all_due(database, settings)  # queued with the import; a running mailer may beat us to it
    _show(report, csv_file, as_json, confirmations.sent, confirmations.errors)
    if report.added + report.updated + report.unchanged == 0 and report.errors:
        sys.exit(1)


def _import_file(database, settings, csv_file: Path, list_slug: str, *, confirmed: bool, source: str) -> ImportReport:  # type: ignore[no-untyped-def]
    try:
        text = csv_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DigestError(f"{csv_file}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        report = import_csv(session, lists[list_slug], text.splitlines(keepends=True), confirmed=confirmed, source=source)
        queue_confirmations(session, report.pending)
        return report


def _show(report: ImportReport, csv_file: Path, as_json: bool, confirmations: int, errors: list[str]) -> None:
    if as_json:
        emit_json({"file": str(csv_file), **report.as_dict(), "confirmations_sent": confirmations,
                   "confirmation_errors": errors})
        return
    out_console.print(f"{csv_file.name}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
                      f"{len(report.errors)} rejected" + (f", {confirmations} confirmation mail(s) sent" if confirmations else ""))
    if report.errors:
        table = Table("line", "problem", title="Rejected rows", title_justify="left")
        for line, problem in report.errors:
            table.add_row(str(line), problem)
        err_console.print(table)
    for error in errors:
        err_console.print(f"[yellow]confirmation not sent:[/] {error}")


@subscribers.command("export")
@click.option("--list", "list_slug", required=True, help="Slug of the list to export.")
@click.pass_context
def export(ctx: click.Context, list_slug: str) -> None:
    """Write a list's subscribers as CSV on stdout."""
    settings = settings_from(ctx)
    settings.get_list(list_slug)
    database = connect(settings)
    with database.session() as session:
        lists = queries.sync_lists(session, settings.lists)
        click.echo(export_csv(session, lists[list_slug]), nl=False)


@subscribers.command("sync")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
@click.pass_context
def sync(ctx: click.Context, folder: Path, as_json: bool) -> None:
    """Lists as files: FOLDER/<slug>.toml defines a list, FOLDER/<slug>.csv holds its subscribers; idempotent.

    The files are the admin's own records, so their rows count as confirmed. Bad rows and files are
    reported; the good ones import.
    """
    settings = settings_from(ctx)
    report = sync_folder(connect(settings), settings, folder)
    if as_json:
        emit_json(report.as_dict())
    else:
        for slug, result in report.imported.items():
            _show(result, folder / f"{slug}.csv", False, 0, [])
        if report.defined:
            out_console.print(f"lists defined by files: {', '.join(report.defined)}")
        for name, problem in report.problems:
            err_console.print(f"[yellow]{name}:[/] {problem}")
        if report.ignored:
            err_console.print(f"[yellow]ignored (no such list):[/] {', '.join(report.ignored)}")
    if not report.imported and not report.defined:
        raise DigestError(f"no <list>.csv or <list>.toml files in {folder} for the configured lists "
                          f"({', '.join(c.slug for c in settings.lists) or 'none'})")
