"""Gather: fetch every enabled source, parse, sanitise, dedupe, store.

`gather_sources()` is the stage's one entry point. A failing source is recorded
against that source (with the reason) and never stops the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from digest.config import Settings
from digest.db import articles as article_queries
from digest.db import sources as source_queries
from digest.db.models import Source, utcnow
from digest.db.session import Database
from digest.errors import SourceError
from digest.gather.fetch import fetch
from digest.gather.items import FetchResult, Item, SourceOutcome
from digest.gather.parse import parse

log = logging.getLogger(__name__)

__all__ = ["gather_sources", "SourceOutcome"]


def gather_sources(database: Database, settings: Settings, *, now: dt.datetime | None = None,
                   progress: Callable[[SourceOutcome], None] | None = None) -> list[SourceOutcome]:
    now = now or utcnow()
    with database.session() as session:
        sources = source_queries.sync_sources(session, settings.sources)
        plan = [(s.id, s.name, s.url, s.kind, s.etag, s.last_modified) for s in sources if s.enabled and not s.retired_at]
        skipped = [SourceOutcome(source=s.name, ok=True, status="retired" if s.retired_at else "disabled")
                   for s in sources if not s.enabled or s.retired_at]

    def work(entry: tuple[int, str, str, str, str | None, str | None]) -> tuple[int, SourceOutcome, FetchResult | None, list[Item]]:
        source_id, name, url, kind, etag, last_modified = entry
        started = time.perf_counter()
        try:
            result = fetch(url, settings.gather, etag=etag, last_modified=last_modified, client=client)
            items = [] if result.not_modified else parse(result.body, kind=kind, base_url=result.final_url or url,
                                                          content_type=result.content_type)
            outcome = SourceOutcome(source=name, ok=True, status="not-modified" if result.not_modified else "ok",
                                    seen_items=len(items))
            return source_id, outcome, result, items
        except SourceError as exc:
            return source_id, SourceOutcome(source=name, ok=False, status="error", error=str(exc)), None, []
        except Exception as exc:  # a parser bug must not take the run down
            log.exception("unexpected error gathering %s", name)
            return source_id, SourceOutcome(source=name, ok=False, status="error", error=f"internal error: {exc!r}"), None, []
        finally:
            elapsed = int((time.perf_counter() - started) * 1000)
            log.debug("gathered %s in %d ms", name, elapsed)

    outcomes: list[SourceOutcome] = list(skipped)
    with httpx.Client(timeout=settings.gather.timeout, follow_redirects=True, max_redirects=5) as client, \
            ThreadPoolExecutor(max_workers=settings.gather.concurrency) as pool:
        for source_id, outcome, result, items in pool.map(work, plan):
            with database.session() as session:
                source = session.get(Source, source_id)
                assert source is not None
                if outcome.ok and result is not None:
                    outcome.new_items = article_queries.store_items(session, source, _recent(items, now, settings), now)
                    source_queries.record_success(source, now, etag=result.etag, last_modified=result.last_modified,
                                                  seen=len(items))
                    if result.permanent_redirect and result.final_url:
                        source.url = result.final_url
                    log.info("source %s: %d items, %d new", outcome.source, outcome.seen_items, outcome.new_items)
                else:
                    source_queries.record_failure(source, now, outcome.error)
                    log.warning("source %s failed: %s", outcome.source, outcome.error)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    return outcomes


def _recent(items: list[Item], now: dt.datetime, settings: Settings) -> list[Item]:
    oldest = now - dt.timedelta(days=settings.gather.max_age_days)
    return [i for i in items if i.published_at is None or i.published_at >= oldest]
