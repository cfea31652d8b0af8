"""What one dispatch run did; updated by every sender thread, read by progress bars and `--json`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MAX_ERRORS = 100  # a million-recipient run must not keep a million error strings


@dataclass
class DispatchReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0
    recovered: int = 0  # ambiguous rows of dead workers handled by the policy
    released: int = 0  # claims given back on a graceful stop
    lost_claims: int = 0  # rows taken away (paused, cancelled, lease lost) before DATA: not sent
    elapsed_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def done(self) -> int:
        return self.sent + self.deferred + self.failed + self.suppressed + self.skipped

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def count(self, outcome: str, error: str = "") -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            if error and len(self.errors) < MAX_ERRORS:
                self.errors.append(error)

    def add(self, outcome: str, count: int) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + count)

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            data = {k: v for k, v in vars(self).items() if not k.startswith("_")}
            data["errors"] = list(self.errors)
        return {**data, "rate_per_second": round(self.rate, 1)}
