"""Queries about stories."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.db.models import Article, ArticleSighting, Story


def articles_in_window(session: Session, since: dt.datetime) -> list[Article]:
    query = (select(Article).where(Article.published_at >= since).options(selectinload(Article.source))
             .order_by(Article.published_at, Article.id))
    return list(session.scalars(query))


def recent_stories(session: Session, since: dt.datetime) -> list[Story]:
    query = (select(Story).where(Story.last_updated_at >= since).options(*_with_sources())
             .order_by(Story.last_updated_at.desc(), Story.id))
    return list(session.scalars(query))


def stories_by_id(session: Session, ids: list[int], *, with_articles: bool = True) -> dict[int, Story]:
    if not ids:
        return {}
    query = select(Story).where(Story.id.in_(ids))
    if with_articles:
        query = query.options(*_with_sources())
    return {s.id: s for s in session.scalars(query)}


def _with_sources() -> tuple[object, ...]:
    """Each story's articles, their origin source and every source that carried a syndicated copy."""
    articles = selectinload(Story.articles)
    return (articles.selectinload(Article.source),
            articles.selectinload(Article.sightings).selectinload(ArticleSighting.source))
