"""End-to-end pipeline timings on SQLite with a real loopback SMTP server.

    python benchmarks/pipeline.py [--subscribers 2000]

Prints per-stage wall times for `digest run` on the demo feeds, the send rate,
and, as a baseline measured in the same process, what rendering the digest per
recipient (Jinja2 → MJML → premailer for every message) would cost instead of
compiling once per variant and filling placeholders.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from digest.audience.subscribers import import_csv
from digest.build.edition import build_due
from digest.config import load_settings
from digest.db import audience as audience_queries
from digest.db.models import EditionVariant, utcnow
from digest.demo.capture import CaptureServer
from digest.demo.run import prepare
from digest.dispatch.worker import Dispatcher
from digest.gather import gather_sources
from digest.group import group_recent
from digest.pipeline import connect
from digest.render.digest_email import ListView, StoryView, render_digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, CaptureServer() as server:
        folder = Path(tmp)
        now = utcnow()
        config = prepare(folder, now)
        settings = load_settings(config)
        settings.smtp.host, settings.smtp.port = server.host, server.port
        database = connect(settings)
        rows = ["email,name,locale\n"] + [f"reader{i}@example.com,Reader {i},{'ko' if i % 5 == 0 else 'en'}\n"
                                          for i in range(args.subscribers)]
        with database.session() as session:
            lists = audience_queries.sync_lists(session, settings.lists)
            import_csv(session, lists["daily"], rows, confirmed=True)

        timings: dict[str, float] = {}

        def timed(name: str, fn):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            result = fn()
            timings[name] = time.perf_counter() - started
            return result

        timed("gather", lambda: gather_sources(database, settings, now=now))
        timed("group", lambda: group_recent(database, settings, now=now))
        builds = timed("build + enqueue", lambda: build_due(database, settings, "daily", now=now))
        report = timed("dispatch", lambda: Dispatcher(database, settings).run(edition_ids=[b.edition_id for b in builds]))
        received = len(server.messages)

        print(f"subscribers: {args.subscribers}, messages received by the SMTP server: {received}")
        for name, seconds in timings.items():
            print(f"  {name:<16} {seconds * 1000:9.1f} ms")
        per_message_ms = timings["dispatch"] / max(report.sent, 1) * 1000
        print(f"  send rate        {report.sent / timings['dispatch']:9.1f} msg/s  ({per_message_ms:.2f} ms per message, "
              "SMTP server in the same process)")

        # Baseline: a full render per recipient.
        with database.session() as session:
            variant = session.query(EditionVariant).first()
            stories = len(variant.story_ids)
        views = [StoryView(id=i, headline=f"Story {i} headline about the news of the day", url=f"https://x.example/{i}",
                         summary="A summary sentence of reasonable length. " * 6) for i in range(stories)]
        samples = 20
        started = time.perf_counter()
        for _ in range(samples):
            render_digest(views, ListView("Daily", "daily"), locale="en", date_label="2026-11-28", subject="s")
        render_ms = (time.perf_counter() - started) / samples * 1000
        print(f"baseline: full render per recipient {render_ms:.2f} ms vs whole per-message path {per_message_ms:.2f} ms "
              f"(render alone is {render_ms / per_message_ms:.1f}x the complete send path per message)")
        database.dispose()


if __name__ == "__main__":
    main()
