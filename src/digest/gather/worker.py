"""One source, start to finish, off the main thread: fetch (politely), parse, full text, fingerprints.

Nothing here touches the database: a worker gets a `Plan` (plain values) and
returns a `Gathered`; the orchestrator stores it. Any exception becomes the
source's error, so one bad feed can only ever fail itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import httpx

from digest.config import GatherSettings
from digest.errors import SourceError
from digest.gather.clean import clean_text
from digest.gather.dedupe import fingerprint
from digest.gather.fetch import FEED_ACCEPT, PAGE_ACCEPT, SourceGone, Throttled, fetch
from digest.gather.items import FetchResult, Item
from digest.gather.parse import parse
from digest.gather.polite import HostGate

log = logging.getLogger(__name__)


@dataclass
class Plan:
    source_id: int
    name: str
    url: str
    kind: str
    etag: str | None = None
    last_modified: str | None = None
    full_text: bool = False
    known_guids: frozenset[str] = frozenset()  # for full text: pages of items seen before are not fetched again


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


@dataclass
class Context:
    settings: GatherSettings
    client: httpx.Client
    gate: HostGate
    oldest: dt.datetime


def gather_one(plan: Plan, ctx: Context) -> Gathered:
    started = time.perf_counter()
    out = Gathered(plan)
    try:
        accept = PAGE_ACCEPT if plan.kind == "page" else FEED_ACCEPT
        with ctx.gate.enter(plan.url):
            result = fetch(plan.url, ctx.settings, etag=plan.etag, last_modified=plan.last_modified, client=ctx.client,
                           accept=accept)
        out.result, out.status = result, result.status
        if not result.not_modified:
            items = parse(result.body, kind=plan.kind, base_url=result.final_url or plan.url,
                          content_type=result.content_type, max_items=ctx.settings.max_items)
            out.parsed = len(items)
            out.items = [i for i in items if i.published_at is None or i.published_at >= ctx.oldest]
            if plan.full_text:
                _full_text(out, ctx)
            for item in out.items:
                item.fingerprint = fingerprint(item.title, item.text)
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
    from digest.gather.page import enrich, extract_page

    todo = [i for i in out.items if i.url and i.guid not in out.plan.known_guids][:ctx.settings.full_text_pages]
    for item in todo:
        try:
            with ctx.gate.enter(item.url):
                page = fetch(item.url, ctx.settings, client=ctx.client, accept=PAGE_ACCEPT)
            enrich(item, extract_page(page.body, page.final_url or item.url))
            out.pages += 1
        except SourceError as exc:  # the feed's own summary still stands
            out.page_errors.append(f"{item.url}: {exc}")
