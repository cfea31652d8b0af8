"""Operating verbs: init, db upgrade, preview, scheduler, serve, mailer (worker: dispatch_cmds)."""

from __future__ import annotations

import logging
import signal
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
from rich.table import Table

from digest.build.preview import Preview, build_preview, preview_routes
from digest.cli.common import emit_json, err_console, json_option, out_console, parse_instant, settings_from
from digest.db.models import utcnow
from digest.db.session import Database, upgrade
from digest.pipeline import connect
from digest.schedule.leader import Leadership
from digest.schedule.tick import tick
from digest.schedule.upcoming import upcoming
from digest.workspace import init_workspace

log = logging.getLogger(__name__)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing digest.toml.")
def init(directory: Path, force: bool) -> None:
    """Scaffold a working folder: digest.toml, a secret key, subscribers/ and template overrides."""
    written = init_workspace(directory, force=force)
    for path in written:
        out_console.print(f"wrote {path}")
    out_console.print(f"next: cd {directory} && digest run daily")


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations (Alembic)."""
    settings = settings_from(ctx, require_file=False)
    database = Database(settings.database.url)
    before, after = upgrade(database)
    out_console.print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))


@click.command()
@click.argument("list_slug", metavar="LIST")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the email's HTML here instead of serving the preview.")
@click.option("--port", default=8025, show_default=True, help="Port of the preview server (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option("--locale", default="en", show_default=True, help="Language of the previewed variant.")
@click.pass_context
def preview(ctx: click.Context, list_slug: str, output: Path | None, port: int, no_browser: bool, locale: str) -> None:
    """Serve the upcoming edition of LIST: HTML at 600 and 375 px, text part, headers, size and lint.

    Nothing is stored or sent.
    """
    settings = settings_from(ctx)
    result = build_preview(connect(settings), settings, list_slug, now=utcnow(), locale=locale)
    if output:
        output.write_text(result.html, encoding="utf-8")
        out_console.print(f"wrote {output} ({len(result.html.encode()) / 1024:.1f} KB, {len(result.problems)} lint problem(s))")
        return
    server = preview_server(result, port)
    url = f"http://127.0.0.1:{server.server_port}/"
    err_console.print(f"previewing {list_slug} at {url} ({len(result.problems)} lint problem(s); Ctrl-C to stop)")
    if not no_browser:
        threading.Timer(0.3, lambda: webbrowser.open(url)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def preview_server(result: Preview, port: int = 0) -> ThreadingHTTPServer:
    routes = preview_routes(result)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            found = routes.get(self.path.split("?", 1)[0])
            if found is None:
                self.send_error(404)
                return
            content_type, body = found
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


@click.command()
@click.option("--tick", "once", is_flag=True, help="Run one tick and exit.")
@click.option("--now", "now_text", metavar="ISO8601", help="With --tick: act as of this instant.")
@click.option("--interval", default=None, type=int, help="Seconds between ticks (default: schedule.tick_seconds).")
@json_option
@click.pass_context
def scheduler(ctx: click.Context, once: bool, now_text: str | None, interval: int | None, as_json: bool) -> None:
    """The clock: build and enqueue due editions (and send them, on SQLite).

    On PostgreSQL only one scheduler acts at a time (an advisory lock); others wait as standbys and take
    over when the leader dies. SIGTERM finishes the message in flight and gives back unsent claims.
    """
    settings = settings_from(ctx)
    database = connect(settings)
    if once or now_text:
        report = tick(database, settings, parse_instant(now_text) or utcnow())
        if as_json:
            emit_json(report.as_dict())
        else:
            out_console.print(f"tick at {report.now}: built {len(report.built)}, skipped {len(report.skipped)}, "
                              f"sent {report.sent}")
            for s in report.skipped:
                out_console.print(f"  skipped {s['list']} {s['period']}: {s['reason']}")
        return
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    seconds = interval or settings.schedule.tick_seconds
    stopping = threading.Event()
    leadership = Leadership(database)

    def one_tick() -> None:
        if stopping.is_set():
            return
        if not leadership.acquire():
            log.info("standby: another scheduler leads")
            return
        report = tick(database, settings, utcnow(), should_stop=stopping.is_set)
        if report.built or report.skipped or report.sent:
            err_console.print(f"{report.now}: built {len(report.built)}, skipped {len(report.skipped)}, sent {report.sent}")

    # An in-memory job store on purpose: our own tables hold the state (unique keys), the scheduler is a clock.
    # A tick missed while the process was busy is coalesced into one; catch-up is decided by tick() itself.
    clock = BlockingScheduler(timezone="UTC")
    clock.add_job(one_tick, IntervalTrigger(seconds=seconds), id="tick", coalesce=True, max_instances=1,
                  misfire_grace_time=None, next_run_time=utcnow())

    def stop(*_: object) -> None:
        stopping.set()
        clock.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    err_console.print(f"scheduler running, a tick every {seconds}s (Ctrl-C or SIGTERM to stop)")
    try:
        clock.start()
    except (KeyboardInterrupt, SystemExit):
        stopping.set()
    finally:
        leadership.release()


@click.command()
@click.option("--now", "now_text", metavar="ISO8601", help="As of this instant (default: now).")
@json_option
@click.pass_context
def schedule(ctx: click.Context, now_text: str | None, as_json: bool) -> None:
    """Show each list's current period, next fire times and the local-hour delivery buckets."""
    settings = settings_from(ctx)
    now = parse_instant(now_text) or utcnow()
    with connect(settings).session() as session:
        data = upcoming(session, settings, now)
    if as_json:
        emit_json({"now": now.isoformat(), "lists": data})
        return
    for item in data:
        out_console.print(f"[bold]{item['list']}[/] ({item['schedule']} {item['timezone']}): current period "
                          f"{item['current_period']}, next {', '.join(item['next_fire_times'])}")
        table = Table("time zone", "send hour", "subscribers", "next delivery (UTC)")
        for b in item["buckets"]:
            table.add_row(b["timezone"], "on build" if b["send_hour"] is None else f"{b['send_hour']:02d}:00",
                          str(b["subscribers"]), b["next_delivery"])
        out_console.print(table)


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host).")
@click.option("--port", default=None, type=int, help="Port (default: web.port).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Web server processes sharing the port (rate limits are counted in the database, so they hold across them).")
@click.option("--mailer/--no-mailer", default=True, show_default=True,
              help="Send queued confirmation mails from a child process; use --no-mailer when `digest mailer` runs elsewhere.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int, mailer: bool) -> None:
    """Serve the public pages, the admin UI (/admin), the REST API (/api) and /healthz."""
    import multiprocessing
    import os

    import uvicorn

    from digest.audience.mailer import run_mailer_process
    from digest.runtime import settle_heap
    from digest.web.app import create_app

    settings = settings_from(ctx)
    app = create_app(settings)  # config, database and migrations are checked here, before any process starts
    child = None
    if mailer:
        config_path = str(settings.config_path) if settings.config_path else None
        child = multiprocessing.get_context("spawn").Process(target=run_mailer_process, args=(config_path, 0.5),
                                                             name="digest-mailer", daemon=True)
        child.start()
    try:
        if workers == 1:
            settle_heap()
            uvicorn.run(app, host=host or settings.web.host, port=port or settings.web.port, log_level="info")
        else:  # each worker process builds its own app from the same config file and environment
            if settings.config_path:
                os.environ["DIGEST_CONFIG"] = str(settings.config_path)
            uvicorn.run("digest.web.app:app_from_environment", factory=True, workers=workers,
                        host=host or settings.web.host, port=port or settings.web.port, log_level="info")
    finally:
        if child is not None:
            child.terminate()
            child.join(10)


@click.command()
@click.option("--once", is_flag=True, help="Send what is due now, report, and exit.")
@click.option("--poll", default=0.5, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds between looks at the outbox when it is empty.")
@json_option
@click.pass_context
def mailer(ctx: click.Context, once: bool, poll: float, as_json: bool) -> None:
    """Send queued confirmation mails (the outbox); `digest serve` runs this itself unless --no-mailer."""
    from digest.audience.confirmations import send_all_due
    from digest.audience.mailer import Mailer
    from digest.db import outbox

    settings = settings_from(ctx)
    database = connect(settings)
    if not once:
        err_console.print("mailer running (Ctrl-C to stop)")
        worker = Mailer(database, settings, poll=poll,
                        on_round=lambda r: r.sent and log.info("sent %d confirmation mail(s)", r.sent))
        signal.signal(signal.SIGTERM, lambda *_: worker.stop())
        try:
            worker.run_forever()
        except KeyboardInterrupt:
            worker.stop()
        return
    report = send_all_due(database, settings)
    with database.session() as session:
        left = outbox.counts(session)
    data = {"sent": report.sent, "retrying": report.retrying, "given_up": report.given_up, "dropped": report.dropped,
            "waiting": left.waiting, "failed": left.failed, "errors": report.errors}
    if as_json:
        emit_json(data)
    else:
        out_console.print(f"{report.sent} sent, {report.retrying} to retry, {report.given_up} given up; "
                          f"outbox: {left.waiting} waiting, {left.failed} failed")
        for error in report.errors:
            err_console.print(f"[yellow]not sent:[/] {error}")
    if report.errors and report.sent == 0:
        raise SystemExit(1)
