"""Gather: fetch every enabled source, parse, sanitise, dedupe, store.

`gather_sources()` is the stage's one entry point. Workers (worker.py) fetch and
parse concurrently — at most `concurrency` in flight, `per_host` per host, spaced
by `host_delay` — while this thread stores each finished source in its own
transaction. A failing source is recorded against that source (with the reason)
and never stops the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed

from sqlalchemy.orm import Session

from digest.config import Settings
from digest.db import articles as article_queries
from digest.db import sources as source_queries
from digest.db.models import Source, utcnow
from digest.db.session import Database
from digest.gather.dedupe import NearDuplicateIndex
from digest.gather.fetch import make_client
from digest.gather.items import Item, SourceOutcome
from digest.gather.polite import HostGate, interleave_by_host
from digest.gather.store import Stored, store_items
from digest.gather.worker import Context, Gathered, Plan, gather_one

log = logging.getLogger(__name__)

__all__ = ["gather_sources", "SourceOutcome", "Item"]


def gather_sources(database: Database, settings: Settings, *, now: dt.datetime | None = None,
                   progress: Callable[[SourceOutcome], None] | None = None) -> list[SourceOutcome]:
    """Gather every enabled source once; one outcome per configured source, in config order."""
    now = now or utcnow()
    gather = settings.gather
    oldest = now - dt.timedelta(days=gather.max_age_days)
    full_text = {s.name for s in settings.sources if s.fetch_full_text}
    with database.session() as session:
        sources = source_queries.sync_sources(session, settings.sources)
        order = {s.name: position for position, s in enumerate(sources)}
        outcomes = [o for s in sources if (o := _skip(s, now)) is not None]
        plans = [_plan(session, s, s.name in full_text) for s in sources if _skip(s, now) is None]
        index = NearDuplicateIndex(gather.near_duplicate)
        for article_id, signature in article_queries.recent_fingerprints(session, oldest):
            index.add(article_id, signature)
    for outcome in outcomes:
        _report(outcome, progress)

    with make_client(gather) as client, ThreadPoolExecutor(max_workers=gather.concurrency,
                                                           thread_name_prefix="gather") as pool:
        context = Context(gather, client, HostGate(gather.per_host, gather.host_delay), oldest)
        futures = [pool.submit(gather_one, plans[i], context) for i in interleave_by_host([p.url for p in plans])]
        for future in as_completed(futures):
            outcome = _store(database, future.result(), now, index)
            outcomes.append(outcome)
            _report(outcome, progress)
    return sorted(outcomes, key=lambda o: order.get(o.source, len(order)))


def _skip(source: Source, now: dt.datetime) -> SourceOutcome | None:
    if not source.enabled:
        return SourceOutcome(source=source.name, ok=True, status="disabled")
    if source.retired_at:
        return SourceOutcome(source=source.name, ok=True, status="retired", error=source.last_error or "")
    if source.next_fetch_at and source.next_fetch_at > now:
        return SourceOutcome(source=source.name, ok=True, status="waiting", retry_at=source.next_fetch_at.isoformat())
    return None


def _plan(session: Session, source: Source, full_text: bool) -> Plan:
    # Pages are fetched only for items this source has not carried before.
    known = frozenset(article_queries.guids_seen_at(session, source.id)) if full_text else frozenset()
    return Plan(source.id, source.name, source.url, source.kind, source.etag, source.last_modified, full_text, known)


def _store(database: Database, got: Gathered, now: dt.datetime, index: NearDuplicateIndex) -> SourceOutcome:
    plan = got.plan
    stored = Stored()
    outcome = SourceOutcome(source=plan.name, ok=not got.error, status="ok", error=got.error, seen_items=got.parsed,
                            elapsed_ms=got.elapsed_ms, http_status=got.status, pages=got.pages)
    if got.page_errors:
        outcome.extra["page_errors"] = f"{len(got.page_errors)}: {got.page_errors[0]}"[:500]
    try:
        with database.session() as session:
            source = session.get(Source, plan.source_id)
            assert source is not None
            if got.gone:
                outcome.status = "gone"
                source_queries.retire(source, now, got.error)
            elif got.retry_after is not None:
                until = now + dt.timedelta(seconds=got.retry_after)
                outcome.status, outcome.retry_at = "throttled", until.isoformat()
                source_queries.defer(source, now, until, got.error, status=got.status)
            elif got.error or got.result is None:
                outcome.status = "error"
                source_queries.record_failure(source, now, got.error, status=got.status)
            else:
                result = got.result
                stored = store_items(session, source, got.items, now, index)
                outcome.new_items, outcome.duplicates = stored.new, stored.duplicates
                outcome.status = "not-modified" if result.not_modified else "ok"
                if result.moved_to and result.moved_to != source.url:
                    source_queries.move(source, result.moved_to)
                    outcome.moved_to = result.moved_to
                source_queries.record_success(source, now, etag=result.etag, last_modified=result.last_modified,
                                              seen=stored.first_seen, status=result.status)
        for article_id, signature in stored.fingerprints:  # only once committed: no phantom ids in the index
            index.add(article_id, signature)
    except Exception as exc:  # storing must not stop the run either: record it against the source
        log.exception("could not store %s", plan.name)
        outcome.ok, outcome.status, outcome.error = False, "error", f"could not store: {exc.__class__.__name__}: {exc}"[:500]
        with database.session() as session:
            source = session.get(Source, plan.source_id)
            if source is not None:
                source_queries.record_failure(source, now, outcome.error)
    if outcome.ok:
        log.info("source %s: %s, %d items, %d new, %d duplicates", plan.name, outcome.status, outcome.seen_items,
                 outcome.new_items, outcome.duplicates)
    else:
        log.warning("source %s failed: %s", plan.name, outcome.error)
    return outcome


def _report(outcome: SourceOutcome, progress: Callable[[SourceOutcome], None] | None) -> None:
    if progress:
        progress(outcome)
