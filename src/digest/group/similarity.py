"""Similarity measured against each document's own background.

Raw cosine is on a different scale for a 500-word article and a 9-word headline,
and for a generic text and one full of rare names. So each similarity is turned
into a z-score against the document's similarities to everything else in the
corpus (almost all of which are unrelated): z = (s - μ_i) / σ_i, made symmetric
by averaging both ends. One threshold in z units then serves full text and
headlines alike. Small corpora give noisy μ and σ, so they are shrunk towards a
prior (a typical news background) with the weight of `PRIOR_WEIGHT` documents.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from digest.group.vectors import InvertedIndex, Vectors

PRIOR_MEAN = 0.012  # mean cosine of an article to unrelated ones, typical of news TF-IDF
PRIOR_SD = 0.04
PRIOR_WEIGHT = 100.0  # pseudo-documents: a ten-article batch leans on the prior, 10,000 do not
MIN_SD = 0.02  # a document sharing no vocabulary with anything must not get a huge z
NEIGHBOURS = 40
CANDIDATES = 60  # neighbours are picked among this many by rare-term similarity
SAMPLE = 1000  # background columns per index
COMMON_CHUNK = 2048  # query rows per dense product for the background
BLOCK = 256  # query rows scored at once: 256 × 10,000 float64 is 20 MB
THREADS = min(4, os.cpu_count() or 1)


@dataclass
class Background:
    mean: np.ndarray
    sd: np.ndarray

    def z(self, i: np.ndarray, j: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Symmetric z-score of similarity `s` between documents i and j."""
        return 0.5 * ((s - self.mean[i]) / self.sd[i] + (s - self.mean[j]) / self.sd[j])


def shrunk_stats(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of `count` similarities per row, shrunk towards the prior."""
    w = np.maximum(count, 0.0)
    mean = (total + PRIOR_WEIGHT * PRIOR_MEAN) / (w + PRIOR_WEIGHT)
    second = (total_sq + PRIOR_WEIGHT * (PRIOR_SD**2 + PRIOR_MEAN**2)) / (w + PRIOR_WEIGHT)
    sd = np.sqrt(np.maximum(second - mean**2, 0.0))
    return mean, np.maximum(sd, MIN_SD)


@dataclass
class Neighbourhood:
    """Each query row's background and its strongest neighbours (column ids and raw cosines)."""

    mean: np.ndarray
    sd: np.ndarray
    ids: np.ndarray  # (rows, k) column ids, -1 where fewer neighbours exist
    sims: np.ndarray  # (rows, k)


def neighbourhood(query: Vectors, indexes: list[tuple[InvertedIndex, int]], self_offset: int | None,
                  k: int = NEIGHBOURS, own_columns: np.ndarray | None = None) -> Neighbourhood:
    """Scan every query row against the indexed documents (each index at a column offset).

    Neighbours are chosen by rare-term similarity (the top `CANDIDATES`), then scored
    exactly. The background is estimated on a fixed sample of at most `SAMPLE` columns
    per index, scored exactly. `self_offset`: column of query row 0 when the query
    documents are themselves indexed, so a document is never its own neighbour nor
    part of its own background; `own_columns` (one column per query row, -1 for none)
    does the same for query rows that are not one contiguous run of columns.
    """
    rows = query.n
    if own_columns is None:
        own_columns = np.full(rows, -1, dtype=np.int64) if self_offset is None else self_offset + np.arange(rows)
    cand_ids: list[np.ndarray] = []
    cand_sims: list[np.ndarray] = []
    total = np.zeros(rows)
    total_sq = np.zeros(rows)
    weight = np.zeros(rows)
    for index, offset in indexes:
        ids, sims, s1, s2, count = _scan(query, index, offset, own_columns)
        cand_ids.append(ids)
        cand_sims.append(sims)
        # Scale each index's sample to the number of documents it stands for.
        scale = index.n_docs / np.maximum(count, 1.0)
        total += s1 * scale
        total_sq += s2 * scale
        weight += count * scale
    all_ids = np.concatenate(cand_ids, axis=1)
    all_sims = np.concatenate(cand_sims, axis=1)
    order = np.lexsort((all_ids, -all_sims), axis=1)[:, :k]
    ids = np.take_along_axis(all_ids, order, axis=1)
    sims = np.take_along_axis(all_sims, order, axis=1)
    ids[sims <= 0] = -1
    sims[sims <= 0] = 0.0
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        sims = np.pad(sims, ((0, 0), (0, pad)))
    mean, sd = shrunk_stats(total, total_sq, weight)
    return Neighbourhood(mean, sd, ids, sims.astype(np.float32))


def _scan(query: Vectors, index: InvertedIndex, offset: int, own_columns: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = index.n_docs
    rows = query.n
    take = min(CANDIDATES, n)
    ids = np.full((rows, take), -1, dtype=np.int64)
    sims = np.zeros((rows, take))
    s1, s2, count = np.zeros(rows), np.zeros(rows), np.zeros(rows)
    sample = _sample(n)
    sampled_common = _common_part(query, index, sample)

    def block(first: int) -> None:
        last = min(first + BLOCK, rows)
        rare, columns, values = index.rows(query, first, last)
        local = np.arange(last - first)
        own = own_columns[first:last] - offset  # own column inside this index, if any
        own = np.where((own_columns[first:last] >= 0) & (own >= 0) & (own < n), own, -1)
        # Background: exact similarities to the sample columns.
        exact = rare[:, sample] + sampled_common[first:last]
        valid = sample[None, :] != own[:, None]
        # No sigma clipping of the document's own story here: it was tried, and it
        # stretched the z scale and made the threshold less stable across corpora.
        t1 = np.where(valid, exact, 0).sum(axis=1)
        t2 = np.where(valid, exact * exact, 0).sum(axis=1)
        c = valid.sum(axis=1).astype(np.float64)
        s1[first:last], s2[first:last], count[first:last] = t1, t2, c
        # Candidates by rare-term similarity, then their exact similarity.
        mine = own >= 0
        rare[local[mine], own[mine]] = -1.0
        if take < n:
            top = np.argpartition(-rare, take - 1, axis=1)[:, :take]
        else:
            top = np.tile(np.arange(n), (len(local), 1))
        score = np.take_along_axis(rare, top, axis=1)
        # Common terms, exactly, for the candidates only: gather just the query's own terms.
        gathered = index.dense[top[:, :, None], columns[:, None, :]]
        score += (gathered * values[:, None, :]).sum(axis=2)
        score[top == own[:, None]] = -1.0
        ids[first:last] = top + offset
        sims[first:last] = score

    starts = range(0, rows, BLOCK)
    if rows > BLOCK:
        # numpy releases the GIL in its inner loops, so two threads use two cores.
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            list(pool.map(block, starts))
    else:
        for first in starts:
            block(first)
    return ids, sims, s1, s2, count


def _common_part(query: Vectors, index: InvertedIndex, sample: np.ndarray) -> np.ndarray:
    """The common-term part of every query row's similarity to the sample columns.

    A few large matrix products here, before the worker threads start: BLAS runs
    its own threads, and small products inside our threads would oversubscribe
    the cores (measured: twice the CPU for the same wall-clock).
    """
    dense_sample = index.dense[sample]
    out = np.empty((query.n, len(sample)), dtype=np.float32)
    rows_of = np.repeat(np.arange(query.n), query.nnz())
    terms = query.indices
    inside = terms < len(index.dense_column)
    column = np.full(len(terms), -1, dtype=np.int64)
    column[inside] = index.dense_column[terms[inside]]
    is_common = column >= 0
    for first in range(0, query.n, COMMON_CHUNK):
        last = min(first + COMMON_CHUNK, query.n)
        pick = is_common & (rows_of >= first) & (rows_of < last)
        chunk = np.zeros((last - first, index.dense.shape[1]), dtype=np.float32)
        chunk[rows_of[pick] - first, column[pick]] = query.data[pick]
        out[first:last] = chunk @ dense_sample.T
    return out


def _sample(n: int) -> np.ndarray:
    """A fixed, evenly spread set of columns: the same on every run."""
    if n <= SAMPLE:
        return np.arange(n)
    return np.linspace(0, n - 1, SAMPLE).round().astype(np.int64)
