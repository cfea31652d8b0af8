"""Dedupe: within a source by GUID, across sources by canonical URL and by near-duplicate text (MinHash)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from test_gather_http import NOW, GatherServer, by_name, gather_server, open_db, settings_for, source_row  # noqa: F401

from digest.config import SourceConfig
from digest.db.articles import sightings_of
from digest.db.models import Article, ArticleSighting
from digest.gather import gather_sources
from digest.gather.dedupe import MIN_SHINGLES, NearDuplicateIndex, fingerprint, similarity

WIRE_TEXT = (
    "Forty-three fishing cooperatives on Jeju Island filed a lawsuit on Monday asking a court to halt construction "
    "of an undersea power cable that would connect a new offshore wind farm to the mainland grid, saying the planned "
    "route crosses the richest abalone and octopus grounds on the island's western coast. The cooperatives say the "
    "developer consulted only two of them before the provincial government approved the route last year."
)


def test_syndicated_copy_is_similar_and_a_different_report_is_not() -> None:
    original = fingerprint("Fishermen in Jeju sue over cable route", WIRE_TEXT)
    copy = fingerprint("Jeju fishermen sue over cable route", "By Wire Staff. " + WIRE_TEXT + " Distributed by Korea Wire.")
    other = fingerprint("Jeju cable lawsuit", "Fishing groups on Jeju went to court against a wind farm cable, arguing "
                        "the route harms abalone and octopus grounds; the developer says it followed the law and is "
                        "willing to discuss changes to the route with the cooperatives.")
    assert original and copy and other
    assert similarity(original, copy) >= 0.8
    assert similarity(original, other) < 0.3
    assert fingerprint("Short", "Headline-only items are not fingerprinted.") is None
    assert len(original) == 256 and MIN_SHINGLES > 3

    index = NearDuplicateIndex(0.8)
    index.add(7, original)
    index.add(8, other)
    match = index.match(copy)
    assert match is not None and match[0] == 7
    assert index.match(fingerprint("x", "completely unrelated words about beekeeping cooperatives and a honey "
                                        "festival in the mountains with many visitors from the coastal towns")) is None
    assert index.match(None) is None


def test_fingerprints_work_for_text_without_spaces() -> None:
    chinese = "济州岛四十三个渔业合作社周一提起诉讼要求法院停止修建连接海上风电场与大陆电网的海底电缆称规划路线穿过该岛西海岸最丰富的鲍鱼和章鱼渔场"
    a, b = fingerprint("", chinese), fingerprint("", chinese + "新华社")
    assert a and b and similarity(a, b) >= 0.8


def test_syndicated_duplicate_across_two_sources_is_one_article_seen_twice(tmp_path: Path,
                                                                          gather_server: GatherServer) -> None:
    database = open_db(tmp_path)
    settings = settings_for([
        SourceConfig(name="Wire", url=gather_server.url("f/wire.rss.xml"), topics=["korea"]),
        SourceConfig(name="Island", url=gather_server.url("f/mirror.atom.xml"), topics=["jeju-news"]),
    ], concurrency=1)  # Wire first, so it is the origin
    outcomes = by_name(gather_sources(database, settings, now=NOW))
    assert (outcomes["Wire"].new_items, outcomes["Wire"].duplicates) == (2, 0)
    # Jeju cable: near-identical text under another URL; Daegu: the same URL with tracking parameters.
    assert (outcomes["Island"].new_items, outcomes["Island"].duplicates) == (1, 2)

    with database.session() as session:
        articles = {a.title: a for a in session.scalars(select(Article))}
        assert len(articles) == 3
        cable = articles["Fishermen in Jeju sue over offshore wind farm cable route"]
        seen = sightings_of(session, [cable.id])[cable.id]
        assert [(s.source.name, s.how) for s in seen] == [("Wire", "origin"), ("Island", "text")]
        assert seen[1].url == gather_server.url("island/2026/wire-jeju-cable-lawsuit")
        assert cable.canonical_url == gather_server.url("news/jeju-cable")  # utm_* stripped
        # The copy's source and tags put the article on that beat too.
        assert {"korea", "jeju-news", "jeju", "environment"} <= set(cable.topics)
        daegu = articles["Daegu textile workers mark fifty years of their union"]
        assert [(s.source.name, s.how) for s in sightings_of(session, [daegu.id])[daegu.id]] == [
            ("Wire", "origin"), ("Island", "url")]
        assert [s.source.name for s in daegu.sightings] == ["Wire", "Island"]

    # Again, with the feeds changed (no 304): nothing new, no second sighting, items counted once.
    gather_server.routes["/f/wire.rss.xml"] = lambda h: gather_server.send(h, gather_server.render("wire.rss.xml"),
                                                                          conditional=False)
    again = by_name(gather_sources(database, settings, now=NOW))
    assert all(o.new_items == 0 and o.duplicates == 0 for o in again.values())
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Article)) == 3
        assert session.scalar(select(func.count()).select_from(ArticleSighting)) == 5
    assert source_row(database, "Wire").items_seen == 2 and source_row(database, "Island").items_seen == 3


def test_the_same_feed_twice_in_one_run_and_repeated_guids(tmp_path: Path, gather_server: GatherServer) -> None:
    body = gather_server.render("wire.rss.xml").replace(b"</channel>", b"""<item><title>Repeat</title>
        <link>http://x.example/repeat</link><guid>wire-2026-0411</guid></item></channel>""")
    gather_server.serve_bytes("/repeats", body)
    database = open_db(tmp_path)
    outcome = by_name(gather_sources(database, settings_for([("R", gather_server.url("repeats"))]), now=NOW))["R"]
    assert (outcome.seen_items, outcome.new_items) == (3, 2)  # the repeated GUID is the same item



def test_batched_fingerprints_are_the_stored_scheme_bit_for_bit() -> None:
    """fingerprints() (a feed at a time, ASCII fast tokeniser, Mersenne reduction) gives exactly the signatures
    of the original one-text-at-a-time code, so signatures stored by earlier versions still match."""
    import random
    import zlib

    import numpy as np

    from digest.gather import dedupe

    def reference(title: str, text: str) -> bytes | None:
        tokens = dedupe._WORD.findall(f"{title} {text}".lower())
        if tokens and sum(map(len, tokens)) > 12 * len(tokens):
            compact = "".join(tokens)
            tokens = [compact[i:i + 5] for i in range(max(0, len(compact) - 4))]
        if len(tokens) < 3:
            return None
        words = np.array([zlib.crc32(t.encode()) for t in tokens], dtype=np.uint64)
        mixed = (words[:-2] * np.uint64(0x9E3779B1)) ^ (words[1:-1] * np.uint64(0x85EBCA77)) ^ words[2:]
        hashes = (mixed ^ (mixed >> np.uint64(32))) & dedupe._MASK32
        if hashes.size < dedupe.MIN_SHINGLES:
            return None
        permuted = ((dedupe._A[:, None] * hashes[None, :] + dedupe._B[:, None]) % dedupe._PRIME) & dedupe._MASK32
        return permuted.min(axis=1).astype(np.uint32).tobytes()

    rng = random.Random(7)
    vocabulary = [*"port union wages strike vote court harbour crane 2026 _x".split(), "café", "東京都の港湾労働者",
                  "longunbrokenrunofletters", "a-b", "it's"]
    texts = [(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 6))),
              " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 150)))) for _ in range(400)]
    assert dedupe.fingerprints(texts) == [reference(title, text) for title, text in texts]
    assert dedupe.fingerprint(*texts[5]) == reference(*texts[5])
