"""Bounce scores → suppression. One place decides when an address is never mailed again.

Hard bounces are counted (`bounces.hard_threshold`, default 1: at once). Soft bounces add 1 to a
score that halves every `bounces.soft_half_life_days`, so a mailbox that was full once last month
is forgiven while one that fails every day reaches `bounces.soft_threshold`. Complaints suppress at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import audience as audience_queries
from digest.db.models import BounceScore, Suppression


@dataclass(frozen=True)
class Thresholds:
    hard: int = 1
    soft: float = 3.0
    half_life_days: float = 7.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        b = settings.bounces
        return cls() if b is None else cls(b.hard_threshold, b.soft_threshold, b.soft_half_life_days)


def suppress(session: Session, email: str, reason: str, kind: str) -> bool:
    """True when the address was newly suppressed."""
    email = email.strip()
    if session.scalar(select(Suppression.id).where(Suppression.email == email)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Suppression(email=email, reason=reason[:500], kind=kind))
    except IntegrityError:  # another worker suppressed it a moment ago
        return False
    return True


def _score_row(session: Session, email: str, now: dt.datetime) -> BounceScore:
    row = session.scalar(select(BounceScore).where(BounceScore.email == email))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = BounceScore(email=email, hard_count=0, soft_count=0, soft_score=0.0, last_bounce_at=now, last_reason="")
            session.add(row)
        return row
    except IntegrityError:
        found = session.scalar(select(BounceScore).where(BounceScore.email == email))
        assert found is not None
        return found


def decayed(score: float, since: dt.datetime, now: dt.datetime, half_life_days: float) -> float:
    days = max((now - since).total_seconds(), 0.0) / 86400
    return score * 0.5 ** (days / half_life_days)


def record_bounce(session: Session, email: str, kind: str, reason: str, now: dt.datetime, thresholds: Thresholds,
                  *, subscriber_id: int | None = None, edition_id: int | None = None) -> bool:
    """Count one hard or soft bounce; True when it made the address suppressed."""
    email = email.strip()
    row = _score_row(session, email, now)
    row.soft_score = decayed(row.soft_score, row.last_bounce_at, now, thresholds.half_life_days)
    if kind == "hard":
        row.hard_count += 1
        over = row.hard_count >= thresholds.hard
    else:
        row.soft_count += 1
        row.soft_score += 1.0
        over = row.soft_score >= thresholds.soft
    row.last_bounce_at, row.last_reason = now, reason[:500]
    audience_queries.record_event(session, "bounce", subscriber_id=subscriber_id, edition_id=edition_id,
                                  email=email, bounce=kind, reason=reason[:300])
    if over:
        label = "hard bounce" if kind == "hard" else f"soft bounces (score {row.soft_score:.1f})"
        return suppress(session, email, f"{label}: {reason}", f"{kind}_bounce")
    return False


def record_complaint(session: Session, email: str, reason: str, *, subscriber_id: int | None = None,
                     edition_id: int | None = None) -> bool:
    audience_queries.record_event(session, "complaint", subscriber_id=subscriber_id, edition_id=edition_id,
                                  email=email, reason=reason[:300])
    return suppress(session, email, f"complaint: {reason}", "complaint")
