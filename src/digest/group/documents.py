"""The plain data the group stage works on; no database here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Doc:
    """One article as grouping sees it."""

    id: str
    title: str
    text: str = ""
    published: dt.datetime | None = None
    url: str = ""
    source: str = ""


@dataclass
class Grouping:
    """The result: a story label per document and related documents (other stories) per document."""

    story_of: dict[str, int] = field(default_factory=dict)
    related: dict[str, list[str]] = field(default_factory=dict)

    def stories(self) -> dict[int, list[str]]:
        members: dict[int, list[str]] = {}
        for doc_id, label in self.story_of.items():
            members.setdefault(label, []).append(doc_id)
        return members
