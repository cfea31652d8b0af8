"""Near-duplicate text: MinHash signatures over word 3-shingles, with LSH banding for lookup.

Two texts whose shingle sets overlap by Jaccard ≥ the threshold (0.8 by default)
are the same article — a syndicated or re-posted copy with a different intro,
sign-off or headline tweak. Different reports of the same event overlap far less;
grouping them into one story is the group stage's job, not this one's.

A signature is 64 uint32 minima (256 bytes, stored on the article); the index
splits it into 16 bands of 4 rows, so a lookup touches only texts that agree
on a whole band, then verifies by the fraction of equal minima.
"""

from __future__ import annotations

import functools
import itertools
import re
import zlib

import numpy as np

NUM_PERM = 64
BANDS, ROWS = 16, 4
MIN_SHINGLES = 16  # shorter texts (headline-only items) are too easy to confuse: no fingerprint

_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT61 = np.uint64(61)
_BAND_BYTES = ROWS * 4
_BAND_STARTS = range(0, BANDS * _BAND_BYTES, _BAND_BYTES)
_GROUP_SHINGLES = 768  # 64 × 768 × 8 bytes: a few hundred kB per temporary
_rng = np.random.default_rng(0x5EED)  # fixed: signatures are stored and compared across runs
_A = _rng.integers(1, 1 << 32, NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, 1 << 32, NUM_PERM, dtype=np.uint64)
_WORD = re.compile(r"\w+")
_WORD_HASHES: dict[str | bytes, int] = {}
# ASCII bytes that \w does not match → space, so that bytes.split() yields exactly \w+'s tokens
_NON_WORD_TO_SPACE = bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(256))


def shingle_hashes(text: str) -> np.ndarray:
    """32-bit hashes of the text's word 3-shingles (character 5-grams for scripts written without spaces)."""
    words = _token_hashes(text)
    if len(words) < 3:
        return np.empty(0, dtype=np.uint64)
    return _mix(np.fromiter(words, dtype=np.uint64, count=len(words)))


def _token_hashes(text: str) -> list[int]:
    """crc32 of each token: the words (\\w+) of the lower-cased text, or its character 5-grams when it is
    written without spaces."""
    lowered = text.lower()
    cache = _WORD_HASHES
    if len(cache) > 200_000:  # words repeat: remember their hashes, within bounds
        cache.clear()
    if lowered.isascii():  # most texts: the same tokens as \w+ gives, several times faster, already bytes
        words = lowered.encode().translate(_NON_WORD_TO_SPACE).split()
        if sum(map(len, words)) <= 12 * len(words):
            return [cache.get(w) or cache.setdefault(w, zlib.crc32(w)) for w in words]
    tokens = _WORD.findall(lowered)
    if tokens and sum(map(len, tokens)) > 12 * len(tokens):  # Chinese, Japanese, Thai: long unbroken runs
        compact = "".join(tokens)
        tokens = [compact[i:i + 5] for i in range(max(0, len(compact) - 4))]
    return [cache.get(t) or cache.setdefault(t, zlib.crc32(t.encode())) for t in tokens]


def _mix(words: np.ndarray) -> np.ndarray:
    """Shingle hashes from consecutive token hashes: position i combines tokens i, i+1 and i+2."""
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        mixed = (words[:-2] * np.uint64(0x9E3779B1)) ^ (words[1:-1] * np.uint64(0x85EBCA77)) ^ words[2:]
    return (mixed ^ (mixed >> np.uint64(32))) & _MASK32


def fingerprint(title: str, text: str) -> bytes | None:
    """The MinHash signature of title + text, or None when there are too few shingles to be meaningful."""
    return fingerprints([(title, text)])[0]


def fingerprints(texts: list[tuple[str, str]]) -> list[bytes | None]:
    """`fingerprint()` of many (title, text) pairs at once: the shingles of all of them are mixed in one pass,
    and the permutations run over groups of texts (sized to stay in the CPU cache), not text by text."""
    tokens = [_token_hashes(f"{title} {text}") for title, text in texts]
    kept = [words for words in tokens if len(words) - 2 >= MIN_SHINGLES]
    if not kept:
        return [None] * len(texts)
    counts = [len(words) for words in kept]
    flat = np.fromiter(itertools.chain.from_iterable(kept), dtype=np.uint64, count=sum(counts))
    mixed = _mix(flat)  # a shingle per position, including the two that straddle each pair of texts
    valid = np.ones(mixed.size, dtype=bool)
    ends = np.cumsum(counts)[:-1]
    valid[ends - 1] = valid[ends - 2] = False
    shingles = mixed[valid]
    sizes = [count - 2 for count in counts]
    signatures: list[bytes] = []
    start = first = 0
    size = 0
    for position, count in enumerate(sizes):
        size += count
        if size >= _GROUP_SHINGLES or position == len(sizes) - 1:
            signatures += _minhash(shingles[start:start + size], sizes[first:position + 1])
            start, first, size = start + size, position + 1, 0
    found = iter(signatures)
    return [next(found) if len(words) - 2 >= MIN_SHINGLES else None for words in tokens]


def _minhash(flat: np.ndarray, sizes: list[int]) -> list[bytes]:
    """Signatures of consecutive texts whose shingles, `sizes[i]` each, are concatenated in `flat`."""
    starts = np.cumsum([0] + sizes[:-1])
    mixed = np.multiply(_A[:, None], flat[None, :])  # a·h + b < 2^64 (a, h, b < 2^32): exact in uint64
    mixed += _B[:, None]
    # mod the Mersenne prime p = 2^61 − 1 without a division: x ≡ (x >> 61) + (x & p), then one conditional −p,
    # done as min(r, r − p): when r < p the subtraction wraps around to a number above r
    high = mixed >> _SHIFT61
    mixed &= _PRIME
    mixed += high
    np.subtract(mixed, _PRIME, out=high)
    np.minimum(mixed, high, out=mixed)
    mixed &= _MASK32
    minima = np.minimum.reduceat(mixed, starts, axis=1).astype(np.uint32).T.copy()
    return [row.tobytes() for row in minima]


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the two texts the signatures came from."""
    return float(np.mean(np.frombuffer(a, dtype=np.uint32) == np.frombuffer(b, dtype=np.uint32)))


class NearDuplicateIndex:
    """Signatures by id, bucketed per band; `match()` returns the most similar id at or over the threshold."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self._signatures: dict[int, bytes] = {}
        # One dict per band: the band's rows → the id, or a list of ids when several share them.
        self._buckets: list[dict[bytes, int | list[int]]] = [{} for _ in range(BANDS)]

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, key: int, signature: bytes) -> None:
        if len(signature) != NUM_PERM * 4 or key in self._signatures:
            return  # a signature from another scheme (or a repeat) is ignored, never misread
        self._signatures[key] = signature
        bands = _bands(signature)
        held = list(map(dict.setdefault, self._buckets, bands, itertools.repeat(key, BANDS)))
        if held.count(key) == BANDS:
            return  # every band was free (most texts)
        for buckets, band, ids in zip(self._buckets, bands, held):
            if isinstance(ids, list):
                ids.append(key)
            elif ids != key:  # the band was another id's
                buckets[band] = [ids, key]

    def remove(self, key: int) -> None:
        signature = self._signatures.pop(key, None)
        if signature is None:
            return
        for buckets, band in zip(self._buckets, _bands(signature)):
            held = buckets.get(band)
            if held == key:
                del buckets[band]
            elif isinstance(held, list) and key in held:
                held.remove(key)
                if len(held) == 1:
                    buckets[band] = held[0]

    def match(self, signature: bytes | None) -> tuple[int, float] | None:
        if signature is None or len(signature) != NUM_PERM * 4:
            return None
        held = list(map(dict.get, self._buckets, _bands(signature)))
        if held.count(None) == BANDS:
            return None  # most texts are new: no band in common with any indexed one
        candidates: set[int] = set()
        for ids in held:
            if isinstance(ids, list):
                candidates.update(ids)
            elif ids is not None:
                candidates.add(ids)
        best: tuple[int, float] | None = None
        for key in sorted(candidates):
            score = similarity(signature, self._signatures[key])
            if score >= self.threshold and (best is None or score > best[1]):
                best = (key, score)
        return best


@functools.lru_cache(maxsize=1024)
def _bands(signature: bytes) -> list[bytes]:
    """The signature cut into its BANDS bands of ROWS minima (bucket keys; the band's position is its dict).

    Cached (the caller must not change the list): one new article's signature is matched and added to the run's
    index and to its source's batch index, four cuts of the same bytes object."""
    return [signature[start:start + _BAND_BYTES] for start in _BAND_STARTS]
