"""What a failed send means for its row: retry when, give up, skip, and whether it is a bounce.

4xx and connection trouble → deferred with capped exponential backoff (± 10 % jitter so a
throttled batch does not come back as one burst). 421/454 mean the server as a whole pushes
back: that connection pauses. 450/451/452 usually concern the recipient's domain: it cools
down. 5xx at RCPT or DATA → failed and a hard bounce; 5xx at MAIL FROM or AUTH is our own
configuration, so the row is retried rather than the recipient blamed. A connection lost
after DATA follows `dispatch.ambiguous`, like a crash.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from digest.config import DispatchSettings
from digest.db.models import DeliveryState
from digest.dispatch.smtp import AmbiguousDispatchError, ClaimLostError, stage_of
from digest.errors import DispatchError, PermanentDispatchError

THROTTLE_CODES = frozenset({421, 450, 451, 452, 454})
SERVER_THROTTLE = frozenset({421, 454})
RECIPIENT_STAGES = ("RCPT TO", "DATA")


@dataclass(frozen=True)
class Decision:
    state: DeliveryState | None  # None: the row is not ours any more; record nothing
    delay: float = 0.0  # seconds until the retry (deferred)
    count_attempt: bool = False  # deferred before its mark: the attempt was not counted yet
    refund_attempt: bool = False  # counted by an early mark, but the failure was on our own side
    bounce: str | None = None  # "hard" | "soft" for the recipient's bounce score
    pause_connection: bool = False
    cool_domain: bool = False


def backoff(attempts: int, settings: DispatchSettings, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempts` (1-based): base · 2^(n-1), capped, ± 10 %."""
    delay = min(settings.retry_base_seconds * 2 ** max(attempts - 1, 0), settings.retry_max_seconds)
    return delay * (rng or random).uniform(0.9, 1.1)


def decide(exc: DispatchError, attempts: int, settings: DispatchSettings, *, data_started: bool,
           counted: bool | None = None) -> Decision:
    """`attempts` counts tries so far, this one included when it was `counted` (the ledger counts at the
    `transmitting` mark: after RCPT TO, or once MAIL FROM is written when the mark overlaps the envelope)."""
    if isinstance(exc, ClaimLostError):
        return Decision(None)
    counted = data_started if counted is None else counted
    stage, code = stage_of(exc), exc.code or 0
    tries = attempts if counted else attempts + 1
    if isinstance(exc, AmbiguousDispatchError):
        if settings.ambiguous == "skip":
            return Decision(DeliveryState.skipped)
        if tries >= settings.max_attempts:
            return Decision(DeliveryState.failed)
        return Decision(DeliveryState.deferred, delay=min(settings.retry_base_seconds, 60.0))
    if isinstance(exc, PermanentDispatchError) and stage in RECIPIENT_STAGES:
        return Decision(DeliveryState.failed, bounce="hard")
    server_side = stage in ("connect", "connection", "MAIL FROM") or code in SERVER_THROTTLE
    if not server_side and tries >= settings.max_attempts:
        return Decision(DeliveryState.failed, bounce="soft")
    return Decision(DeliveryState.deferred, delay=backoff(tries, settings), count_attempt=not counted and not server_side,
                    refund_attempt=counted and server_side,
                    pause_connection=server_side or code in SERVER_THROTTLE,
                    cool_domain=code in THROTTLE_CODES and code not in SERVER_THROTTLE)
