"""`group_recent`: assign recent articles to stories and attach related coverage.

The clustering itself lives in `cluster.py` and knows nothing of the database.
`group_recent` is incremental: articles that already have a story keep it (the
window's grouped articles are indexed with their stored story ids as labels),
and only the new ones are placed, each joining an existing story or starting
one (`StoryIndex.add`). Story ids therefore never change from run to run, and a
run costs indexing the window plus placing the new articles, not a regrouping.
The first run over an ungrouped window clusters it in one go (average link).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

from digest.config import Settings
from digest.db import stories as story_queries
from digest.db.models import Article, Story, utcnow
from digest.db.session import Database
from digest.group.cluster import GroupSettings, StoryIndex
from digest.group.documents import Doc

log = logging.getLogger(__name__)


@dataclass
class GroupReport:
    articles: int
    stories: int
    new_stories: int


def group_recent(database: Database, settings: Settings, *, now: dt.datetime | None = None) -> GroupReport:
    now = now or utcnow()
    window = dt.timedelta(days=settings.group.window_days)
    with database.session() as session:
        articles = story_queries.articles_in_window(session, now - window)
        if not articles:
            return GroupReport(0, 0, 0)
        docs = [Doc(id=str(a.id), title=a.title, text=a.text, published=a.published_at, url=a.url, source=a.source.name)
                for a in articles]
        known = {str(a.id): a.story_id for a in articles if a.story_id is not None}
        index = StoryIndex(dataclasses.replace(GroupSettings(), window=window))
        if known:
            index.fit([d for d in docs if d.id in known], stories=known)
            grouping = index.add([d for d in docs if d.id not in known])
        else:
            grouping = index.fit(docs)
        by_id = {str(a.id): a for a in articles}
        labels = set(known.values())
        existing = story_queries.stories_by_id(session, sorted(labels), with_articles=False)
        story_for_label: dict[int, Story] = {}
        new_stories = 0
        for label, members in sorted(grouping.stories().items()):
            member_articles = [by_id[m] for m in members]
            story = existing.get(label) if label in labels else None
            if story is None:
                story = Story(headline="", first_seen_at=min(a.published_at for a in member_articles))
                session.add(story)
                session.flush()
                new_stories += 1
            fresh = [a for a in member_articles if a.story_id != story.id]
            for article in fresh:
                article.story_id = story.id
            if fresh:
                _describe(story, member_articles)
            story_for_label[label] = story
        stories = grouping.stories()
        for label, story in story_for_label.items():
            related: list[int] = []
            for member in stories[label]:
                for other in grouping.related.get(member, []):
                    other_story = story_for_label[grouping.story_of[other]]
                    if other_story.id != story.id and other_story.id not in related:
                        related.append(other_story.id)
            if story.related_story_ids != related[:5]:
                story.related_story_ids = related[:5]
        log.info("grouped %d articles into %d stories (%d new)", len(articles), len(story_for_label), new_stories)
        return GroupReport(len(articles), len(story_for_label), new_stories)


def _describe(story: Story, articles: list[Article]) -> None:
    """Headline and summary from the earliest article that has them; topics from every article."""
    ordered = sorted(articles, key=lambda a: (a.published_at, a.id))
    lead = next((a for a in ordered if a.title), ordered[0])
    story.headline = lead.title
    story.summary = next((a.text for a in ordered if a.text), "")[:600]
    story.topics = sorted({t for a in articles for t in (a.topics or [])})
    story.last_updated_at = max(a.published_at for a in articles)
