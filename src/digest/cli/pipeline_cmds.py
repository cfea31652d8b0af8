"""Verbs that run pipeline stages: gather, sources, group, run, build (send and status: dispatch_cmds)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from digest.cli.common import emit_json, err_console, interactive, json_option, out_console, parse_instant, settings_from
from digest.db import sources as source_queries
from digest.errors import DigestError
from digest.gather import SourceOutcome, gather_sources
from digest.group.offline import group_file
from digest.pipeline import Hooks, RunReport, connect, run as run_pipeline

now_option = click.option("--now", "now_text", metavar="ISO8601", help="Act as of this instant (testing, catch-up).")
strict_option = click.option("--strict", is_flag=True, help="Exit non-zero when any source fails.")


def _sources_table(outcomes: list[SourceOutcome]) -> Table:
    table = Table(title="Sources", title_justify="left")
    for column in ("source", "status", "items", "new", "dupes", "ms", "error"):
        table.add_column(column)
    for o in outcomes:
        colour = "green" if o.ok else "red"
        note = o.error or (f"moved to {o.moved_to}" if o.moved_to else "") or (f"until {o.retry_at}" if o.retry_at else "")
        table.add_row(escape(o.source), f"[{colour}]{o.status}[/]", str(o.seen_items), str(o.new_items),
                      str(o.duplicates), str(o.elapsed_ms), escape(note))
    return table


@click.command()
@json_option
@strict_option
@click.pass_context
def gather(ctx: click.Context, as_json: bool, strict: bool) -> None:
    """Fetch every enabled source once and report each source's outcome."""
    settings = settings_from(ctx)
    database = connect(settings)
    with _progress(len(settings.sources), "gathering") as advance:
        outcomes = gather_sources(database, settings, progress=lambda _o: advance())
    if as_json:
        emit_json({"sources": [asdict(o) for o in outcomes]})
    else:
        out_console.print(_sources_table(outcomes))
    _fail_on_sources(outcomes, strict)


@click.command()
@json_option
@click.pass_context
def sources(ctx: click.Context, as_json: bool) -> None:
    """Show each source's health: last success, last error, consecutive failures, items seen."""
    settings = settings_from(ctx)
    database = connect(settings)
    with database.session() as session:
        source_queries.sync_sources(session, settings.sources)
        rows = [source_queries.health(s) for s in source_queries.all_sources(session)]
    if as_json:
        emit_json({"sources": rows})
        return
    table = Table(title="Sources", title_justify="left")
    for column in ("name", "state", "last success", "failures", "items", "last error"):
        table.add_column(column)
    for r in rows:
        success = r["last_success_at"].strftime("%Y-%m-%d %H:%M") if r["last_success_at"] else "never"
        colour = {"ok": "green", "failing": "red", "retired": "red", "waiting": "yellow"}.get(r["state"], "dim")
        table.add_row(escape(r["name"]), f"[{colour}]{r['state']}[/]", success, str(r["consecutive_failures"]),
                      str(r["items_seen"]), escape(r["last_error"] or ""))
    out_console.print(table)


@click.command()
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSONL file of {id,title,text,published?,url?} lines.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write {id,story,related} lines.")
def group(input_path: Path, output_path: Path) -> None:
    """Group a file of articles into stories offline (the production grouping code)."""
    count = group_file(input_path, output_path)
    err_console.print(f"grouped {count} documents into {output_path}")


def _run_or_build(ctx: click.Context, list_slug: str, as_json: bool, strict: bool, now_text: str | None,
                  send: bool) -> None:
    settings = settings_from(ctx)
    now = parse_instant(now_text)
    hooks = Hooks(stage=(lambda name: err_console.print(f"[dim]· {name}[/]")) if interactive() and not as_json else None)
    report = run_pipeline(settings, list_slug, send=send, now=now, hooks=hooks)
    if as_json:
        emit_json(report.as_dict())
    else:
        _print_run(report)
    _fail_on_sources(report.sources, strict)
    if report.dispatch and report.dispatch.failed and strict:
        raise DigestError(f"{report.dispatch.failed} deliveries failed")


@click.command()
@click.argument("list_slug", metavar="LIST")
@json_option
@strict_option
@now_option
@click.pass_context
def run(ctx: click.Context, list_slug: str, as_json: bool, strict: bool, now_text: str | None) -> None:
    """Gather, group, build the current edition of LIST, enqueue and send it.

    Running it again in the same period sends nothing new.
    """
    _run_or_build(ctx, list_slug, as_json, strict, now_text, send=True)


@click.command()
@click.argument("list_slug", metavar="LIST")
@json_option
@strict_option
@now_option
@click.pass_context
def build(ctx: click.Context, list_slug: str, as_json: bool, strict: bool, now_text: str | None) -> None:
    """Gather, group, build and enqueue the current edition of LIST, without sending."""
    _run_or_build(ctx, list_slug, as_json, strict, now_text, send=False)


def _print_run(report: RunReport) -> None:
    out_console.print(_sources_table(report.sources))
    if report.group:
        out_console.print(f"grouped {report.group.articles} articles into {report.group.stories} stories "
                          f"({report.group.new_stories} new)")
    if report.build:
        b = report.build
        line = f"edition {b.edition_id} ({b.list} {b.period}): {b.status}"
        if b.skip_reason:
            line += f" — {b.skip_reason}"
        else:
            line += f", {b.stories} stories, {b.variants} variant(s), {b.enqueued} newly queued"
        out_console.print(line)
    if report.dispatch:
        d = report.dispatch
        out_console.print(f"sent {d.sent}, deferred {d.deferred}, failed {d.failed}")


def _fail_on_sources(outcomes: list[SourceOutcome], strict: bool) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        err_console.print(f"[yellow]{len(failed)} source(s) failed:[/] " + "; ".join(f"{o.source}: {o.error}" for o in failed))
        if strict:
            raise DigestError(f"{len(failed)} source(s) failed (--strict)")


class _progress:
    """A rich progress bar on interactive stderr; a no-op otherwise."""

    def __init__(self, total: int | None, label: str) -> None:
        self.total, self.label = total, label
        self._progress: Progress | None = None

    def __enter__(self):  # type: ignore[no-untyped-def]
        if not interactive():
            return lambda: None
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=err_console, transient=True)
        self._progress.start()
        task = self._progress.add_task(self.label, total=self.total)
        assert self._progress is not None
        progress = self._progress
        return lambda: progress.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
