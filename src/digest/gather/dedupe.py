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

import re
import zlib

import numpy as np

NUM_PERM = 64
BANDS, ROWS = 16, 4
MIN_SHINGLES = 16  # shorter texts (headline-only items) are too easy to confuse: no fingerprint

_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_rng = np.random.default_rng(0x5EED)  # fixed: signatures are stored and compared across runs
_A = _rng.integers(1, 1 << 32, NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, 1 << 32, NUM_PERM, dtype=np.uint64)
_WORD = re.compile(r"\w+")


def shingle_hashes(text: str) -> np.ndarray:
    """32-bit hashes of the text's word 3-shingles (character 5-grams for scripts written without spaces)."""
    lowered = text.lower()
    tokens = _WORD.findall(lowered)
    if tokens and sum(map(len, tokens)) > 12 * len(tokens):  # Chinese, Japanese, Thai: long unbroken runs
        compact = "".join(tokens)
        tokens = [compact[i:i + 5] for i in range(max(0, len(compact) - 4))]
    if len(tokens) < 3:
        return np.empty(0, dtype=np.uint64)
    words = np.fromiter((zlib.crc32(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens))
    with np.errstate(over="ignore"):  # wrapping multiplication is the point
        mixed = (words[:-2] * np.uint64(0x9E3779B1)) ^ (words[1:-1] * np.uint64(0x85EBCA77)) ^ words[2:]
    return (mixed ^ (mixed >> np.uint64(32))) & _MASK32


def fingerprint(title: str, text: str) -> bytes | None:
    """The MinHash signature of title + text, or None when there are too few shingles to be meaningful."""
    hashes = shingle_hashes(f"{title} {text}")
    if hashes.size < MIN_SHINGLES:
        return None
    with np.errstate(over="ignore"):
        permuted = ((_A[:, None] * hashes[None, :] + _B[:, None]) % _PRIME) & _MASK32
    return permuted.min(axis=1).astype(np.uint32).tobytes()


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the two texts the signatures came from."""
    return float(np.mean(np.frombuffer(a, dtype=np.uint32) == np.frombuffer(b, dtype=np.uint32)))


class NearDuplicateIndex:
    """Signatures by id, bucketed per band; `match()` returns the most similar id at or over the threshold."""

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self._signatures: dict[int, bytes] = {}
        self._buckets: dict[bytes, list[int]] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, key: int, signature: bytes) -> None:
        if len(signature) != NUM_PERM * 4 or key in self._signatures:
            return  # a signature from another scheme (or a repeat) is ignored, never misread
        self._signatures[key] = signature
        for band in _bands(signature):
            self._buckets.setdefault(band, []).append(key)

    def match(self, signature: bytes | None) -> tuple[int, float] | None:
        if signature is None or len(signature) != NUM_PERM * 4:
            return None
        candidates = {key for band in _bands(signature) for key in self._buckets.get(band, ())}
        best: tuple[int, float] | None = None
        for key in sorted(candidates):
            score = similarity(signature, self._signatures[key])
            if score >= self.threshold and (best is None or score > best[1]):
                best = (key, score)
        return best


def _bands(signature: bytes) -> list[bytes]:
    width = ROWS * 4
    return [bytes([band]) + signature[band * width:(band + 1) * width] for band in range(BANDS)]
