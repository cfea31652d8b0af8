"""Storing one source's items with dedupe: each item becomes a new article, a sighting of an article
another source already brought, or nothing (this source carried it before).

Order of the checks, cheapest and surest first:
1. GUID already seen at this source               → nothing (the feed repeats itself every run)
2. canonical URL of a stored article               → a sighting of that article (how = "url")
3. MinHash near-duplicate of a recent article      → a sighting of that article (how = "text")
4. otherwise                                        → a new article, with its origin sighting
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from digest.db import articles as queries
from digest.db.models import Source
from digest.gather.dates import settle_date
from digest.gather.dedupe import NearDuplicateIndex
from digest.gather.items import Item


@dataclass
class Stored:
    new: int = 0
    duplicates: int = 0  # new sightings of articles first brought by another source
    first_seen: int = 0  # items this source carried for the first time (new + duplicates + own repeats)
    fingerprints: list[tuple[int, bytes]] = field(default_factory=list)  # of the new articles, for the index
    urls: dict[str, int] = field(default_factory=dict)  # canonical URL → id of the new articles


@dataclass
class Lookups:
    """What a batch of sources reads before storing them: the GUIDs each source carried before, and the articles
    stored under the batch's URLs (kept up to date as the batch's own articles are stored)."""

    seen: dict[int, set[str]]
    by_url: dict[str, int]

    def stored(self, stored: Stored) -> None:
        """A source of the batch is stored: the sources after it see its new articles' URLs."""
        for url, article_id in stored.urls.items():
            self.by_url.setdefault(url, article_id)


def look_up(session: Session, batch: list[tuple[int, list[Item]]]) -> Lookups:
    """One query for the GUIDs and one for the URLs of a whole batch of (source id, items)."""
    seen = queries.seen_guids_by_source(session, [(source_id, item.guid) for source_id, items in batch
                                                  for item in items])
    return Lookups(seen, queries.articles_by_url(session, (item.url for _, items in batch for item in items)))


def store_items(session: Session, source: Source, items: list[Item], now: dt.datetime,
                index: NearDuplicateIndex, lookups: Lookups | None = None) -> Stored:
    """Store one source's batch in the caller's transaction, matching against `index` (recent articles).

    `lookups` are the batch's GUIDs and URLs read beforehand (`look_up()`); without them they are read here.
    The new articles' fingerprints come back in `Stored.fingerprints`: the caller adds them to the index
    once the transaction has committed.
    """
    stored = Stored()
    if lookups is None:
        known = queries.seen_guids(session, source.id, (i.guid for i in items))
    else:
        known = set(lookups.seen.get(source.id, ()))
    fresh: list[Item] = []
    for item in items:
        if item.guid not in known:
            known.add(item.guid)
            fresh.append(item)
    stored.first_seen = len(fresh)
    if not fresh:
        return stored

    by_url = queries.articles_by_url(session, (i.url for i in fresh)) if lookups is None else lookups.by_url
    taken: set[str] = set()  # URLs of this source's new articles: a second item with one is the same article
    batch = NearDuplicateIndex(index.threshold)  # this batch's own new texts, keyed by position in `new`
    new: list[Item] = []
    matched: dict[int, tuple[Item, str]] = {}  # article id → (the item that matched it, how)
    for item in fresh:
        if item.url and (item.url in by_url or item.url in taken):
            if item.url not in taken:
                matched.setdefault(by_url[item.url], (item, "url"))
            continue
        hit = index.match(item.fingerprint)
        if hit is not None:
            matched.setdefault(hit[0], (item, "text"))
            continue
        if batch.match(item.fingerprint) is not None:
            continue  # this source carries the same text twice under two GUIDs: keep the first
        if item.fingerprint is not None:
            batch.add(len(new), item.fingerprint)
        if item.url:
            taken.add(item.url)
        new.append(item)

    topics = sorted(set(source.topics or []))  # one list object for every item without tags of its own
    ids = queries.insert_articles(session, source.id, [_article_row(source, item, now, topics) for item in new])
    sightings = [_sighting(article_id, source, item, now, "origin") for article_id, item in zip(ids, new)]
    stored.fingerprints = [(i, item.fingerprint) for i, item in zip(ids, new) if item.fingerprint is not None]
    stored.urls = {item.url: i for i, item in zip(ids, new) if item.url}

    already = queries.sighted_articles(session, source.id, matched)
    copies = {article_id: hit for article_id, hit in matched.items() if article_id not in already}
    changed: dict[int, list[str]] = {}
    for article_id, topics_now in queries.article_topics(session, copies).items():
        item, how = copies[article_id]
        sightings.append(_sighting(article_id, source, item, now, how))
        # A copy carried by a source on another beat puts the article on that beat too.
        merged = sorted(set(topics_now) | set(source.topics or []) | set(item.tags))
        if merged != topics_now:
            changed[article_id] = merged
        stored.duplicates += 1
    queries.set_topics(session, changed)
    queries.add_sightings(session, sightings)
    stored.new = len(new)
    return stored


def _article_row(source: Source, item: Item, now: dt.datetime, topics: list[str]) -> dict[str, Any]:
    return {
        "source_id": source.id, "guid": item.guid, "url": item.url, "canonical_url": item.url, "title": item.title,
        "summary_html": item.summary_html, "text": item.text, "author": item.author, "language": item.language,
        "image_url": item.image_url, "published_at": settle_date(item.published_at, now), "fetched_at": now,
        "topics": sorted(set(topics) | set(item.tags)) if item.tags else topics, "fingerprint": item.fingerprint,
    }


def _sighting(article_id: int, source: Source, item: Item, now: dt.datetime, how: str) -> dict[str, Any]:
    return {"article_id": article_id, "source_id": source.id, "guid": item.guid, "url": item.url, "seen_at": now,
            "how": how}
