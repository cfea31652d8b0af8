"""Gather: fetch every enabled source, parse, sanitise, dedupe, store.

`gather_sources()` is the stage's one entry point. Worker threads (worker.py)
fetch concurrently — at most `concurrency` in flight, `per_host` per host, spaced
by `host_delay` — and hand the bytes to a pool of parse processes (parsejob.py;
one per core when there are enough sources), so parsing runs on every core while
this thread stores the finished sources, a batch per transaction. A failing source
is recorded against that source (with the reason) and never stops the others.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import nullcontext

from sqlalchemy.orm import Session

from digest.config import GatherSettings, Settings
from digest.db import articles as article_queries
from digest.db import sources as source_queries
from digest.db.models import Source, utcnow
from digest.db.session import Database
from digest.gather.dedupe import NearDuplicateIndex
from digest.gather.fetch import make_client
from digest.gather.items import Item, SourceOutcome
from digest.gather.parsejob import warm_up
from digest.gather.polite import HostGate, interleave_by_host
from digest.gather.store import Lookups, Stored, look_up, store_items
from digest.gather.worker import Context, Gathered, Plan, Runner, gather_one

log = logging.getLogger(__name__)

__all__ = ["gather_sources", "SourceOutcome", "Item"]

# Below this many sources to fetch, parse processes cost more to start (~0.5 s each) than they save.
POOL_MIN_SOURCES = 16


def gather_sources(database: Database, settings: Settings, *, now: dt.datetime | None = None,
                   progress: Callable[[SourceOutcome], None] | None = None) -> list[SourceOutcome]:
    """Gather every enabled source once; one outcome per configured source, in config order."""
    now = now or utcnow()
    gather = settings.gather
    # Started first: the parse processes import their modules while the plan is read from the database.
    processes = parse_processes(gather, sum(1 for s in settings.sources if s.enabled))
    with _start_pool(processes) if processes else nullcontext() as pool:
        return _gather(database, settings, now, progress, pool)


def parse_processes(gather: GatherSettings, sources: int) -> int:
    """How many parse processes to start for a run over `sources` sources (0: parse in the worker threads)."""
    if gather.parse_processes >= 0:
        return gather.parse_processes
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 and sources >= POOL_MIN_SOURCES else 0


def _start_pool(processes: int) -> ProcessPoolExecutor:
    # spawn, not fork: the caller may have threads (a scheduler, a web server) whose locks a fork would copy held.
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(processes):
        pool.submit(warm_up)
    return pool


def _gather(database: Database, settings: Settings, now: dt.datetime,
            progress: Callable[[SourceOutcome], None] | None, pool: Executor | None) -> list[SourceOutcome]:
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
                                                           thread_name_prefix="gather") as threads:
        context = Context(gather, client, HostGate(gather.per_host, gather.host_delay), oldest, Runner(pool),
                          known_guids=lambda source_id: _known_guids(database, source_id))
        futures = [threads.submit(gather_one, plans[i], context) for i in interleave_by_host([p.url for p in plans])]
        pending = set(futures)
        while pending:
            # Whatever has finished meanwhile is stored together: one transaction, one savepoint per source.
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for outcome in _store_batch(database, [future.result() for future in done], now, index):
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
    wanted = full_text or source.kind == "sitemap"
    known = frozenset(article_queries.guids_seen_at(session, source.id)) if wanted else frozenset()
    return Plan(source.id, source.name, source.url, source.kind, source.etag, source.last_modified, full_text, known)


def _known_guids(database: Database, source_id: int) -> frozenset[str]:
    """Read from a worker thread, for a kind = "auto" source that turned out to be a sitemap."""
    with database.session() as session:
        return frozenset(article_queries.guids_seen_at(session, source_id))


def _store_batch(database: Database, batch: list[Gathered], now: dt.datetime,
                 index: NearDuplicateIndex) -> list[SourceOutcome]:
    """Store finished sources in one transaction, one commit for all of them.

    First without savepoints: the sources' own rows are then flushed together at the commit, which is most of
    what storing a small source costs. If a source cannot be stored, that attempt is rolled back and the batch
    is stored again with a savepoint per source, so the failing source alone is rolled back and recorded as
    failed; if the commit itself fails, the batch is stored one source per transaction."""
    indexed: list[int] = []
    try:
        outcomes = _store_together(database, batch, now, index, indexed, savepoints=False)
    except Exception:  # a source (or the commit) failed: nothing of the batch is stored; again, a savepoint each
        log.debug("could not store a batch of %d sources at once; again with a savepoint each", len(batch),
                  exc_info=True)
        _forget(index, indexed)
        try:
            outcomes = _store_together(database, batch, now, index, indexed, savepoints=True)
        except Exception:  # the commit itself failed: go source by source
            log.exception("could not store a batch of %d sources; storing them one by one", len(batch))
            _forget(index, indexed)
            return [_store(database, got, now, index) for got in batch]
    for outcome in outcomes:
        _log(outcome)
    return outcomes


def _store_together(database: Database, batch: list[Gathered], now: dt.datetime, index: NearDuplicateIndex,
                    indexed: list[int], *, savepoints: bool) -> list[SourceOutcome]:
    outcomes: list[SourceOutcome] = []
    with database.session() as session:
        sources = source_queries.sources_by_id(session, [got.plan.source_id for got in batch])
        lookups = look_up(session, [(got.plan.source_id, got.items) for got in batch if got.items])
        for got in batch:
            outcome = _outcome(got)
            outcomes.append(outcome)
            source = sources[got.plan.source_id]
            if not savepoints:  # an exception rolls the whole batch back
                stored = _apply(session, source, got, outcome, now, index, lookups)
            else:
                try:
                    with session.begin_nested():
                        stored = _apply(session, source, got, outcome, now, index, lookups)
                except Exception as exc:  # storing must not stop the run either: record it against the source
                    _failed_to_store(outcome, exc)
                    with session.begin_nested():
                        source_queries.record_failure(source, now, outcome.error)
                    continue
            # In the index and the URL map at once: the next source in this batch is matched against these too.
            lookups.stored(stored)
            for article_id, signature in stored.fingerprints:
                index.add(article_id, signature)
                indexed.append(article_id)
    return outcomes


def _forget(index: NearDuplicateIndex, indexed: list[int]) -> None:
    """Take a rolled-back batch's articles out of the index again."""
    for article_id in indexed:
        index.remove(article_id)
    indexed.clear()


def _store(database: Database, got: Gathered, now: dt.datetime, index: NearDuplicateIndex) -> SourceOutcome:
    """One source in its own transaction."""
    outcome = _outcome(got)
    try:
        with database.session() as session:
            source = session.get(Source, got.plan.source_id)
            assert source is not None
            stored = _apply(session, source, got, outcome, now, index)
        for article_id, signature in stored.fingerprints:  # only once committed: no phantom ids in the index
            index.add(article_id, signature)
    except Exception as exc:  # storing must not stop the run either: record it against the source
        _failed_to_store(outcome, exc)
        with database.session() as session:
            source = session.get(Source, got.plan.source_id)
            if source is not None:
                source_queries.record_failure(source, now, outcome.error)
    _log(outcome)
    return outcome


def _outcome(got: Gathered) -> SourceOutcome:
    outcome = SourceOutcome(source=got.plan.name, ok=not got.error, status="ok", error=got.error,
                            seen_items=got.parsed, elapsed_ms=got.elapsed_ms, http_status=got.status, pages=got.pages)
    if got.page_errors:
        outcome.extra["page_errors"] = f"{len(got.page_errors)}: {got.page_errors[0]}"[:500]
    if got.extra:
        outcome.extra.update(got.extra)
    return outcome


def _apply(session: Session, source: Source, got: Gathered, outcome: SourceOutcome, now: dt.datetime,
           index: NearDuplicateIndex, lookups: Lookups | None = None) -> Stored:
    """What one fetch means for its source: health, moves, retirement, Retry-After, and the items stored."""
    stored = Stored()
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
        stored = store_items(session, source, got.items, now, index, lookups)
        outcome.new_items, outcome.duplicates = stored.new, stored.duplicates
        outcome.status = "not-modified" if result.not_modified else "ok"
        if result.moved_to and result.moved_to != source.url:
            source_queries.move(source, result.moved_to)
            outcome.moved_to = result.moved_to
        source_queries.record_success(source, now, etag=result.etag, last_modified=result.last_modified,
                                      seen=stored.first_seen, status=result.status)
    return stored


def _failed_to_store(outcome: SourceOutcome, exc: Exception) -> None:
    log.error("could not store %s", outcome.source, exc_info=exc)
    outcome.ok, outcome.status = False, "error"
    outcome.new_items = outcome.duplicates = 0
    outcome.moved_to = outcome.retry_at = ""
    outcome.error = f"could not store: {exc.__class__.__name__}: {exc}"[:500]


def _log(outcome: SourceOutcome) -> None:
    if outcome.ok:
        log.info("source %s: %s, %d items, %d new, %d duplicates", outcome.source, outcome.status,
                 outcome.seen_items, outcome.new_items, outcome.duplicates)
    else:
        log.warning("source %s failed: %s", outcome.source, outcome.error)


def _report(outcome: SourceOutcome, progress: Callable[[SourceOutcome], None] | None) -> None:
    if progress:
        progress(outcome)
