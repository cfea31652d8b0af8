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
from functools import lru_cache

# A word may carry inner apostrophes or dots ("o'brien", "u.s", "5.6").
_WORD = re.compile(r"\w+(?:['’.]\w+)*", re.UNICODE)
# "6. 1" and "5: 03" come from tokenised sources; rejoin them into one number.
_SPLIT_NUMBER = re.compile(r"(?<=\d) ?([.,:]) ?(?=\d)")
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
    bag: Counter[str] = Counter()
    for part, weight in ((title, TITLE_WEIGHT), (text, 1)):
        for token, is_name in _scan(part):
            bag[token] += weight
            if is_name:
                bag["E:" + token] += weight
    return bag


def features_many(pairs: list[tuple[str, str]]) -> list[Counter[str]]:
    """`features` for many (title, text) pairs; large batches are split over worker processes."""
    workers = min(len(pairs) // PARALLEL_FROM, os.cpu_count() or 1)
    if workers < 2:
        return [features(title, text) for title, text in pairs]
    chunks = [pairs[k::workers] for k in range(workers)]
    # "spawn", not fork: the caller may be a threaded server or scheduler.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_features_chunk, chunks))
    out: list[Counter[str]] = [Counter()] * len(pairs)
    for k, part in enumerate(parts):
        out[k::workers] = part
    return out


def _features_chunk(pairs: list[tuple[str, str]]) -> list[Counter[str]]:
    return [features(title, text) for title, text in pairs]


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
