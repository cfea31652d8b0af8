"""The plain data gather produces: one `Item` per feed entry or page, one `SourceOutcome` per source."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class Item:
    guid: str
    url: str
    title: str
    summary_html: str = ""
    text: str = ""
    author: str = ""
    language: str = ""
    image_url: str = ""
    published_at: dt.datetime | None = None
    tags: list[str] = field(default_factory=list)
    # MinHash signature of title + text (gather/dedupe.py); None when too short to compare.
    fingerprint: bytes | None = None


@dataclass
class FetchResult:
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None
    # Where the source now lives when every redirect hop so far was permanent (301/308); None otherwise.
    moved_to: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def permanent_redirect(self) -> bool:
        return self.moved_to is not None


@dataclass
class SourceOutcome:
    """What happened to one source in one gather run (the run report's row)."""

    source: str
    ok: bool
    # "ok" | "not-modified" | "error" | "gone" (410, now retired) | "throttled" (429/503)
    # | "waiting" (Retry-After not yet passed) | "retired" | "disabled"
    status: str
    new_items: int = 0
    seen_items: int = 0
    error: str = ""
    elapsed_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0  # items another source already brought: recorded as sightings of that article
    http_status: int | None = None
    moved_to: str = ""  # new stored URL after a permanent redirect
    retry_at: str = ""  # ISO 8601 instant before which the source is not asked again
    pages: int = 0  # article pages fetched (page sources and fetch_full_text)
