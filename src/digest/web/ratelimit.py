"""Rate limits shared by every web process: counters live in the database (`rate_counts`).

Against subscription bombing (per IP, per address) and password guessing (per IP; the per-account lockout
is `digest.web.accounts`). The window slides by weighting the previous fixed window by how much of it
still overlaps (the usual two-counter approximation): two small rows per key, no per-event log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.db.ratelimits import count_event, count_in, hashed


@dataclass
class Limit:
    """At most `limit` events per key in any `window` seconds (approximately: see the module docstring)."""

    name: str
    limit: int
    window: int

    def allow(self, session: Session, key: str, now: float | None = None) -> bool:
        """Count one event for `key` in the caller's transaction; False when that puts the key over its limit.

        Refusals are counted too, so a client that keeps hammering stays refused; a caller that raises on
        False rolls its transaction (and so the count) back.
        """
        now = time.time() if now is None else now
        start = int(now // self.window) * self.window
        digest_key = hashed(self.name, key)
        current = count_event(session, digest_key, start)
        previous = count_in(session, digest_key, start - self.window)
        overlap = 1 - (now - start) / self.window
        return previous * overlap + current <= self.limit
