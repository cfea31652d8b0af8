"""Sending verbs: send, status, worker, edition pause|resume|cancel, bounces receive|process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from digest.cli.common import emit_json, err_console, interactive, json_option, out_console, settings_from
from digest.db import deliveries as ledger
from digest.db import ledger_stats
from digest.db import editions as edition_queries
from digest.db.audience import list_by_slug
from digest.db.models import Edition, utcnow
from digest.dispatch.report import DispatchReport
from digest.dispatch.status import edition_status, format_eta
from digest.dispatch.worker import Dispatcher
from digest.errors import DigestError
from digest.pipeline import connect


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f}/s" if task.speed else "–/s", style="progress.data.speed")


class _SendProgress:
    """Bar, count, rate and ETA on an interactive stderr; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self._progress = total, None

    def __enter__(self) -> Callable[[DispatchReport], None]:
        if not interactive():
            return lambda _r: None
        progress = Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=True)
        progress.start()
        task = progress.add_task("sending", total=self.total or None)
        self._progress = progress
        return lambda report: progress.update(task, completed=report.done)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


@click.command()
@click.argument("list_slug", metavar="[LIST]", required=False)
@click.option("--retry-failed", is_flag=True, help="Queue failed deliveries again (only those) before sending.")
@json_option
@click.pass_context
def send(ctx: click.Context, list_slug: str | None, retry_failed: bool, as_json: bool) -> None:
    """Send what is queued (for LIST, or for every list) in this process, then exit."""
    settings = settings_from(ctx)
    database = connect(settings)
    edition_ids = None
    with database.session() as session:
        if list_slug:
            settings.get_list(list_slug)
            row = list_by_slug(session, list_slug)
            edition_ids = [e.id for e in edition_queries.editions_of_list(session, row.id, limit=1000)] if row else []
        requeued = ledger.retry_failed(session, edition_ids, utcnow()) if retry_failed else 0
        total = ledger_stats.count_open(session, edition_ids)
    with _SendProgress(total) as progress:
        report = Dispatcher(database, settings).run(edition_ids=edition_ids, progress=progress)
    if as_json:
        emit_json({**report.as_dict(), "requeued": requeued})
        return
    line = (f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, suppressed {report.suppressed}"
            f" in {report.elapsed_seconds:.1f}s ({report.rate:.0f}/s)")
    extras = {"skipped": report.skipped, "recovered": report.recovered, "requeued": requeued}
    out_console.print(line + "".join(f"; {k} {v}" for k, v in extras.items() if v))


@click.command()
@click.argument("edition_id", metavar="[EDITION]", type=int, required=False)
@json_option
@click.pass_context
def status(ctx: click.Context, edition_id: int | None, as_json: bool) -> None:
    """Deliveries by state, send rate, ETA, top errors and skipped rows (for EDITION, or each list's newest)."""
    settings = settings_from(ctx)
    database = connect(settings)
    now = utcnow()
    with database.session() as session:
        if edition_id is not None:
            edition = session.get(Edition, edition_id)
            if edition is None:
                raise DigestError(f"no edition {edition_id}; `digest status` lists the newest ones")
            editions = [edition]
        else:
            editions = edition_queries.latest_editions(session)
        data = [edition_status(session, e, now) for e in editions]
    if as_json:
        emit_json({"editions": data})
        return
    if not data:
        out_console.print("no editions yet: run `digest build LIST` or `digest run LIST`")
        return
    table = Table(title="Editions", title_justify="left")
    for column in ("id", "list", "period", "status", "deliveries", "rate/s", "ETA", "top error"):
        table.add_column(column)
    for d in data:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(d["deliveries"].items())) or "none"  # type: ignore[attr-defined]
        top = d["top_errors"][0]["reply"] if d["top_errors"] else ""  # type: ignore[index]
        table.add_row(str(d["id"]), escape(str(d["list"])), str(d["period"]), str(d["status"]), counts,
                      f"{d['rate_per_second']:.1f}", format_eta(d["eta_seconds"]), escape(str(top)))  # type: ignore[arg-type]
    out_console.print(table)
    for d in data:
        for row in d["skipped"]:  # type: ignore[attr-defined]
            out_console.print(f"  edition {d['id']} skipped {escape(row['email'])}: {escape(row['reason'])}")


@click.command()
@click.option("--poll", default=5.0, show_default=True, help="Seconds to wait when nothing is due.")
@click.option("--once", is_flag=True, help="Send what is due, then exit.")
@click.pass_context
def worker(ctx: click.Context, poll: float, once: bool) -> None:
    """A send worker: claims due deliveries and sends them until stopped (SIGTERM finishes the messages in flight)."""
    settings = settings_from(ctx)
    database = connect(settings)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    dispatcher = Dispatcher(database, settings)
    err_console.print(f"worker {dispatcher.worker_id} started ({settings.smtp.max_connections} connections)")
    while not stopping.is_set():
        report = dispatcher.run(should_stop=stopping.is_set)
        if report.done:
            err_console.print(f"sent {report.sent}, deferred {report.deferred}, failed {report.failed}, "
                              f"suppressed {report.suppressed}, skipped {report.skipped}")
        if once:
            break
        stopping.wait(poll)


@click.group()
def edition() -> None:
    """Pause, resume or cancel the sending of an edition."""


def _edition_action(action: str) -> click.Command:
    helps = {"pause": "Stop claiming EDITION's deliveries; claimed ones go back to the queue (nothing is lost).",
             "resume": "Continue a paused EDITION where it stopped (no repeats).",
             "cancel": "Stop EDITION for good: every delivery not yet sent becomes cancelled."}

    @click.command(action, help=helps[action])
    @click.argument("edition_id", metavar="EDITION", type=int)
    @json_option
    @click.pass_context
    def command(ctx: click.Context, edition_id: int, as_json: bool) -> None:
        database = connect(settings_from(ctx))
        try:
            with database.session() as session:
                result = ledger.set_edition_state(session, edition_id, action)
        except (LookupError, ValueError) as exc:
            raise DigestError(str(exc).strip("'\"")) from None
        if as_json:
            emit_json(result)
        else:
            out_console.print(f"edition {edition_id}: {result['status']} ({result['rows']} deliveries moved)")

    return command


for _action in ("pause", "resume", "cancel"):
    edition.add_command(_edition_action(_action))


@click.group()
def bounces() -> None:
    """Bounce and complaint intake for the [bounces] domain."""


@bounces.command("receive")
@click.option("--host", default=None, help="Address to listen on (default: bounces.listen_host).")
@click.option("--port", default=None, type=int, help="Port (default: bounces.listen_port).")
@click.option("--lmtp", is_flag=True, default=None, help="Speak LMTP (default: bounces.lmtp).")
@click.pass_context
def bounces_receive(ctx: click.Context, host: str | None, port: int | None, lmtp: bool | None) -> None:
    """Run the SMTP/LMTP intake: DSNs, ARF complaints and mailto: unsubscribes are applied as they arrive."""
    from digest.bounces.intake import start_intake

    settings = settings_from(ctx)
    controller, _ = start_intake(connect(settings), settings, host=host, port=port, lmtp=lmtp)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    err_console.print(f"bounce intake listening on {controller.hostname}:{controller.port} (Ctrl-C to stop)")
    try:
        stopping.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


@bounces.command("process")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@json_option
@click.pass_context
def bounces_process(ctx: click.Context, path: Path, as_json: bool) -> None:
    """Apply every message of a maildir, an mbox, a folder of .eml files or one message file."""
    from digest.bounces.intake import process_path

    settings = settings_from(ctx)
    summary = process_path(connect(settings), settings, path)
    if as_json:
        emit_json(summary.as_dict())
        return
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_kind.items())) or "none"
    actions = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_action.items())) or "none"
    out_console.print(f"{summary.messages} message(s): {kinds}; {actions}")
