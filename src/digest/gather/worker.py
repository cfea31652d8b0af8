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
from digest.errors import SourceError
from digest.gather.clean import clean_text
from digest.gather.fetch import FEED_ACCEPT, PAGE_ACCEPT, SourceGone, Throttled, fetch
from digest.gather.items import FetchResult, Item
from digest.gather.parsejob import add_fingerprints, extract, parse_feed
from digest.gather.polite import HostGate

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
    run: Runner = field(default_factory=Runner)


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
