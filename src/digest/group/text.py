"""Tokenising for similarity.

Alphabetic scripts become lower-cased words (stopwords dropped); numbers are kept
("5.6", "2013": magnitudes, tolls and years tell two look-alike events apart).
A capitalised word that does not open a sentence also yields an ``E:`` feature, so
names and places count twice: they are what separates one story from another on
the same topic. Korean words lose their trailing particle (서울에서 → 서울) so
inflected forms meet; Han and kana runs, which have no spaces, become bigrams.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# A word may carry inner apostrophes or dots ("o'brien", "u.s", "5.6").
_WORD = re.compile(r"\w+(?:['’.]\w+)*", re.UNICODE)
# "6. 1" and "5: 03" come from tokenised sources; rejoin them into one number.
_SPLIT_NUMBER = re.compile(r"(?<=\d) ?([.,:]) ?(?=\d)")
# One pass over the text: words, and the sentence breaks of _SENTENCE as one-character tokens.
_TOKEN = re.compile(r"\w+(?:['’.]\w+)*|[.!?…]\s|[\"“”«»\n]")
_BREAKS = frozenset(".!?…\"“”«»\n")
_HAS_SPLIT_NUMBER = re.compile(r"\d(?: [.,:] ?| ?[.,:] )\d")  # cheap test before the look-behind substitution
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|[\"“”«»\n]+")
_NUMBER = re.compile(r"[\d.,:]+")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_HAN_KANA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")

STOPWORDS = frozenset("""
a about after again against all also am an and any are as at be because been before being between both
but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor
not now of off on once only or other our ours out over own said same says say she should so some such
than that the their theirs them themselves then there these they this those through to too under until
up very was we were what when where which while who whom why will with would you your yours
one two new year years also told according last first just like get got make made
""".split())

# Korean particles (josa) and copula endings, longest first so "에서" wins over "서".
_JOSA = tuple(sorted("""
은 는 이 가 을 를 의 에 에서 에게 께 께서 한테 으로 로 와 과 도 만 까지 부터 처럼 보다 이나 나
이라 라 이며 며 이다 이고 고 으로서 로서 으로써 로써 에는 에서는 에도 과의 와의 들 들이 들은 들을 들의
""".split(), key=len, reverse=True))

TITLE_WEIGHT = 3  # a headline is the writer's own summary of the event
PARALLEL_FROM = 2000  # documents per worker process worth its start-up (~0.3 s)


def hangul_stem(word: str) -> str:
    """Strip one trailing particle from a Korean word, keeping at least two syllables."""
    for ending in _JOSA:
        if word.endswith(ending) and len(word) - len(ending) >= 2:
            return word[: -len(ending)]
    return word


_SUFFIXES = (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""))


def stem(word: str) -> str:
    """A light English suffix stripper, so "checks", "checked" and "checking" meet in a headline."""
    if not word.isascii() or len(word) <= 4 or word.endswith(("ss", "us", "is")):
        return word
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def tokens(text: str) -> list[str]:
    """Lower-cased content tokens of `text`, in order (no entity features)."""
    return [t for t, _ in _scan(text)]


def features(title: str, text: str = "") -> Counter[str]:
    """Weighted bag of features for one article: words, numbers and ``E:`` name features."""
    bag = Counter(_features(text))
    for token, count in Counter(_features(title)).items():
        bag[token] += TITLE_WEIGHT * count
    return bag


_PLAIN: dict[str, tuple[str, ...]] = {}  # word -> its tokens (a sentence-initial word)
_NAMED: dict[str, tuple[str, ...]] = {}  # word -> its tokens plus their E: twins when Title Case
_CACHE_LIMIT = 500_000


def _features(text: str) -> list[str]:
    """Every feature occurrence of `text`, in order: the hot loop of grouping, so word results are cached."""
    out: list[str] = []
    extend = out.extend
    plain, named = _PLAIN, _NAMED
    if len(named) > _CACHE_LIMIT:
        plain.clear()
        named.clear()
    if _HAS_SPLIT_NUMBER.search(text):
        text = _SPLIT_NUMBER.sub(r"\1", text)
    first = True
    for word in _TOKEN.findall(text):
        if word[0] in _BREAKS:  # a sentence ends: the next word is capitalised by grammar, not as a name
            first = True
        elif first:
            found = plain.get(word)
            if found is None:
                found = plain[word] = _classify(word)[0]
            extend(found)
            first = False
        else:
            found = named.get(word)
            if found is None:
                tokens, capitalised = _classify(word)
                found = named[word] = tokens + tuple("E:" + t for t in tokens) if capitalised else tokens
            extend(found)
    return out


@dataclass
class Bags:
    """Many documents' feature bags in compact form: a local term list and flat arrays.

    Document d owns entries `offsets[d]:offsets[d + 1]` of `ids` (indices into
    `terms`) and `counts`. Worker processes send this back instead of Counters,
    so the parent maps each distinct term once, not every (document, term) pair.
    """

    terms: list[str]
    ids: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def bag(self, d: int) -> Counter[str]:
        start = int(self.lengths[:d].sum())
        end = start + int(self.lengths[d])
        return Counter({self.terms[t]: int(c) for t, c in zip(self.ids[start:end].tolist(),
                                                             self.counts[start:end].tolist(), strict=True)})


def features_many(pairs: list[tuple[str, str]]) -> Bags:
    """`features` for many (title, text) pairs; large batches are split over worker processes."""
    workers = min(len(pairs) // PARALLEL_FROM, os.cpu_count() or 1)
    if workers < 2:
        return _features_chunk(pairs)
    size = -(-len(pairs) // workers)
    chunks = [pairs[k * size : (k + 1) * size] for k in range(workers)]
    # "spawn", not fork: the caller may be a threaded server or scheduler.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_features_chunk, chunks))
    terms: dict[str, int] = {}
    ids = []
    for part in parts:
        remap = np.fromiter((terms.setdefault(t, len(terms)) for t in part.terms), dtype=np.int64,
                            count=len(part.terms))
        ids.append(remap[part.ids])
    return Bags(list(terms), np.concatenate(ids), np.concatenate([p.counts for p in parts]),
                np.concatenate([p.lengths for p in parts]))


def _features_chunk(pairs: list[tuple[str, str]]) -> Bags:
    terms: dict[str, int] = {}
    ids: list[int] = []
    counts: list[int] = []
    lengths: list[int] = []
    for title, text in pairs:
        bag = features(title, text)
        ids.extend([terms.setdefault(t, len(terms)) for t in bag])
        counts.extend(bag.values())
        lengths.append(len(bag))
    return Bags(list(terms), np.asarray(ids, dtype=np.int64), np.asarray(counts, dtype=np.float64),
                np.asarray(lengths, dtype=np.int64))


def _scan(text: str) -> list[tuple[str, bool]]:
    """(token, looks-like-a-name) pairs; a name is capitalised but not sentence-initial."""
    out: list[tuple[str, bool]] = []
    text = _SPLIT_NUMBER.sub(r"\1", text)
    for sentence in _SENTENCE.split(text):
        first = True
        for word in _WORD.findall(sentence):
            found, capitalised = _classify(word)
            for token in found:
                out.append((token, capitalised and not first))
            first = False
    return out


@lru_cache(maxsize=200_000)
def _classify(word: str) -> tuple[tuple[str, ...], bool]:
    """Tokens of one word and whether it is Title Case (cached: news vocabulary repeats)."""
    lower = word.lower()
    if _NUMBER.fullmatch(lower):
        number = lower.strip(".,:")
        return ((number,) if number not in ("", "0", "1") else ()), False
    if _HANGUL.search(word):
        return (hangul_stem(lower),), False
    if _HAN_KANA.search(word):
        return tuple(lower[i : i + 2] for i in range(max(1, len(lower) - 1))), False
    if len(lower) > 1 and lower not in STOPWORDS and not lower.isdigit():
        # All-caps words are headlines shouting or acronyms; treat only Title Case as names.
        return (stem(lower),), word[0].isupper() and not word.isupper()
    return (), False
