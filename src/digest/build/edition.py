"""Building an edition: pick stories, compile each variant once, enqueue one delivery per subscriber."""

from __future__ import annotations

import datetime as dt
import logging
from email.utils import parseaddr
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from digest.build.select import choose_stories
from digest.config import ListConfig, Settings
from digest.db import audience as audience_queries
from digest.db import editions as edition_queries
from digest.db import stories as story_queries
from digest.db.models import Edition, EditionVariant, MailingList, Story
from digest.db.session import Database
from digest.gather.clean import safe_link
from digest.render.digest_email import ListView, SourceLink, StoryView, render_digest
from digest.schedule.periods import Period, current_period, local_hour_after

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    list: str
    period: str
    edition_id: int
    created: bool
    status: str
    stories: int = 0
    variants: int = 0
    enqueued: int = 0
    skip_reason: str = ""
    subject: str = ""
    kind: str = "daily"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_edition(database: Database, settings: Settings, slug: str, *, now: dt.datetime,
                  period: Period | None = None, kind: str = "daily") -> BuildReport:
    """Build (once) and enqueue the `kind` edition of a list for a period.

    daily: every subscriber (or only daily-frequency ones when the list fires daily or more often).
    weekly: the week's stories for weekly-frequency subscribers whose weekday is the period's weekday.
    """
    conf = settings.get_list(slug)
    period = period or current_period(conf.schedule, conf.timezone, now)
    key = period.key if kind == "daily" else f"W:{period.key}"
    with database.session() as session:
        lists = audience_queries.sync_lists(session, settings.lists)
        mailing_list = lists[slug]
        edition, created = edition_queries.get_or_create_edition(session, mailing_list, key, now, kind)
        if created:
            _compose(session, settings, conf, mailing_list, edition, period, now)
        enqueued = 0
        if edition.status in ("ready", "sending"):
            # Enqueue also on a repeat: subscribers confirmed since the first run get this edition too.
            _ensure_variants(session, settings, conf, mailing_list, edition)
            audience = _audience(conf, period, kind)
            buckets = edition_queries.delivery_buckets(session, edition, **audience)
            due = {b: now if b[1] is None else local_hour_after(period.starts_at, b[0], b[1]) for b in buckets}
            enqueued = edition_queries.enqueue(session, edition, now, due=due, **audience)
            if enqueued:
                log.info("edition %s/%s: %d deliveries enqueued", slug, key, enqueued)
        return BuildReport(list=slug, period=key, edition_id=edition.id, created=created, status=edition.status,
                           stories=len(edition.story_ids), variants=len(edition.variants), enqueued=enqueued,
                           skip_reason=edition.skip_reason, subject=edition.subject, kind=kind)


def build_due(database: Database, settings: Settings, slug: str, *, now: dt.datetime,
              period: Period | None = None) -> list[BuildReport]:
    """Every edition of a list that belongs to this period: the regular one, plus a weekly one on a day
    that weekly-frequency subscribers chose (only for lists that fire daily or more often)."""
    conf = settings.get_list(slug)
    period = period or current_period(conf.schedule, conf.timezone, now)
    reports = [build_edition(database, settings, slug, now=now, period=period)]
    if period.length <= dt.timedelta(days=1, hours=1):
        weekday = period.starts_at.astimezone(ZoneInfo(conf.timezone)).weekday()
        with database.session() as session:
            mailing_list = audience_queries.list_by_slug(session, slug)
            wanted = mailing_list is not None and edition_queries.has_weekly_subscribers(session, mailing_list.id, weekday)
        if wanted:
            reports.append(build_edition(database, settings, slug, now=now, period=period, kind="weekly"))
    return reports


def _audience(conf: ListConfig, period: Period, kind: str) -> dict[str, int | str | None]:
    if kind == "weekly":
        weekday = period.starts_at.astimezone(ZoneInfo(conf.timezone)).weekday()
        return {"frequency": "weekly", "weekly_day": weekday}
    if period.length <= dt.timedelta(days=1, hours=1):
        return {"frequency": "daily", "weekly_day": None}
    return {"frequency": None, "weekly_day": None}  # a weekly (or rarer) list: its editions go to everyone


def _compose(session: Session, settings: Settings, conf: ListConfig, mailing_list: MailingList, edition: Edition,
             period: Period, now: dt.datetime) -> None:
    if edition.kind == "weekly":
        previous, since, already_sent = None, now - dt.timedelta(days=7), set()
    else:
        previous = edition_queries.previous_edition(session, edition)
        since = previous.created_at if previous else now - max(period.length, dt.timedelta(days=1))
        already_sent = set(previous.story_ids) if previous else set()
    candidates = [s for s in story_queries.recent_stories(session, since)
                  if s.id not in already_sent or (previous and s.last_updated_at > previous.created_at)]
    stories = choose_stories(candidates, now=now, topics=conf.topics, limit=conf.max_stories)
    if len(stories) < max(conf.min_stories, 1):
        edition.status = "skipped"
        edition.skip_reason = f"{len(stories)} new stories since {since:%Y-%m-%d %H:%M} UTC, list needs {max(conf.min_stories, 1)}"
        audience_queries.record_event(session, "edition_skipped", edition_id=edition.id, reason=edition.skip_reason)
        log.info("edition %s/%s skipped: %s", conf.slug, period.key, edition.skip_reason)
        return
    edition.story_ids = [s.id for s in stories]
    edition.subject = f"{conf.name} · {now.astimezone(ZoneInfo(conf.timezone)):%Y-%m-%d}: {stories[0].headline}"[:200]
    edition.status = "ready"
    log.info("edition %s/%s: %d stories chosen", conf.slug, period.key, len(stories))


def _ensure_variants(session: Session, settings: Settings, conf: ListConfig, mailing_list: MailingList,
                     edition: Edition) -> int:
    """Compile a body for every (topics, locale) choice that has none yet; returns how many were compiled."""
    have = {v.variant_key for v in edition.variants}
    wanted = [(edition_queries.variant_key(k, loc), topics, loc)
              for k, topics, loc in edition_queries.variant_choices(session, mailing_list.id)]
    missing = [w for w in wanted if w[0] not in have]
    if not missing:
        return 0
    stories = story_queries.stories_by_id(session, edition.story_ids)
    # A story emptied by a concurrent regrouping since the edition was chosen is left out, not crashed on.
    ordered = [stories[i] for i in edition.story_ids if i in stories and stories[i].articles]
    related = story_queries.stories_by_id(session, sorted({r for s in ordered for r in s.related_story_ids}))
    views = [story_view(s, related) for s in ordered]
    date_label = edition.created_at.astimezone(ZoneInfo(conf.timezone)).strftime("%Y-%m-%d")
    list_view = ListView(name=conf.name, slug=conf.slug, address=conf.address, sender=parseaddr(conf.from_)[0])
    for key, topics, locale in missing:
        chosen = [v for v in views if not topics or set(topics) & set(v.topics)]
        if not chosen:
            session.add(EditionVariant(edition_id=edition.id, variant_key=key, subject="", html="", text="",
                                       placeholder_token="", story_ids=[]))
            continue
        body = render_digest(chosen, list_view, locale=locale, date_label=date_label,
                             subject=f"{conf.name} · {date_label}: {chosen[0].headline}"[:200],
                             override_dir=settings.templates.dir)
        session.add(EditionVariant(edition_id=edition.id, variant_key=key, subject=body.subject, html=body.html,
                                   text=body.text, placeholder_token=body.token, story_ids=[v.id for v in chosen]))
    session.flush()
    session.refresh(edition)
    log.info("edition %s/%s: %d variants compiled", conf.slug, edition.period, len(missing))
    return len(missing)


def story_view(story: Story, related: dict[int, Story]) -> StoryView:
    articles = sorted(story.articles, key=lambda a: (a.published_at, a.id))
    lead = next((a for a in articles if a.title == story.headline and safe_link(a.url)), articles[0])
    sources: list[SourceLink] = []
    seen: set[str] = set()
    for article in articles:
        carried = [(article.source.name, article.url)] + [(s.source.name, s.url or article.url) for s in article.sightings]
        for name, url in carried:
            if name not in seen and safe_link(url):
                seen.add(name)
                sources.append(SourceLink(name, url))
    related_links = []
    for rid in story.related_story_ids[:3]:
        other = related.get(rid)
        if other and other.articles:
            url = next((a.url for a in other.articles if safe_link(a.url)), "")
            if url:
                related_links.append(SourceLink(other.headline, url))
    summary = story.summary
    if len(summary) > 320:
        summary = summary[:319].rsplit(" ", 1)[0] + "…"
    return StoryView(id=story.id, headline=story.headline, url=safe_link(lead.url), summary=summary,
                     image_url=lead.image_url, topics=list(story.topics), sources=sources, related=related_links)
