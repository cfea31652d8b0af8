"""A worker's heartbeat: the leases of the rows it holds are renewed while it lives.

So `dispatch.lease_seconds` only bounds how long a *dead* worker's rows wait, and a slow send
(rate limits, a stalling server) never lets a second worker take a row that is still in hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
import datetime as dt

from digest.db import deliveries as ledger
from digest.dispatch.sessions import Sessions

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, sessions: Sessions, worker_id: str, lease_seconds: int, clock: Callable[[], dt.datetime]) -> None:
        self.sessions, self.worker_id, self.lease_seconds, self.clock = sessions, worker_id, lease_seconds, clock
        self.held: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="digest-lease", daemon=True)

    def hold(self, ids: list[int]) -> None:
        with self._lock:
            self.held.update(ids)

    def drop(self, delivery_id: int) -> None:
        with self._lock:
            self.held.discard(delivery_id)

    def drop_many(self, delivery_ids: list[int]) -> None:
        with self._lock:
            self.held.difference_update(delivery_ids)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def renew(self) -> int:
        with self._lock:
            ids = list(self.held)
        if not ids:
            return 0
        with self.sessions() as session:
            return ledger.renew_leases(session, self.worker_id, self.clock(), self.lease_seconds, ids)

    def _loop(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3, 1.0)):
            try:
                self.renew()
            except Exception:  # the database may be briefly away; the next beat tries again
                log.exception("renewing leases failed")
