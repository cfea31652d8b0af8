"""The plain data gather produces: one `Item` per feed entry or page."""

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


@dataclass
class FetchResult:
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None
    permanent_redirect: bool = False

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class SourceOutcome:
    """What happened to one source in one gather run (the run report's row)."""

    source: str
    ok: bool
    status: str  # "ok" | "not-modified" | "error" | "retired" | "disabled"
    new_items: int = 0
    seen_items: int = 0
    error: str = ""
    elapsed_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)
