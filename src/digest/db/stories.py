"""Queries about stories."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.db.models import Article, Story


def articles_in_window(session: Session, since: dt.datetime) -> list[Article]:
    query = (select(Article).where(Article.published_at >= since).options(selectinload(Article.source))
             .order_by(Article.published_at, Article.id))
    return list(session.scalars(query))


def recent_stories(session: Session, since: dt.datetime) -> list[Story]:
    query = (select(Story).where(Story.last_updated_at >= since)
             .options(selectinload(Story.articles).selectinload(Article.source))
             .order_by(Story.last_updated_at.desc(), Story.id))
    return list(session.scalars(query))


def stories_by_id(session: Session, ids: list[int]) -> dict[int, Story]:
    if not ids:
        return {}
    query = select(Story).where(Story.id.in_(ids)).options(selectinload(Story.articles).selectinload(Article.source))
    return {s.id: s for s in session.scalars(query)}
