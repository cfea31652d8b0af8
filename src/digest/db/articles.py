"""Queries about articles and their sightings (which sources carried each article)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from digest.db.models import Article, ArticleSighting

_CHUNK = 500  # stay under SQLite's bound-parameter limit in IN (...) lists


def seen_guids(session: Session, source_id: int, guids: Iterable[str]) -> set[str]:
    """Which of these GUIDs this source has carried before (as the origin or as a copy)."""
    found: set[str] = set()
    for chunk in _chunks(list(set(guids))):
        query = select(ArticleSighting.guid).where(ArticleSighting.source_id == source_id, ArticleSighting.guid.in_(chunk))
        found.update(session.scalars(query))
    return found


def seen_guids_by_source(session: Session, pairs: Iterable[tuple[int, str]]) -> dict[int, set[str]]:
    """Which of these (source id, GUID) pairs the source has carried before, by source: a whole batch of sources
    in one query per 500 pairs, each pair looked up in the (source_id, guid) index."""
    found: dict[int, set[str]] = {}
    sqlite = session.connection().dialect.name == "sqlite"
    for chunk in _chunks(list(set(pairs))):
        if sqlite:  # SQLite scans the whole index for a row-value IN list; a join on the pairs searches it
            values = ", ".join(["(?, ?)"] * len(chunk))
            rows = _driver_rows(session, f"WITH pair(source_id, guid) AS (VALUES {values}) SELECT s.source_id, s.guid "
                                         f"FROM pair CROSS JOIN {ArticleSighting.__tablename__} AS s "
                                         "ON s.source_id = pair.source_id AND s.guid = pair.guid",
                                [value for pair in chunk for value in pair])
        else:
            rows = session.execute(select(ArticleSighting.source_id, ArticleSighting.guid).where(
                tuple_(ArticleSighting.source_id, ArticleSighting.guid).in_(chunk)))
        for source_id, guid in rows:
            found.setdefault(source_id, set()).add(guid)
    return found


def guids_seen_at(session: Session, source_id: int) -> set[str]:
    """Every GUID this source has carried."""
    return set(session.scalars(select(ArticleSighting.guid).where(ArticleSighting.source_id == source_id)))


def articles_by_url(session: Session, urls: Iterable[str]) -> dict[str, int]:
    """Canonical URL → the first article stored under it."""
    found: dict[str, int] = {}
    sqlite = session.connection().dialect.name == "sqlite"
    for chunk in _chunks([u for u in set(urls) if u]):
        if sqlite:  # the driver's own parameters: SQLAlchemy's expansion of a long IN list costs more than the query
            rows = _driver_rows(session, f"SELECT canonical_url, id FROM {Article.__tablename__} WHERE canonical_url "
                                         f"IN ({', '.join(['?'] * len(chunk))}) ORDER BY id DESC", chunk)
        else:
            rows = session.execute(select(Article.canonical_url, Article.id).where(Article.canonical_url.in_(chunk))
                                   .order_by(Article.id.desc()))
        found.update((url, article_id) for url, article_id in rows)
    return found


def sighted_articles(session: Session, source_id: int, article_ids: Iterable[int]) -> set[int]:
    """Which of these articles this source is already recorded as carrying."""
    found: set[int] = set()
    for chunk in _chunks(list(set(article_ids))):
        query = select(ArticleSighting.article_id).where(ArticleSighting.source_id == source_id,
                                                         ArticleSighting.article_id.in_(chunk))
        found.update(session.scalars(query))
    return found


def recent_fingerprints(session: Session, since: dt.datetime) -> list[tuple[int, bytes]]:
    query = select(Article.id, Article.fingerprint).where(Article.published_at >= since, Article.fingerprint.is_not(None))
    return [(article_id, fp) for article_id, fp in session.execute(query) if fp]


def insert_articles(session: Session, source_id: int, rows: list[dict[str, Any]]) -> list[int]:
    """Insert one source's new articles in one executemany; their ids, in the order given.

    On SQLite the ids are assigned here, after the largest one: writers hold the database from BEGIN IMMEDIATE
    on (db/session.py), so nobody else can take them meanwhile. Elsewhere they are read back by the (source,
    guid) unique key: an ordered RETURNING would make SQLAlchemy fall back to one INSERT per row.
    """
    if not rows:
        return []
    if session.connection().dialect.name == "sqlite":
        first = _driver_rows(session, f"SELECT coalesce(max(id), 0) FROM {Article.__tablename__}", ())[0][0] + 1
        ids = list(range(first, first + len(rows)))
        _insert_many(session, Article.__table__, [{"id": i, **row} for i, row in zip(ids, rows)])
        return ids
    session.execute(insert(Article.__table__), rows)  # Core executemany: the ORM bulk path costs ~2× per row
    found: dict[str, int] = {}
    for chunk in _chunks([r["guid"] for r in rows]):
        query = select(Article.guid, Article.id).where(Article.source_id == source_id, Article.guid.in_(chunk))
        found.update((guid, article_id) for guid, article_id in session.execute(query))
    return [found[r["guid"]] for r in rows]


def article_topics(session: Session, ids: Iterable[int]) -> dict[int, list[str]]:
    """Each article's topics (for a copy seen at a source on another beat)."""
    found: dict[int, list[str]] = {}
    for chunk in _chunks(list(set(ids))):
        query = select(Article.id, Article.topics).where(Article.id.in_(chunk))
        found.update((article_id, list(topics or [])) for article_id, topics in session.execute(query))
    return found


def set_topics(session: Session, topics: dict[int, list[str]]) -> None:
    """Replace these articles' topics (one executemany)."""
    if topics:
        statement = update(Article.__table__).where(Article.__table__.c.id == bindparam("article_id"))
        session.execute(statement.values(topics=bindparam("new_topics")),
                        [{"article_id": article_id, "new_topics": value} for article_id, value in topics.items()])


def add_sightings(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        _insert_many(session, ArticleSighting.__table__, rows)


def _insert_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """One executemany of `rows` (all with the same keys) into `table`.

    On SQLite the values go through the columns' own SQLAlchemy bind processors (so they are stored exactly as
    a Core insert stores them) straight to the driver's executemany: SQLAlchemy's per-row parameter handling
    otherwise costs more than SQLite's insert itself. Other backends take the Core executemany.
    """
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        session.execute(insert(table), rows)  # Core executemany: the ORM bulk path costs ~2× per row
        return
    names = list(rows[0])
    processors = _bind_processors(table, dialect, tuple(names))
    statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    columns = [[row[name] for row in rows] for name in names]  # column by column: cheaper than row by row
    columns = [column if p is None else _processed(column, p) for column, p in zip(columns, processors)]
    values = list(zip(*columns))
    cursor = connection.connection.driver_connection.cursor()  # the session's own connection and transaction
    try:
        cursor.executemany(statement, values)
    finally:
        cursor.close()


def _driver_rows(session: Session, statement: str, parameters: Sequence[Any]) -> list[Any]:
    """Rows of a read-only SQLite statement run by the driver on the session's own connection (and transaction)."""
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        return cursor.execute(statement, parameters).fetchall()
    finally:
        cursor.close()


def _processed(column: list[Any], processor: Any) -> list[Any]:
    """The bind processor over a column, once per distinct object (a batch shares one `now`, one topics list)."""
    done: dict[int, Any] = {}
    out = []
    for value in column:
        key = id(value)
        if key not in done:
            done[key] = processor(value)
        out.append(done[key])
    return out


_PROCESSORS: dict[tuple[str, int, tuple[str, ...]], list[Any]] = {}


def _bind_processors(table: Table, dialect: Any, names: tuple[str, ...]) -> list[Any]:
    key = (table.name, id(dialect), names)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]
    return _PROCESSORS[key]


def sightings_of(session: Session, article_ids: Iterable[int]) -> dict[int, list[ArticleSighting]]:
    """Every source that carried each article, the origin first (for "Sources: A, B" lines)."""
    result: dict[int, list[ArticleSighting]] = {}
    for chunk in _chunks(list(set(article_ids))):
        query = (select(ArticleSighting).where(ArticleSighting.article_id.in_(chunk))
                 .options(selectinload(ArticleSighting.source)).order_by(ArticleSighting.seen_at, ArticleSighting.id))
        for sighting in session.scalars(query):
            result.setdefault(sighting.article_id, []).append(sighting)
    return result


def articles_since(session: Session, since: dt.datetime) -> list[Article]:
    return list(session.scalars(select(Article).where(Article.published_at >= since).order_by(Article.published_at, Article.id)))


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]
