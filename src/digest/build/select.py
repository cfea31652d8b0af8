"""Choosing and ordering the stories of an edition."""

from __future__ import annotations

import datetime as dt
import math

from digest.db.models import Story

HALF_LIFE_HOURS = 18.0


def score(story: Story, now: dt.datetime) -> float:
    """Coverage breadth, source weight and freshness; a story many outlets carry leads."""
    sources = {a.source_id: a.source.weight for a in story.articles}
    # Syndicated copies were deduped into one article; each source that carried it still counts.
    sources.update({s.source_id: s.source.weight for a in story.articles for s in a.sightings})
    breadth = math.log2(1 + len(sources))
    weight = max(sources.values(), default=1.0)
    age_hours = max(0.0, (now - story.last_updated_at).total_seconds() / 3600)
    freshness = 0.5 ** (age_hours / HALF_LIFE_HOURS)
    return (1 + breadth) * weight * (0.3 + freshness)


def choose_stories(candidates: list[Story], *, now: dt.datetime, topics: list[str], limit: int) -> list[Story]:
    wanted = set(topics)
    eligible = [s for s in candidates if s.articles and (not wanted or wanted & set(s.topics))]
    eligible.sort(key=lambda s: (-score(s, now), s.id))
    return eligible[:limit]
