"""Per-host politeness: at most N requests in flight to one host, and a minimum gap between their starts.

The global bound is the worker pool's size; this gate is what keeps fifty feeds
on one newspaper's server from arriving there at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit


def host_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")


class HostGate:
    def __init__(self, per_host: int, delay: float) -> None:
        self.per_host = per_host
        self.delay = delay
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next_start: dict[str, float] = {}

    @contextmanager
    def enter(self, url: str) -> Iterator[None]:
        """Hold one of the host's slots for the duration of a request, starting no sooner than the delay allows."""
        host = host_of(url)
        if not host:  # local files: nothing to be polite to
            yield
            return
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with slot:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start.get(host, now))
                self._next_start[host] = start + self.delay
            if start > now:
                time.sleep(start - now)
            yield


def interleave_by_host(urls: list[str]) -> list[int]:
    """Indices of `urls` ordered round-robin across hosts, so a pool of workers is not queued behind one host."""
    queues: dict[str, list[int]] = {}
    for index, url in enumerate(urls):
        queues.setdefault(host_of(url), []).append(index)
    order: list[int] = []
    lanes = list(queues.values())
    depth = 0
    while len(order) < len(urls):
        order.extend(lane[depth] for lane in lanes if depth < len(lane))
        depth += 1
    return order
