"""One edition's delivery status: counts by state, rate, ETA, top errors, rows to review.

The same dictionary feeds `digest status` (table) and `digest status --json`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from digest.db import ledger_stats
from digest.db.models import DeliveryState, Edition

RATE_WINDOW = dt.timedelta(minutes=5)
REMAINING = ("queued", "deferred", "claimed", "transmitting")


def edition_status(session: Session, edition: Edition, now: dt.datetime) -> dict[str, object]:
    counts = ledger_stats.counts_by_state(session, edition.id)
    remaining = sum(counts.get(s, 0) for s in REMAINING)
    recent = ledger_stats.sent_since(session, edition.id, now - RATE_WINDOW)
    first, last = ledger_stats.sent_window(session, edition.id)
    if recent:  # the current rate; an idle edition shows its overall rate
        rate = recent / RATE_WINDOW.total_seconds()
        if first and now - first < RATE_WINDOW:
            rate = recent / max((now - first).total_seconds(), 1.0)
    else:
        span = (last - first).total_seconds() if first and last else 0.0
        rate = counts.get("sent", 0) / span if span > 0 else 0.0
    eta = remaining / rate if rate > 0 and remaining and edition.status in ("ready", "sending") else None
    skipped = ledger_stats.rows_in_state(session, edition.id, DeliveryState.skipped)
    return {
        "id": edition.id, "list": edition.mailing_list.slug, "period": edition.period, "status": edition.status,
        "subject": edition.subject, "skip_reason": edition.skip_reason, "deliveries": counts,
        "remaining": remaining, "rate_per_second": round(rate, 1),
        "eta_seconds": round(eta) if eta is not None else None,
        "top_errors": [{"reply": r, "count": c} for r, c in ledger_stats.top_errors(session, edition.id)],
        "skipped": skipped, "bounces": ledger_stats.bounce_counts(session, edition.id),
    }


def format_eta(seconds: float | int | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
