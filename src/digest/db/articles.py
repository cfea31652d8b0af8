"""Queries about articles."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.db.models import Article, Source
from digest.gather.items import Item


def store_items(session: Session, source: Source, items: list[Item], now: dt.datetime) -> int:
    """Insert the items not seen before; returns how many were new.

    Repeats are harmless: (source, guid) is unique, and an item whose canonical
    URL another source already brought is the same article.
    """
    if not items:
        return 0
    guids = {i.guid for i in items}
    known_guids = set(session.scalars(select(Article.guid).where(Article.source_id == source.id, Article.guid.in_(guids))))
    urls = {i.url for i in items if i.url}
    known_urls = set(session.scalars(select(Article.canonical_url).where(Article.canonical_url.in_(urls)))) if urls else set()
    new = 0
    for item in items:
        if item.guid in known_guids or (item.url and item.url in known_urls):
            continue
        published = item.published_at or now
        if published > now:  # clocks and typos: the future is now
            published = now
        session.add(Article(
            source_id=source.id, guid=item.guid, url=item.url, canonical_url=item.url, title=item.title,
            summary_html=item.summary_html, text=item.text, author=item.author, language=item.language,
            image_url=item.image_url, published_at=published, fetched_at=now,
            topics=sorted(set(source.topics or []) | set(item.tags)),
        ))
        known_guids.add(item.guid)
        if item.url:
            known_urls.add(item.url)
        new += 1
    session.flush()
    return new


def articles_since(session: Session, since: dt.datetime) -> list[Article]:
    return list(session.scalars(select(Article).where(Article.published_at >= since).order_by(Article.published_at, Article.id)))
