"""Send-rate limits: a global limiter (per second, sliding hour and day) shared by a worker's connections.

The limits hold per worker process; with N workers give each 1/N of the provider's quota
(docs/dispatch.md). The per-second window is exact (a log of the last second's sends); hour and
day windows count per-minute buckets and include a bucket while any part of it is in the window,
so they may send slightly less than allowed but never more.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from digest.config import SmtpSettings

Monotonic = Callable[[], float]


class _Window:
    """At most `limit` events in any `span` seconds, counted in `bucket`-second buckets."""

    def __init__(self, limit: int, span: float, bucket: float) -> None:
        self.limit, self.span, self.bucket = limit, span, bucket
        self._buckets: deque[list[float]] = deque()  # [bucket start, count]
        self._total = 0

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] + self.bucket <= now - self.span:
            self._total -= int(self._buckets.popleft()[1])

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        self._expire(now)
        if self._total < self.limit:
            return 0.0
        excess = self._total - self.limit + 1
        for start, count in self._buckets:
            excess -= int(count)
            if excess <= 0:
                return max(start + self.bucket + self.span - now, 0.001)
        return self.span

    def add(self, now: float) -> None:
        start = now - (now % self.bucket) if self.bucket > 0 else now
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([start, 1])
        self._total += 1


class RateLimiter:
    """Blocks `acquire()` until a send fits every configured window. Thread-safe."""

    def __init__(self, per_second: float = 0, per_hour: int = 0, per_day: int = 0, *,
                 clock: Monotonic = time.monotonic, sleep: Callable[[float], object] = time.sleep) -> None:
        self.windows: list[_Window] = []
        if per_second > 0:
            if per_second >= 1:
                self.windows.append(_Window(int(per_second), 1.0, 0.0))
            else:  # e.g. 0.5/s: one send per 2 s
                self.windows.append(_Window(1, 1.0 / per_second, 0.0))
        if per_hour > 0:
            self.windows.append(_Window(per_hour, 3600.0, 60.0))
        if per_day > 0:
            self.windows.append(_Window(per_day, 86400.0, 60.0))
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> RateLimiter:
        return cls(smtp.rate_per_second, smtp.rate_per_hour, smtp.rate_per_day)

    @property
    def unlimited(self) -> bool:
        return not self.windows

    def try_acquire(self) -> float:
        """Take a slot and return 0, or return how long to wait before trying again."""
        if not self.windows:  # no limits configured: nothing to count (and no lock for the senders to share)
            return 0.0
        with self._lock:
            now = self.clock()
            wait = max((w.wait_time(now) for w in self.windows), default=0.0)
            if wait <= 0:
                for w in self.windows:
                    w.add(now)
            return wait

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot; False when `stop` was set while waiting."""
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if stop is not None:
                if stop.wait(min(wait, 1.0)):
                    return False
            else:
                self.sleep(min(wait, 1.0))
