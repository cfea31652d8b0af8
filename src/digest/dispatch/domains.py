"""The work queue of a worker's sender threads, fair across recipient domains.

`take()` hands out the next message whose domain has a free concurrency slot, whose per-domain
rate allows a send now and which is not cooling down after a throttling reply; messages for a
busy domain wait without blocking the threads that could send to other domains.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

from digest.config import SmtpSettings

T = TypeVar("T")


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class DomainQueue(Generic[T]):
    def __init__(self, smtp: SmtpSettings, *, key: Callable[[T], str], clock: Callable[[], float] = time.monotonic) -> None:
        self.default_concurrency = smtp.domain_concurrency
        self.limits = {d.lower(): lim for d, lim in smtp.domains.items()}
        self.key, self.clock = key, clock
        self._pending: OrderedDict[str, deque[T]] = OrderedDict()
        self._inflight: dict[str, int] = {}
        self._next_start: dict[str, float] = {}
        self._cool_until: dict[str, float] = {}
        self._size = 0
        self._busy = 0  # messages waiting plus messages being sent
        self._room = 0  # the producer waits until fewer than this many are waiting
        self._closed = False
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the sender threads wait on it
        self._watch = threading.Condition(lock)  # the producer waits on it

    def _concurrency(self, domain: str) -> int:
        lim = self.limits.get(domain)
        return (lim.concurrency if lim and lim.concurrency else 0) or self.default_concurrency

    def _interval(self, domain: str) -> float:
        lim = self.limits.get(domain)
        return 1.0 / lim.rate_per_second if lim and lim.rate_per_second > 0 else 0.0

    def put_many(self, items: list[T]) -> None:
        with self._cond:
            for item in items:
                self._pending.setdefault(self.key(item), deque()).append(item)
            self._size += len(items)
            self._busy += len(items)
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def busy(self) -> int:
        """Messages waiting plus messages being sent."""
        with self._cond:
            return self._busy

    def take(self) -> T | None:
        """The next sendable message; None once the queue is closed and empty."""
        with self._cond:
            while True:
                item, wake = self._next()
                if item is not None:
                    return item
                if self._closed and not self._size:
                    return None
                self._cond.wait(None if wake is None else max(wake - self.clock(), 0.001))

    def poll(self) -> T | None:
        """The next message sendable right now, or None without waiting."""
        with self._cond:
            return self._next()[0]

    def _next(self) -> tuple[T | None, float | None]:
        """(a sendable message, None) or (None, when the earliest waiting domain is ready). Under the lock."""
        now = self.clock()
        wake = None
        for domain in self._pending:  # no copy (many domains): walked up to the first sendable, changed only to return it
            limit = self._concurrency(domain)
            if limit and self._inflight.get(domain, 0) >= limit:
                continue
            ready_at = max(self._next_start.get(domain, 0.0), self._cool_until.get(domain, 0.0))
            if ready_at > now:
                wake = ready_at if wake is None else min(wake, ready_at)
                continue
            items = self._pending.pop(domain)
            item = items.popleft()
            if items:  # round robin: the domain goes to the back
                self._pending[domain] = items
            self._size -= 1
            if self._size < self._room:
                self._watch.notify_all()
            self._inflight[domain] = self._inflight.get(domain, 0) + 1
            interval = self._interval(domain)
            if interval:
                self._next_start[domain] = now + interval
            return item, None
        return None, wake

    def done(self, item: T) -> None:
        with self._cond:
            domain = self.key(item)
            left = self._inflight[domain] - 1
            if left:
                self._inflight[domain] = left
            else:  # a million-address list has many domains: keep only those in flight
                del self._inflight[domain]
            self._busy -= 1
            if not self._busy:
                self._watch.notify_all()
            self._cond.notify_all()

    def discard_where(self, predicate: Callable[[T], bool]) -> list[T]:
        """Take the waiting messages that match out of the queue (an edition paused or cancelled meanwhile)."""
        with self._cond:
            dropped: list[T] = []
            for domain in list(self._pending):
                items, keep = self._pending[domain], deque[T]()
                for item in items:
                    (dropped if predicate(item) else keep).append(item)
                if len(keep) == len(items):
                    continue
                if keep:
                    self._pending[domain] = keep
                else:
                    del self._pending[domain]
            self._size -= len(dropped)
            self._busy -= len(dropped)
            self._watch.notify_all()
            return dropped

    def cool_down(self, domain: str, seconds: float) -> None:
        """A throttling reply for this domain: no new sends to it for a while."""
        with self._cond:
            self._cool_until[domain] = max(self._cool_until.get(domain, 0.0), self.clock() + seconds)

    def wait_for_room(self, below: int, timeout: float) -> None:
        """The producer: block until fewer than `below` messages wait, or the timeout passes.

        Only the changes that matter wake it (not every send), so it does not take the GIL from the senders."""
        with self._cond:
            self._room = below
            self._watch.wait_for(lambda: self._size < below or self._closed, timeout)
            self._room = 0

    def wait_idle(self, timeout: float) -> None:
        """Block until nothing waits and nothing is being sent, or the timeout passes."""
        with self._cond:
            self._watch.wait_for(lambda: not self._busy or self._closed, timeout)

    def close(self) -> list[T]:
        """No more input; returns what was never handed out (for release) and wakes every taker."""
        with self._cond:
            left = [item for items in self._pending.values() for item in items]
            self._pending.clear()
            self._busy -= self._size
            self._size = 0
            self._closed = True
            self._cond.notify_all()
            self._watch.notify_all()
            return left

    def finish(self) -> None:
        """No more input; the takers drain what is queued and then get None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._watch.notify_all()
