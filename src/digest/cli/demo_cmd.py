"""`digest demo`: the whole job offline on SQLite, over a real (embedded) SMTP server."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from digest.cli.common import emit_json, err_console, json_option, out_console
from digest.demo.run import run_demo


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("digest-demo"),
              show_default=True, help="Working folder for the demo (created if missing; reused on a second run).")
@json_option
def demo(directory: Path, as_json: bool) -> None:
    """Run the real pipeline on bundled sample feeds and subscribers; mail lands in DIR/outbox/.

    Running it again sends nothing twice: each list's edition for this period already exists.
    """
    if not as_json:
        err_console.print(f"[dim]demo folder: {directory.resolve()}[/]")
    report = run_demo(directory)
    if as_json:
        emit_json({
            "directory": str(report.directory), "index": str(report.index), "elapsed_seconds": round(report.elapsed_seconds, 2),
            "received": len(report.received), "lists": {slug: r.as_dict() for slug, r in report.runs.items()},
        })
        return
    table = Table(title="digest demo", title_justify="left")
    for column in ("list", "edition", "stories", "sent", "sources ok"):
        table.add_column(column)
    for slug, r in report.runs.items():
        build = r.build
        edition = f"{build.period} ({build.status})" if build else "-"
        ok = sum(1 for s in r.sources if s.ok)
        table.add_row(slug, edition, str(build.stories if build else 0), str(r.dispatch.sent if r.dispatch else 0),
                      f"{ok}/{len(r.sources)}")
    out_console.print(table)
    for error in report.import_errors:
        err_console.print(f"[yellow]subscriber row rejected:[/] {error}")
    out_console.print(f"{len(report.received)} new message(s) received by the demo SMTP server in "
                      f"{report.elapsed_seconds:.1f}s")
    out_console.print(f"open {report.index}")
    out_console.print(f"database {report.directory / 'digest.db'} · config {report.directory / 'digest.toml'}")
