"""The demo: sample feeds and subscribers in a folder, the real pipeline, a capture SMTP server."""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from digest.audience.subscribers import import_csv
from digest.config import load_settings
from digest.db import audience as audience_queries
from digest.db.models import utcnow
from digest.demo.capture import CaptureServer, Received
from digest.demo.feeds import copy_shifted
from digest.pipeline import RunReport, connect, run
from digest.render.templates import bundled_path
from digest.workspace import write_secret


@dataclass
class DemoReport:
    directory: Path
    runs: dict[str, RunReport] = field(default_factory=dict)
    received: list[Path] = field(default_factory=list)
    index: Path | None = None
    elapsed_seconds: float = 0.0
    import_errors: list[str] = field(default_factory=list)


def prepare(directory: Path, now: dt.datetime) -> Path:
    """Create the demo folder once (config, key, feeds, subscribers); returns the config path."""
    examples = bundled_path("examples")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "digest.toml"
    if not config.exists():
        shutil.copy(examples / "digest.toml", config)
    if not (directory / "secret.key").exists():
        write_secret(directory / "secret.key")
    if not (directory / "feeds").exists():
        copy_shifted(examples / "feeds", directory / "feeds", now)
    if not (directory / "subscribers").exists():
        shutil.copytree(examples / "subscribers", directory / "subscribers")
    return config


def run_demo(directory: Path, *, now: dt.datetime | None = None) -> DemoReport:
    started = time.perf_counter()
    now = now or utcnow()
    directory = directory.resolve()
    config = prepare(directory, now)
    report = DemoReport(directory=directory)
    with CaptureServer() as server:
        settings = load_settings(config)
        settings.smtp.host, settings.smtp.port = server.host, server.port
        database = connect(settings)
        try:
            with database.session() as session:
                lists = audience_queries.sync_lists(session, settings.lists)
                for conf in settings.lists:
                    csv_file = directory / "subscribers" / f"{conf.slug}.csv"
                    if csv_file.exists():
                        lines = csv_file.read_text(encoding="utf-8").splitlines(keepends=True)
                        result = import_csv(session, lists[conf.slug], lines, confirmed=True, source="demo")
                        report.import_errors += [f"{csv_file.name}:{line}: {error}" for line, error in result.errors]
            for conf in settings.lists:
                report.runs[conf.slug] = run(settings, conf.slug, now=now, database=database)
        finally:
            database.dispose()
        messages = server.messages
    outbox = directory / "outbox"
    report.received = write_outbox(outbox, messages)
    report.index = write_index(outbox)
    report.elapsed_seconds = time.perf_counter() - started
    return report


def write_outbox(outbox: Path, messages: list[Received]) -> list[Path]:
    """Each received message as .eml (the exact bytes) plus its HTML part as .html for a browser."""
    outbox.mkdir(parents=True, exist_ok=True)
    start = len(list(outbox.glob("*.eml")))
    written = []
    for number, received in enumerate(messages, start=start + 1):
        recipient = re.sub(r"[^A-Za-z0-9.@_-]", "_", received.rcpt_tos[0] if received.rcpt_tos else "unknown")
        stem = f"{number:03d}-{recipient}"
        eml = outbox / f"{stem}.eml"
        eml.write_bytes(received.data)
        parsed = received.parse()
        part = parsed.get_body(("html",))
        if isinstance(part, EmailMessage):
            (outbox / f"{stem}.html").write_text(part.get_content(), encoding="utf-8")
        written.append(eml)
    return written


def write_index(outbox: Path) -> Path:
    from email import message_from_bytes, policy

    rows = []
    for eml in sorted(outbox.glob("*.eml")):
        msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
        view = eml.with_suffix(".html")
        rows.append(
            f"<tr><td>{html.escape(str(msg['To']))}</td><td>{html.escape(str(msg['Subject']))}</td>"
            f"<td>{html.escape(str(msg['List-Id']))}</td>"
            f"<td><a href=\"{html.escape(view.name)}\">view</a> · <a href=\"{html.escape(eml.name)}\">.eml</a></td></tr>")
    index = outbox / "index.html"
    index.write_text(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>digest demo: received mail</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem}td,th{padding:.3rem .8rem;text-align:left;"
        "border-bottom:1px solid #ddd}</style></head><body><h1>Received by the demo SMTP server</h1>"
        f"<p>{len(rows)} message(s).</p><table><tr><th>To</th><th>Subject</th><th>List</th><th></th></tr>"
        + "".join(rows) + "</table></body></html>\n", encoding="utf-8")
    return index
