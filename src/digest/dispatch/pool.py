"""A worker's sender threads: one reused SMTP connection each, fed from one fair `DomainQueue`.

N connections (`smtp.max_connections`) send at once under the shared rate limiter; each
thread records its own outcomes, so a slow or stalled connection never holds the others.
Each thread also builds its messages (`prepare`): the next one while the server works on the
DATA of the current one, so no thread is CPU-bound while the others wait for the GIL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from digest.dispatch.domains import DomainQueue, domain_of
from digest.dispatch.limits import RateLimiter
from digest.dispatch.policy import Decision
from digest.dispatch.smtp import SendResult

log = logging.getLogger(__name__)


class Transport(Protocol):
    def send(self, sender: str, recipient: str, message: bytes, before_data: Callable[[], bool] | None = None,
             before_mail: Callable[[], None] | None = None, after_data: Callable[[], None] | None = None,
             wire: bytes | None = None) -> SendResult: ...

    def close(self) -> None: ...


class HasRecipient(Protocol):
    recipient: str


T = TypeVar("T", bound=HasRecipient)


class SenderPool(Generic[T]):
    def __init__(self, size: int, queue: DomainQueue[T], limiter: RateLimiter,
                 make_transport: Callable[[], Transport], deliver: Callable[[Transport, T, Callable[[], None]], Decision | None],
                 *, throttle_seconds: float, idle: Callable[[], None] = lambda: None,
                 prepare: Callable[[T], None] = lambda item: None) -> None:
        self.queue, self.limiter = queue, limiter
        self.make_transport, self.deliver, self.prepare = make_transport, deliver, prepare
        self.idle = idle  # run in a sender thread before it waits for work, and when it ends
        self.throttle_seconds = throttle_seconds
        self.stopping = threading.Event()
        self.unsent: list[T] = []  # taken but not sent because of a stop
        self.crashes = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, name=f"digest-sender-{i}", daemon=True) for i in range(size)]

    def __enter__(self) -> SenderPool[T]:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.queue.finish()
        for thread in self._threads:
            thread.join()

    def stop(self) -> list[T]:
        """Finish the messages in flight; returns every message not sent (to be released)."""
        self.stopping.set()
        left = self.queue.close()
        for thread in self._threads:
            thread.join()
        with self._lock:
            return left + self.unsent

    def _loop(self) -> None:
        transport = self.make_transport()
        ahead: T | None = None  # taken and built while the server worked on the previous DATA

        def build_next() -> None:
            nonlocal ahead
            if ahead is None and not self.stopping.is_set():
                ahead = self.queue.poll()
                if ahead is not None:
                    self.prepare(ahead)

        try:
            while True:
                item, ahead = ahead or self.queue.poll(), None
                if item is None:
                    self._idle()
                    item = self.queue.take()
                if item is None:
                    return
                decision: Decision | None = None
                try:
                    if self.stopping.is_set() or not self._acquire():
                        with self._lock:
                            self.unsent.append(item)
                        continue
                    self.prepare(item)  # a no-op when built ahead
                    decision = self.deliver(transport, item, build_next)
                except Exception:  # a bug or a database outage: the row's lease brings it back
                    log.exception("sending to %s failed unexpectedly", item.recipient)
                    with self._lock:
                        self.crashes += 1
                    transport.close()
                finally:
                    self.queue.done(item)
                if decision is not None and decision.cool_domain:
                    self.queue.cool_down(domain_of(item.recipient), self.throttle_seconds)
                if decision is not None and decision.pause_connection:
                    transport.close()
                    self._idle()
                    self.stopping.wait(self.throttle_seconds)
        finally:
            self._idle()
            transport.close()

    def _acquire(self) -> bool:
        """A slot under the rate limits; before waiting for one, what is recorded gets committed."""
        if self.limiter.try_acquire() <= 0:
            return True
        self._idle()
        return self.limiter.acquire(self.stopping)

    def _idle(self) -> None:
        try:
            self.idle()
        except Exception:  # a database outage: what was not recorded comes back through the leases
            log.exception("recording outcomes failed")
