"""Copying the bundled sample feeds into a demo folder, with dates moved to just before now.

The samples are static files; shifting every date by one offset keeps their
relative order and makes them "recent" whenever the demo runs.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

_RFC822 = re.compile(r"(<pubDate>)([^<]+)(</pubDate>)")
_ATOM = re.compile(r"(<(?:published|updated)>)([^<]+)(</(?:published|updated)>)")
_JSON = re.compile(r'("date_(?:published|modified)"\s*:\s*")([^"]+)(")')


def _iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))


def newest_date(texts: list[str]) -> dt.datetime:
    found = [parsedate_to_datetime(m.group(2)) for t in texts for m in _RFC822.finditer(t)]
    found += [_iso(m.group(2)) for t in texts for pattern in (_ATOM, _JSON) for m in pattern.finditer(t)]
    if not found:
        raise ValueError("sample feeds carry no dates")
    return max(found)


def shift(text: str, delta: dt.timedelta) -> str:
    text = _RFC822.sub(lambda m: m.group(1) + format_datetime(parsedate_to_datetime(m.group(2)) + delta) + m.group(3), text)
    iso = lambda m: m.group(1) + (_iso(m.group(2)) + delta).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + m.group(3)  # noqa: E731
    text = _ATOM.sub(iso, text)
    return _JSON.sub(iso, text)


def copy_shifted(source_dir: Path, target_dir: Path, now: dt.datetime, lead: dt.timedelta = dt.timedelta(minutes=30)) -> list[Path]:
    """Copy every feed in `source_dir` to `target_dir`, the newest item ending up `lead` before `now`."""
    sources = sorted(p for p in source_dir.iterdir() if p.is_file() and p.suffix in {".xml", ".json"})
    texts = [p.read_text(encoding="utf-8") for p in sources]
    delta = (now - lead) - newest_date(texts)
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in zip(sources, texts, strict=True):
        target = target_dir / path.name
        target.write_text(shift(text, delta), encoding="utf-8")
        written.append(target)
    return written
