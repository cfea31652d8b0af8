"""The mailer: a loop that sends what the outbox holds (confirm mails) and prunes old rate-limit counters.

`digest serve` runs it in a child process, so the web processes never spend CPU on building or sending
mail; `digest mailer` runs it on its own (with `serve --no-mailer`). Any number may run against one
database: rows are claimed with a lease (SKIP LOCKED on PostgreSQL).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from digest.audience.confirmations import ConfirmReport, send_due
from digest.config import Settings, load_settings
from digest.db import ratelimits
from digest.db.session import Database, open_database
from digest.runtime import settle_heap

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0  # seconds between rate-counter clean-ups
KEEP_COUNTERS = 2 * 86400  # the longest window (a day) and the one before it


class Mailer:
    def __init__(self, database: Database, settings: Settings, *, poll: float = 0.5,
                 on_round: Callable[[ConfirmReport], None] | None = None) -> None:
        self.database, self.settings, self.poll, self.on_round = database, settings, poll, on_round
        self.stopping = threading.Event()
        self._last_prune = 0.0

    def run_once(self) -> ConfirmReport:
        report = send_due(self.database, self.settings)
        now = time.time()
        if now - self._last_prune > PRUNE_EVERY:
            with self.database.session() as session:
                ratelimits.prune(session, int(now) - KEEP_COUNTERS)
            self._last_prune = now
        if self.on_round is not None:
            self.on_round(report)
        return report

    def run_forever(self) -> None:
        """Until `stop()`: a round at once when the last one was full, else after `poll` seconds."""
        while not self.stopping.is_set():
            try:
                report = self.run_once()
                busy = report.sent + report.dropped > 0
            except Exception:  # a database hiccup must not end the mailer; the next round retries
                log.exception("mailer round failed")
                busy = False
            if not busy:
                self.stopping.wait(self.poll)

    def stop(self) -> None:
        self.stopping.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="digest-mailer", daemon=True)
        thread.start()
        return thread


def run_mailer_process(config_path: str | None, poll: float) -> None:
    """Entry point of the child process `digest serve` starts (spawned: it reads the config itself)."""
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s mailer %(levelname)s %(message)s")
    settings = load_settings(config_path)
    mailer = Mailer(open_database(settings.database.url), settings, poll=poll)
    settle_heap()
    signal.signal(signal.SIGTERM, lambda *_: mailer.stop())
    signal.signal(signal.SIGINT, lambda *_: mailer.stop())
    mailer.run_forever()
