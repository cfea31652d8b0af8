"""One source, start to finish, off the main thread: fetch (politely), parse, full text, fingerprints.

Nothing here touches the database: a worker gets a `Plan` (plain values) and
returns a `Gathered`; the orchestrator stores it. Any exception becomes the
source's error, so one bad feed can only ever fail itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from digest.config import GatherSettings
from digest.errors import ParseError, SourceError
from digest.gather.clean import clean_text
from digest.gather.fetch import FEED_ACCEPT, PAGE_ACCEPT, SourceGone, Throttled, fetch
from digest.gather.items import FetchResult, Item
from digest.gather.parsejob import add_fingerprints, extract, parse_feed
from digest.gather.polite import HostGate
from digest.gather.sitemap import Entry, Sitemap, looks_like_sitemap, newest_children, read_sitemap

log = logging.getLogger(__name__)
T = TypeVar("T")


class Runner:
    """Runs parse jobs in the pool of parse processes, or in the calling thread when there is none (or it broke)."""

    def __init__(self, pool: Executor | None = None) -> None:
        self._pool = pool
        self._lock = threading.Lock()

    def __call__(self, job: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        pool = self._pool
        if pool is not None:
            try:
                return pool.submit(job, *args, **kwargs).result()
            except BrokenProcessPool:  # a parse process died (killed, out of memory): parse here from now on
                with self._lock:
                    if self._pool is pool:
                        log.warning("a parse process died; parsing in the gathering process for the rest of the run")
                        self._pool = None
        return job(*args, **kwargs)


@dataclass
class Plan:
    source_id: int
    name: str
    url: str
    kind: str
    etag: str | None = None
    last_modified: str | None = None
    full_text: bool = False
    # For full text and sitemaps: pages of items seen before are not fetched again.
    known_guids: frozenset[str] = frozenset()

    @property
    def knows_guids(self) -> bool:
        """Whether `known_guids` was read for this plan (full-text and sitemap sources)."""
        return self.full_text or self.kind == "sitemap"


@dataclass
class Gathered:
    plan: Plan
    result: FetchResult | None = None
    items: list[Item] = field(default_factory=list)
    parsed: int = 0  # items in the feed, before the age filter
    error: str = ""
    gone: bool = False
    retry_after: float | None = None
    status: int | None = None
    pages: int = 0
    page_errors: list[str] = field(default_factory=list)
    elapsed_ms: int = 0
    extra: dict[str, str] = field(default_factory=dict)  # merged into the outcome's extra


@dataclass
class Context:
    settings: GatherSettings
    client: httpx.Client
    gate: HostGate
    oldest: dt.datetime
    run: Runner = field(default_factory=Runner)
    # GUIDs a source carried before, read on demand (a kind = "auto" source that turns out to be a sitemap).
    known_guids: Callable[[int], frozenset[str]] | None = None


def gather_one(plan: Plan, ctx: Context) -> Gathered:
    started = time.perf_counter()
    out = Gathered(plan)
    try:
        accept = PAGE_ACCEPT if plan.kind == "page" else FEED_ACCEPT
        with ctx.gate.enter(plan.url):
            result = fetch(plan.url, ctx.settings, etag=plan.etag, last_modified=plan.last_modified, client=ctx.client,
                           accept=accept)
        out.result, out.status = result, result.status
        if not result.not_modified and (plan.kind == "sitemap" or (plan.kind == "auto"
                                                                    and looks_like_sitemap(result.body))):
            _sitemap(out, result, ctx)
        elif not result.not_modified:
            out.parsed, out.items = ctx.run(parse_feed, result.body, kind=plan.kind,
                                            base_url=result.final_url or plan.url, content_type=result.content_type,
                                            max_items=ctx.settings.max_items, oldest=ctx.oldest,
                                            with_fingerprints=not plan.full_text)
            if plan.full_text:
                _full_text(out, ctx)
                add_fingerprints(out.items)
    except SourceGone as exc:
        out.error, out.gone, out.status = str(exc), True, 410
    except Throttled as exc:
        out.error, out.retry_after = str(exc), exc.retry_after
    except SourceError as exc:
        out.error = str(exc) or exc.__class__.__name__
    except Exception as exc:  # a parser bug must not take the run down
        log.exception("unexpected error gathering %s", plan.name)
        out.error = f"internal error: {exc.__class__.__name__}: {clean_text(str(exc))[:200]}"
    out.elapsed_ms = int((time.perf_counter() - started) * 1000)
    return out


def _full_text(out: Gathered, ctx: Context) -> None:
    """Summary-only feeds: fetch the page of each item not seen before and take its article text."""
    from digest.gather.page import enrich

    todo = [i for i in out.items if i.url and i.guid not in out.plan.known_guids][:ctx.settings.full_text_pages]
    for item in todo:
        try:
            with ctx.gate.enter(item.url):
                page = fetch(item.url, ctx.settings, client=ctx.client, accept=PAGE_ACCEPT)
            enrich(item, ctx.run(extract, page.body, page.final_url or item.url))
            out.pages += 1
        except SourceError as exc:  # the feed's own summary still stands
            out.page_errors.append(f"{item.url}: {exc}")


def _sitemap(out: Gathered, result: FetchResult, ctx: Context) -> None:
    """A sitemap source: follow an index's newest children, then fetch the page of each recent URL not carried
    before (at most `full_text_pages` per run, newest first) through the article-page path."""
    settings, plan = ctx.settings, out.plan
    read = {"oldest": ctx.oldest, "max_bytes": settings.max_bytes}
    top: Sitemap = ctx.run(read_sitemap, result.body, result.final_url or plan.url, **read)
    urlsets = [top] if not top.index else []
    errors: list[str] = []
    if top.index:
        children = newest_children(top.children)
        for child in children:
            try:
                with ctx.gate.enter(child.url):
                    got = fetch(child.url, settings, client=ctx.client, accept=FEED_ACCEPT)
                sitemap: Sitemap = ctx.run(read_sitemap, got.body, got.final_url or child.url, **read)
                if sitemap.index:
                    raise ParseError("a sitemap index inside a sitemap index is not followed")
                urlsets.append(sitemap)
            except SourceError as exc:
                errors.append(f"{child.url}: {exc}")
        if children and not urlsets:
            raise ParseError(f"no child sitemap could be read: {errors[0]}")
        out.extra["sitemaps"] = f"{len(urlsets)} of {len(top.children)} listed"
        if errors:
            out.extra["sitemap_errors"] = f"{len(errors)}: {errors[0]}"[:500]
    out.parsed = sum(s.listed for s in urlsets)
    entries = list({e.url: e for s in reversed(urlsets) for e in reversed(s.entries)}.values())[::-1]
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: e.published_at or floor, reverse=True)  # newest first; undated last (stable)
    entries = entries[:settings.max_items]
    known = plan.known_guids if plan.knows_guids else ctx.known_guids(plan.source_id) if ctx.known_guids else frozenset()
    todo = [e for e in entries if e.url not in known]
    fetching = todo[:settings.full_text_pages]
    old = sum(s.old for s in urlsets)
    skipped = 0
    for entry in fetching:
        item = _sitemap_item(out, entry, ctx)
        if item is None:
            skipped += 1
        elif item.published_at is not None and item.published_at < ctx.oldest:
            old += 1
        else:
            out.items.append(item)
    add_fingerprints(out.items)
    deferred = len(todo) - len(fetching)
    counts = {"sitemap_old": old, "sitemap_skipped": skipped, "sitemap_deferred": deferred,
              "sitemap_invalid": sum(s.invalid for s in urlsets) + top.invalid * top.index}
    out.extra.update({key: str(value) for key, value in counts.items() if value})
    if top.index or deferred or skipped:
        # Asked again in full next time: an index stays the same while its children change, and URLs left for
        # the next run (over the page cap, or a failed page without a news:title) are only found by reading it.
        result.etag = result.last_modified = None


def _sitemap_item(out: Gathered, entry: Entry, ctx: Context) -> Item | None:
    """The article at a sitemap URL; if its page fails, an item of the news:title alone, or None without one."""
    try:
        with ctx.gate.enter(entry.url):
            page = fetch(entry.url, ctx.settings, client=ctx.client, accept=PAGE_ACCEPT)
        article: Item = ctx.run(extract, page.body, page.final_url or entry.url)
        out.pages += 1
    except SourceError as exc:
        out.page_errors.append(f"{entry.url}: {exc}")
        if not entry.title:
            return None
        return Item(guid=entry.url, url=entry.url, title=entry.title, language=entry.language,
                    published_at=entry.published_at)
    article.guid = entry.url  # the sitemap's URL: the same GUID every run, whatever the page calls itself
    article.url = article.url or entry.url
    article.title = entry.title or article.title
    article.language = entry.language or article.language
    article.published_at = entry.published_at or article.published_at
    return article
