"""Publication dates: parsed leniently, stored as UTC, with fallbacks for the missing, the absurd and the future."""

from __future__ import annotations

import calendar
import datetime as dt
import time
from email.utils import parsedate_to_datetime
from typing import Any

# Earlier than this is an epoch-zero bug or a typo, not news: treat it as missing.
EARLIEST = dt.datetime(1995, 1, 1, tzinfo=dt.UTC)


def parse_date(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from ISO 8601 / RFC 3339, RFC 2822, a struct_time or a datetime; None if unreadable
    or before 1995 (an epoch-zero bug is "unknown", not "too old to keep").

    Naive values are taken as UTC (feeds that omit the zone mostly mean it).
    """
    if value is None or value == "":
        return None
    parsed: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, time.struct_time | tuple):
        try:
            parsed = dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
        except (OverflowError, ValueError, TypeError):
            return None
    elif isinstance(value, str):
        parsed = _parse_text(value.strip())
    if parsed is None:
        return None
    try:
        parsed = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 with an offset
        return None
    return parsed if parsed >= EARLIEST else None


def _parse_text(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def settle_date(value: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """The date we store: missing → now (first seen); in the future (clock skew, embargo, typo) → now."""
    if value is None or value > now:
        return now
    return value
