"""The production path: `group_recent` groups incrementally on a real SQLite database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from digest.config import DatabaseSettings, Settings
from digest.db.models import Article, Source, Story
from digest.db.session import Database, open_database
from digest.group import group_recent
from digest.group.cluster import StoryIndex, group_documents
from digest.group.documents import Doc
from test_group_cluster import QUAKE_CHILE, QUAKE_IRAN, corpus, rewrite

WILDFIRE = ("A wildfire driven by strong winds forced 2,000 residents of hillside neighbourhoods near "
            "Valparaiso to leave their homes on Friday, firefighters said, as aircraft dropped water on the flames.")
NOW = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)

LATER = [
    Doc("iran-afp", "Ten killed as quake strikes Iran's Qeshm island", rewrite(
        QUAKE_IRAN, "An earthquake of magnitude 6.1 killed ten people on Qeshm island, Iran.")),
    Doc("chile-lt", "Tocopilla counts damage after magnitude 7.8 quake", rewrite(
        QUAKE_CHILE, "Tocopilla, in northern Chile, counted the damage after a 7.8 earthquake.")),
    Doc("wildfire", "Wildfire forces evacuation near Valparaiso", WILDFIRE),
]


def partition(story_of: dict[str, int]) -> set[frozenset[str]]:
    members: dict[int, set[str]] = {}
    for doc_id, label in story_of.items():
        members.setdefault(label, set()).add(doc_id)
    return {frozenset(m) for m in members.values()}


def test_add_gives_the_same_stories_as_a_full_regroup() -> None:
    index = StoryIndex()
    index.fit(corpus())
    incremental = index.add(LATER)
    assert partition(incremental.story_of) == partition(group_documents(corpus() + LATER).story_of)


def test_fit_with_stored_labels_keeps_them_and_places_new_articles() -> None:
    labels = {d.id: 100 + k for k, d in enumerate(corpus())}
    for same in ("iran-reuters", "iran-bbc"):
        labels[same] = labels["iran-ap"]
    labels["chile-efe"] = labels["chile-ap"]
    index = StoryIndex()
    index.fit(corpus(), stories=labels)
    grouping = index.add(LATER)
    assert {d: grouping.story_of[d] for d in labels} == labels
    assert grouping.story_of["iran-afp"] == labels["iran-ap"]
    assert grouping.story_of["chile-lt"] == labels["chile-ap"]
    assert grouping.story_of["wildfire"] not in labels.values()


def _database(tmp_path: Path) -> tuple[Database, Settings]:
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'group.db'}"))
    return open_database(settings.database.url), settings


def _store(database: Database, docs: list[Doc], hours_ago: float) -> None:
    with database.session() as session:
        source = session.scalar(select(Source).where(Source.name == "wire"))
        if source is None:
            source = Source(name="wire", url="https://wire.example/feed")
            session.add(source)
            session.flush()
        for d in docs:
            session.add(Article(source_id=source.id, guid=d.id, url=f"https://wire.example/{d.id}", title=d.title,
                                text=d.text, published_at=NOW - dt.timedelta(hours=hours_ago)))


def _stories(database: Database) -> dict[str, int]:
    with database.session() as session:
        return {a.guid: a.story_id for a in session.scalars(select(Article))}


def test_group_recent_is_incremental_and_keeps_story_ids(tmp_path: Path) -> None:
    database, settings = _database(tmp_path)
    _store(database, corpus(), hours_ago=5)
    first = group_recent(database, settings, now=NOW)
    assert first.articles == len(corpus()) and first.new_stories == first.stories
    before = _stories(database)
    assert before["iran-ap"] == before["iran-reuters"] == before["iran-bbc"] != before["chile-ap"]

    _store(database, LATER, hours_ago=1)
    second = group_recent(database, settings, now=NOW)
    after = _stories(database)
    assert {k: after[k] for k in before} == before  # earlier articles never move
    assert after["iran-afp"] == before["iran-ap"] and after["chile-lt"] == before["chile-ap"]
    assert second.new_stories == 1  # only the wildfire is a new story
    # The same stories as grouping everything at once.
    assert partition(after) == partition(group_documents(corpus() + LATER).story_of)
    with database.session() as session:
        iran = session.get(Story, before["iran-ap"])
        assert iran is not None and iran.related_story_ids == [before["chile-ap"]]
        assert session.get(Story, before["kpop"]).related_story_ids == []

    third = group_recent(database, settings, now=NOW)  # nothing new: nothing changes
    assert third.new_stories == 0 and _stories(database) == after
