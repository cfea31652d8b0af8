"""Parsing in a pool of processes (`[gather] parse_processes`) stores exactly what parsing in the fetching threads
stores; stores are batched (one transaction, a savepoint per source) without losing per-source failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from test_gather_http import NOW, GatherServer, by_name, gather_server, open_db, settings_for  # noqa: F401

from digest.config import SourceConfig
from digest.db.models import Article, ArticleSighting, Source
from digest.gather import gather_sources
from digest.gather.dedupe import NearDuplicateIndex, fingerprint
from digest.gather.run import POOL_MIN_SOURCES, parse_processes


def _groups(server: GatherServer) -> list[list[SourceConfig]]:
    """Sources whose items do not overlap within a group (which copy is the origin depends on timing)."""
    return [[SourceConfig(name="Wire", url=server.url("f/wire.rss.xml"), topics=["labour"]),
             SourceConfig(name="Json", url=server.url("f/feed.json")),
             SourceConfig(name="Hostile", url=server.url("f/hostile.rss.xml")),
             SourceConfig(name="Herald", url=server.url("page/article.html"), kind="page"),
             SourceConfig(name="Broken", url=server.url("f/broken/truncated.xml")),
             SourceConfig(name="Garbage", url=server.url("f/broken/garbage.xml")),
             SourceConfig(name="Missing", url=server.url("f/nope.xml"))],
            [SourceConfig(name="Summary", url=server.url("f/summary-only.rss.xml"), fetch_full_text=True),
             SourceConfig(name="Mirror", url=server.url("f/mirror.atom.xml"))]]


def _stored(database) -> list[tuple]:  # type: ignore[no-untyped-def]
    with database.session() as session:
        names = {s.id: s.name for s in session.scalars(select(Source))}
        articles = sorted((names[a.source_id], a.guid, a.url, a.title, a.summary_html, a.text, a.author, a.language,
                           a.image_url, a.published_at, tuple(a.topics), a.fingerprint)
                          for a in session.scalars(select(Article)))
        sightings = sorted((names[s.source_id], s.guid, s.how) for s in session.scalars(select(ArticleSighting)))
    return [articles, sightings]


def test_parse_processes_store_what_threads_store(tmp_path: Path, gather_server: GatherServer) -> None:
    summary = {}
    for number, group in enumerate(_groups(gather_server)):
        results = []
        for processes in (0, 2):
            database = open_db(tmp_path / f"{number}-{processes}")
            settings = settings_for(group, parse_processes=processes, max_age_days=3650)
            outcomes = by_name(gather_sources(database, settings, now=NOW))
            got = {name: (o.status, o.seen_items, o.new_items, o.duplicates, o.pages, o.error)
                   for name, o in outcomes.items()}
            results.append((got, _stored(database)))
        assert results[0] == results[1]
        summary.update(results[1][0])
    assert summary["Wire"][:3] == ("ok", 2, 2) and summary["Herald"][:3] == ("ok", 1, 1)
    assert summary["Summary"][4] == 1  # its article page was read in the pool too
    assert summary["Garbage"][0] == "error" and "HTTP 404" in summary["Missing"][5]


def test_automatic_process_count() -> None:
    settings = settings_for([])
    assert settings.gather.parse_processes == -1
    assert parse_processes(settings.gather, POOL_MIN_SOURCES - 1) == 0
    assert parse_processes(settings.gather, POOL_MIN_SOURCES) in (0, *range(2, 1025))  # one per core, if several
    assert parse_processes(settings_for([], parse_processes=3).gather, 1) == 3


def test_a_failed_batch_commit_falls_back_to_one_source_at_a_time(tmp_path: Path, gather_server: GatherServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import digest.gather.run as run

    original = run.Database.session
    failures = {"left": 1}

    def session(self):  # type: ignore[no-untyped-def]
        context = original(self)
        if failures["left"] == 0:
            return context
        failures["left"] -= 1

        class CannotCommit:
            def __enter__(self):  # type: ignore[no-untyped-def]
                self.session = context.__enter__()
                self.session.commit = lambda: (_ for _ in ()).throw(RuntimeError("disk full"))
                return self.session

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                return context.__exit__(*exc)
        return CannotCommit()

    real = run._store_batch
    calls = {"batches": 0}

    def store_batch(database, batch, now, index):  # type: ignore[no-untyped-def]
        calls["batches"] += 1
        if calls["batches"] == 1:
            failures["left"] = 2  # the first batch cannot commit, neither at once nor with a savepoint per source
            monkeypatch.setattr(run.Database, "session", session)
        return real(database, batch, now, index)

    monkeypatch.setattr(run, "_store_batch", store_batch)
    database = open_db(tmp_path)
    settings = settings_for([("Wire", gather_server.url("f/wire.rss.xml")), ("Json", gather_server.url("f/feed.json"))],
                            parse_processes=0)
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert calls["batches"] >= 1 and failures["left"] == 0
    assert outcomes["Wire"].ok and outcomes["Wire"].new_items == 2
    assert outcomes["Json"].ok and outcomes["Json"].new_items > 0
    with database.session() as session:
        assert len(session.scalars(select(Article)).all()) == outcomes["Wire"].new_items + outcomes["Json"].new_items


def test_index_remove_forgets_a_signature() -> None:
    text = " ".join(f"word{i} shared{i % 7} story{i % 3}" for i in range(40))
    signature = fingerprint("A title", text)
    assert signature is not None
    index = NearDuplicateIndex(0.8)
    index.add(1, signature)
    index.add(2, signature)
    assert index.match(signature) == (1, 1.0)
    index.remove(1)
    assert index.match(signature) == (2, 1.0) and len(index) == 1
    index.remove(2)
    index.remove(2)
    assert index.match(signature) is None and len(index) == 0


def test_one_batch_sees_its_own_urls_and_a_failing_source_is_rolled_back_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources finished together are stored in one transaction with one GUID and one URL query: a later source
    in the batch still finds the article an earlier one stored under the same URL, and a source that cannot be
    stored sends the batch round again with a savepoint per source, so only that source fails."""
    import digest.gather.run as run
    from digest.db import sources as source_queries
    from digest.gather.items import FetchResult, Item
    from digest.gather.worker import Gathered

    database = open_db(tmp_path)
    settings = settings_for([("Origin", "https://a.example/rss"), ("Copy", "https://b.example/rss"),
                             ("Flaky", "https://c.example/rss")])
    with database.session() as session:
        plans = [run._plan(session, source, False) for source in source_queries.sync_sources(session, settings.sources)]
    text = " ".join(f"port workers vote {i} on the offer" for i in range(20))
    story = Item(guid="a-1", url="https://news.example/story", title="Port vote", text=text, published_at=NOW,
                 fingerprint=fingerprint("Port vote", text))
    batch = [Gathered(plans[0], result=FetchResult(200), items=[story], parsed=1),
             Gathered(plans[1], result=FetchResult(200), items=[Item(guid="b-9", url=story.url, title="Port vote (wire)",
                                                                     text="Short.", published_at=NOW)], parsed=1),
             Gathered(plans[2], result=FetchResult(200), items=[Item(guid="c-1", url="https://c.example/x", title="C",
                                                                     text="Other news.", published_at=NOW)], parsed=1)]
    real = run.store_items

    def flaky(session, source, items, now, index, lookups=None):  # type: ignore[no-untyped-def]
        if source.name == "Flaky":
            raise RuntimeError("disk on fire")
        return real(session, source, items, now, index, lookups)

    monkeypatch.setattr(run, "store_items", flaky)
    index = NearDuplicateIndex(0.8)
    outcomes = by_name(run._store_batch(database, batch, NOW, index))
    assert (outcomes["Origin"].status, outcomes["Origin"].new_items) == ("ok", 1)
    assert (outcomes["Copy"].status, outcomes["Copy"].new_items, outcomes["Copy"].duplicates) == ("ok", 0, 1)
    assert not outcomes["Flaky"].ok and "could not store: RuntimeError: disk on fire" in outcomes["Flaky"].error
    with database.session() as session:
        articles = session.scalars(select(Article)).all()
        sightings = sorted((s.guid, s.how) for s in session.scalars(select(ArticleSighting)))
        flaky_row = session.scalars(select(Source).where(Source.name == "Flaky")).one()
    assert [a.guid for a in articles] == ["a-1"] and sightings == [("a-1", "origin"), ("b-9", "url")]
    assert flaky_row.consecutive_failures == 1 and "disk on fire" in (flaky_row.last_error or "")
    assert len(index) == 1 and index.match(articles[0].fingerprint) == (articles[0].id, 1.0)  # no rolled-back ids
