"""Story grouping behaviour on small hand-written corpora (and on ECB+ when it is present)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import numpy as np
import pytest

from digest.group.cluster import GroupSettings, StoryIndex, group_documents
from digest.group import feedback
from digest.group.documents import Doc
from digest.group.related import _centroids, _closest_stories, _StoryLinks, story_partners, topic_terms
from digest.group.vectors import concatenate

QUAKE_IRAN = ("A 6.1-magnitude earthquake razed mud-brick villages on Qeshm island off southern Iran on "
              "Sunday, killing ten people and injuring about 50, the U.S. Geological Survey and Iranian "
              "state television said. Hormozgan province officials sent rescue teams to Qeshm as "
              "aftershocks continued.")
QUAKE_CHILE = ("A magnitude 7.8 earthquake struck northern Chile near the port of Tocopilla on Wednesday, "
               "killing two people and injuring 150, the U.S. Geological Survey and Chilean emergency "
               "officials said. Rescue teams searched villages where adobe homes collapsed, and "
               "aftershocks shook Antofagasta.")
KPOP = ("BTS announced a world stadium tour on Monday, with concerts in Seoul, Los Angeles, London and "
        "Tokyo. The K-pop group's label Big Hit said tickets for the arena shows go on sale next week, "
        "and fans queued online for hours.")
REFUGEES = ("Refugees in Greek camps are being denied basic healthcare, a report by Doctors Without Borders "
            "found on Tuesday. Asylum seekers on Lesbos wait months for treatment, and children with chronic "
            "illness go without medicine, the aid group said.")
ROWING = ("Oxford won the Boat Race on the Thames on Saturday, beating Cambridge by two lengths in "
          "blustery conditions on the championship course from Putney to Mortlake.")
BUDGET = ("The city council approved a budget for road repairs and school buildings on Thursday after a "
          "long debate over property taxes and library opening hours.")


def rewrite(text: str, lead: str) -> str:
    """A syndicated rewrite: a different opening sentence, the rest mostly reused."""
    sentences = text.split(". ")
    return lead + " " + ". ".join(sentences[1:] if len(sentences) > 1 else sentences)


def corpus() -> list[Doc]:
    return [
        Doc("iran-ap", "Quake kills 10 on Iran's Qeshm island", QUAKE_IRAN),
        Doc("iran-reuters", "Earthquake on Qeshm island kills ten", rewrite(
            QUAKE_IRAN, "Ten people died when a 6.1 earthquake hit Qeshm island in southern Iran.")),
        Doc("iran-bbc", "Ten dead in southern Iran quake", rewrite(
            QUAKE_IRAN, "A powerful earthquake has hit Qeshm, an island of southern Iran, killing ten.")),
        Doc("chile-ap", "Strong quake hits northern Chile", QUAKE_CHILE),
        Doc("chile-efe", "Magnitude 7.8 earthquake rocks Tocopilla, Chile", rewrite(
            QUAKE_CHILE, "Two people died after a 7.8 earthquake shook Tocopilla in northern Chile.")),
        Doc("kpop", "BTS announce world stadium tour", KPOP),
        Doc("refugees", "Refugees denied healthcare in Greek camps, report says", REFUGEES),
        Doc("rowing", "Oxford win the Boat Race", ROWING),
        Doc("budget", "Council passes road and school budget", BUDGET),
    ]


def story_members(grouping, doc_id: str) -> set[str]:
    label = grouping.story_of[doc_id]
    return {d for d, s in grouping.story_of.items() if s == label}


def test_syndicated_copies_form_one_story() -> None:
    grouping = group_documents(corpus())
    assert story_members(grouping, "iran-ap") == {"iran-ap", "iran-reuters", "iran-bbc"}
    assert story_members(grouping, "chile-ap") == {"chile-ap", "chile-efe"}


def test_two_earthquakes_are_two_stories() -> None:
    grouping = group_documents(corpus())
    assert grouping.story_of["iran-ap"] != grouping.story_of["chile-ap"]
    assert set(grouping.related["iran-ap"]) <= {"chile-ap", "chile-efe"}
    assert set(grouping.related["chile-efe"]) <= {"iran-ap", "iran-reuters", "iran-bbc"}


def test_two_earthquakes_are_related() -> None:
    grouping = group_documents(corpus())
    assert set(grouping.related["iran-ap"]) == {"chile-ap", "chile-efe"}
    assert set(grouping.related["chile-efe"]) == {"iran-ap", "iran-reuters", "iran-bbc"}


def test_unrelated_items_get_no_related_filler() -> None:
    grouping = group_documents(corpus())
    for doc_id in ("kpop", "refugees", "rowing", "budget"):
        assert story_members(grouping, doc_id) == {doc_id}
        assert grouping.related[doc_id] == []
    assert "kpop" not in grouping.related["refugees"]


def test_closest_story_under_the_floor_is_not_shown() -> None:
    # The council budget and the K-pop tour are each other's closest story here (nothing else is
    # near either), but their similarity is background noise: show nothing rather than filler.
    index = StoryIndex()
    grouping = index.fit(corpus())
    labels = sorted(set(index.story))
    row_story = np.searchsorted(labels, np.asarray(index.story))
    centroids = _centroids(concatenate(index.vectors), row_story, len(labels), topic_terms(index.vocab))
    best = _closest_stories(centroids, len(index.vocab.ids))[0]
    budget, kpop = (labels.index(grouping.story_of[d]) for d in ("budget", "kpop"))
    assert best[budget] == kpop and best[kpop] == budget
    assert grouping.related["budget"] == [] and grouping.related["kpop"] == []
    # A floor nobody reaches removes the real pair too.
    strict = group_documents(corpus(), GroupSettings(related_z=50.0))
    assert all(not related for related in strict.related.values())


def test_related_never_lists_the_same_story_and_at_most_five() -> None:
    docs = corpus() + [Doc(f"iran-copy{i}", "Quake kills 10 on Qeshm", QUAKE_IRAN) for i in range(6)]
    grouping = group_documents(docs)
    for doc_id, related in grouping.related.items():
        assert len(related) <= 5
        assert all(grouping.story_of[r] != grouping.story_of[doc_id] for r in related)


def test_headline_only_near_duplicates_group() -> None:
    docs = [
        Doc("a", "Lindsay Lohan checks into Betty Ford rehab center"),
        Doc("b", "Lindsay Lohan checks into rehab at Betty Ford Center"),
        Doc("c", "Lohan checked into Betty Ford Center, lawyer says"),
        Doc("d", "Oxford win the Boat Race by two lengths"),
        Doc("e", "City council passes road repair budget"),
        Doc("f", "BTS announce world stadium tour"),
        Doc("g", "Refugees in Greek camps denied healthcare, report says"),
        Doc("h", "Stock markets fall as oil prices rise"),
    ]
    grouping = group_documents(docs)
    assert story_members(grouping, "a") == {"a", "b", "c"}
    assert all(story_members(grouping, x) == {x} for x in "defgh")


def test_korean_duplicate_stories_cluster() -> None:
    docs = [
        Doc("k1", "경주에서 규모 5.8 지진 발생", "12일 경북 경주에서 규모 5.8의 지진이 발생해 부상자가 나왔다. "
            "기상청은 여진에 주의하라고 밝혔다."),
        Doc("k2", "경주 규모 5.8 지진…부상자 속출", "경북 경주에서 12일 규모 5.8 지진이 일어나 부상자가 잇따랐다. "
            "기상청은 여진 가능성을 경고했다."),
        Doc("k3", "방탄소년단, 월드투어 발표", "방탄소년단이 서울과 런던, 도쿄에서 열리는 스타디움 월드투어를 발표했다."),
        Doc("k4", "국회, 내년 예산안 통과", "국회는 본회의에서 내년도 예산안을 통과시켰다."),
        Doc("k5", "난민 의료 지원 부족 보고서", "그리스 난민 캠프의 난민들이 기본적인 의료를 받지 못하고 있다는 보고서가 나왔다."),
    ]
    grouping = group_documents(docs)
    assert story_members(grouping, "k1") == {"k1", "k2"}
    assert all(story_members(grouping, x) == {x} for x in ("k3", "k4", "k5"))
    assert "k3" not in grouping.related["k5"]


def test_same_result_for_shuffled_input() -> None:
    docs = corpus()
    expected = group_documents(docs)
    partition = {frozenset(story_members(expected, d.id)) for d in docs}
    for seed in range(3):
        shuffled = docs[:]
        random.Random(seed).shuffle(shuffled)
        again = group_documents(shuffled)
        assert {frozenset(story_members(again, d.id)) for d in docs} == partition
        assert again.related == expected.related


def test_empty_and_single_input() -> None:
    assert group_documents([]).story_of == {}
    one = group_documents([Doc("x", "Only one")])
    assert one.related == {"x": []} and list(one.story_of) == ["x"]


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        group_documents([Doc("x", "a"), Doc("x", "b")])


def test_articles_far_apart_in_time_are_not_one_story() -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    docs = [Doc("then", "Quake kills 10 on Iran's Qeshm island", QUAKE_IRAN, published=start),
            Doc("now", "Quake kills 10 on Iran's Qeshm island", QUAKE_IRAN, published=start + dt.timedelta(days=40)),
            *corpus()[3:]]
    grouping = group_documents(docs)
    assert grouping.story_of["then"] != grouping.story_of["now"]


def test_incremental_add_joins_existing_story_or_starts_one() -> None:
    index = StoryIndex()
    base = index.fit(corpus())
    grouping = index.add([
        Doc("iran-afp", "Ten killed as quake strikes Iran's Qeshm island", rewrite(
            QUAKE_IRAN, "An earthquake of magnitude 6.1 killed ten people on Qeshm island, Iran.")),
        Doc("rowing-women", "Cambridge win the women's Boat Race", ROWING.replace("Oxford", "Cambridge")[:90]),
        Doc("kpop", "ignored: this id is already in the archive"),
    ])
    assert grouping.story_of["iran-afp"] == base.story_of["iran-ap"]
    assert grouping.story_of["kpop"] == base.story_of["kpop"]
    assert {k: v for k, v in grouping.story_of.items() if k in base.story_of} == base.story_of


ECB = Path(__file__).resolve().parents[2] / "shared" / "data" / "grouping" / "ecbplus-dev.jsonl"


@pytest.mark.skipif(not ECB.exists(), reason="ECB+ development data not present")
def test_ecbplus_subset_clusters_well() -> None:
    rows = [json.loads(line) for line in ECB.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if int(r["topic"]) <= 12]
    grouping = group_documents([Doc(r["id"], r["title"], r["text"]) for r in rows])
    gold = {r["id"]: r["story"] for r in rows}
    precision = recall = 0.0
    for doc_id in gold:
        predicted = story_members(grouping, doc_id)
        actual = {d for d, s in gold.items() if s == gold[doc_id]}
        precision += len(predicted & actual) / len(predicted)
        recall += len(predicted & actual) / len(actual)
    precision, recall = precision / len(gold), recall / len(gold)
    assert 2 * precision * recall / (precision + recall) >= 0.8


def split_quake_corpus() -> tuple[list[Doc], dict[str, int]]:
    """The corpus with the Iran quake stored as two stories, as a clustering split would leave it."""
    docs = corpus() + [
        Doc("iran-afp", "Ten killed as quake strikes Iran's Qeshm island", rewrite(
            QUAKE_IRAN, "An earthquake of magnitude 6.1 killed ten people on Qeshm island, Iran.")),
    ]
    labels = {"iran-ap": 0, "iran-reuters": 0, "iran-bbc": 1, "iran-afp": 1, "chile-ap": 2, "chile-efe": 2}
    labels.update({d: 3 + k for k, d in enumerate(("kpop", "refugees", "rowing", "budget"))})
    return docs, labels


def test_split_story_sibling_is_not_shown_as_related() -> None:
    # Two stored stories that are really one event (a split): each is the other's closest,
    # unambiguous match, but their articles link across at story strength, so the pair is
    # not "same topic, another event" and neither half lists the other.
    docs, labels = split_quake_corpus()
    index = StoryIndex()
    grouping = index.fit(docs, stories=labels)
    iran = {"iran-ap", "iran-reuters", "iran-bbc", "iran-afp"}
    for doc_id in iran:
        assert not set(grouping.related[doc_id]) & iran
    # The pair the veto removed is the one the story-level test picks: the halves are mutual best.
    partners = story_partners(concatenate(index.vectors), index.story, index.topic, index._related_settings())
    assert partners.get(0) == 1 and partners.get(1) == 0


def test_twin_events_stay_related_next_to_the_split_check() -> None:
    # The same check does not touch two different earthquakes: no Chile article would join Iran.
    grouping = group_documents(corpus())
    assert grouping.related["iran-bbc"] and set(grouping.related["iran-bbc"]) <= {"chile-ap", "chile-efe"}


def test_story_links_are_exact_mean_z_sums() -> None:
    index = StoryIndex()
    index.fit(corpus())
    vectors = concatenate(index.vectors)
    dense = np.zeros((vectors.n, len(index.vocab.ids)))
    for r in range(vectors.n):
        span = slice(vectors.indptr[r], vectors.indptr[r + 1])
        dense[r, vectors.indices[span]] = vectors.data[span]
    mean, sd = index.background.mean, index.background.sd
    sims = dense @ dense.T
    z = 0.5 * ((sims - mean[:, None]) / sd[:, None] + (sims - mean[None, :]) / sd[None, :])
    rows = np.arange(vectors.n)
    slots = np.asarray(index.story)
    links = _StoryLinks(vectors, rows, slots, max(slots) + 1, index.background)
    for slot in range(max(slots) + 1):
        members = np.flatnonzero(slots == slot)
        expected = z[:, members].sum(axis=1)
        assert np.allclose(links.total(rows, np.full(len(rows), slot)), expected, atol=1e-4)
    assert np.allclose(links.self_term(rows), np.diag(z), atol=1e-4)


LOHAN_HEADLINES = [
    Doc("a", "Lindsay Lohan checks into Betty Ford Center"),
    Doc("b", "Lohan checks into Betty Ford clinic"),
    Doc("c", "Lindsay Lohan at Betty Ford for 90-day rehab stay"),
    Doc("d", "Troubled actress starts court-ordered 90-day rehab stay"),
]
OTHER_HEADLINES = [Doc(f"x{k}", title) for k, title in enumerate([
    "Oxford win the Boat Race by two lengths", "City council passes road repair budget",
    "BTS announce world stadium tour", "Refugees in Greek camps denied healthcare, report says",
    "Stock markets fall as oil prices rise", "Wildfire forces evacuation near Valparaiso",
    "Prime minister reshuffles cabinet", "Central bank holds interest rates steady",
    "Storm cuts power to thousands in Florida", "Tech giant unveils new smartphone",
    "Striking nurses march on parliament", "Museum returns looted bronzes to Nigeria"])]


def test_headline_sharing_words_with_one_member_joins_through_feedback(monkeypatch: pytest.MonkeyPatch) -> None:
    # "d" shares only "90-day rehab stay" with "c" and nothing with "a" or "b": on its own
    # words it cannot reach the story's mean link; with its closest neighbour's words it does.
    grouping = group_documents(LOHAN_HEADLINES + OTHER_HEADLINES)
    assert story_members(grouping, "d") == {"a", "b", "c", "d"}
    assert all(story_members(grouping, d.id) == {d.id} for d in OTHER_HEADLINES)
    monkeypatch.setattr(feedback, "SHORT_TERMS", 0)  # feedback off
    assert story_members(group_documents(LOHAN_HEADLINES + OTHER_HEADLINES), "d") == {"d"}


def test_headline_feedback_keeps_look_alike_events_apart() -> None:
    docs = [Doc("iran1", "Magnitude 6.1 quake kills ten on Iran's Qeshm island"),
            Doc("iran2", "Quake on Qeshm island in southern Iran kills 10"),
            Doc("chile1", "Magnitude 7.8 quake hits Tocopilla in northern Chile"),
            Doc("chile2", "Northern Chile quake kills two in Tocopilla"), *OTHER_HEADLINES]
    grouping = group_documents(docs)
    assert story_members(grouping, "iran1") == {"iran1", "iran2"}
    assert story_members(grouping, "chile1") == {"chile1", "chile2"}


def test_headline_added_later_joins_through_feedback() -> None:
    index = StoryIndex()
    base = index.fit(LOHAN_HEADLINES[:3] + OTHER_HEADLINES)
    grouping = index.add([LOHAN_HEADLINES[3]])
    assert grouping.story_of["d"] == base.story_of["a"]


def test_row_helpers_match_dense_algebra() -> None:
    index = StoryIndex()
    index.fit(corpus())
    vectors = concatenate(index.vectors)
    dense = np.zeros((vectors.n, len(index.vocab.ids)))
    for r in range(vectors.n):
        span = slice(vectors.indptr[r], vectors.indptr[r + 1])
        dense[r, vectors.indices[span]] = vectors.data[span]
    order = np.array([3, 0, 3, 8])
    picked = feedback.take_rows(vectors, order)
    assert picked.n == 4 and np.allclose(feedback.take_rows(picked, np.arange(4)).data, picked.data)
    a, b = np.array([0, 1, 2, 5]), np.array([1, 1, 4, 6])
    assert np.allclose(feedback.pair_cosines(vectors, a, b), (dense[a] * dense[b]).sum(axis=1), atol=1e-5)
