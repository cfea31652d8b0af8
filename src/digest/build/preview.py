"""The upcoming edition of a list, rendered for a browser; nothing is stored or sent."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from digest.build.edition import story_view
from digest.build.select import choose_stories
from digest.config import Settings
from digest.db import stories as story_queries
from digest.db.session import Database
from digest.render.digest_email import ListView, greeting, render_digest
from digest.render.message import personalise


def preview_html(database: Database, settings: Settings, slug: str, *, now: dt.datetime, locale: str = "en") -> str:
    conf = settings.get_list(slug)
    with database.session() as session:
        candidates = story_queries.recent_stories(session, now - dt.timedelta(days=settings.group.window_days))
        stories = choose_stories(candidates, now=now, topics=conf.topics, limit=conf.max_stories)
        related = story_queries.stories_by_id(session, sorted({r for s in stories for r in s.related_story_ids}))
        views = [story_view(s, related) for s in stories]
    date_label = now.astimezone(ZoneInfo(conf.timezone)).strftime("%Y-%m-%d")
    subject = f"{conf.name} · {date_label}" + (f": {views[0].headline}" if views else "")
    body = render_digest(views, ListView(conf.name, conf.slug, conf.address, sender=parseaddr(conf.from_)[0]), locale=locale, date_label=date_label,
                         subject=subject, override_dir=settings.templates.dir)
    greet_html, greet_text = greeting(locale, "Preview Reader")
    html, _ = personalise(body.html, body.text, body.token, greeting_html=greet_html, greeting_text=greet_text,
                          unsubscribe_url="#unsubscribe", preferences_url="#preferences")
    return html
