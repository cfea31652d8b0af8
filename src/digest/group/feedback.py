"""Pseudo-relevance feedback for headline-length items.

Two headlines of one event often share one word or none ("Lohan enters rehab",
"Lindsay Lohan checks into Betty Ford"), so most of their pairwise similarities
are zero and average link cannot hold their story together. Rocchio feedback is
the textbook remedy for short queries: a short item takes in, at weight
`FEEDBACK_WEIGHT`, the mean vector of its few closest neighbours that are already
linked to it at story strength (article z >= the story threshold), and is then
compared again. Long articles have words enough and are left as they are, which
also keeps the second scan down to the short items.

The neighbours' own similarities to an expanded item are recomputed exactly; their
background (μ, σ) is not re-estimated, since one item among a thousand sampled
columns moves it very little.
"""

from __future__ import annotations

import numpy as np

from digest.group.similarity import Background, Neighbourhood, neighbourhood
from digest.group.vectors import InvertedIndex, Vectors, concatenate

SHORT_TERMS = 60  # distinct features: a headline or a one-line summary, not an article
FEEDBACK_DOCS = 5  # closest neighbours considered (Rocchio's "top few")
FEEDBACK_WEIGHT = 0.5  # β: the item's own words stay twice as heavy as the borrowed ones


def refine(query: Vectors, hood: Neighbourhood, first_row: int, archive: list[tuple[InvertedIndex, int]],
           archive_vectors: Vectors | None, archive_background: Background | None, vocab_size: int,
           story_z: float) -> tuple[Vectors, Neighbourhood] | None:
    """Expand the query's short rows by feedback and re-scan them; None when nothing changes.

    `query` rows are documents first_row.. (already indexed by the caller's batch index,
    which must be rebuilt from the returned vectors); `archive` holds the indexes of the
    documents before first_row, with their vectors and background when there are any.
    """
    nnz = query.nnz()
    short = np.flatnonzero((nnz > 0) & (nnz <= SHORT_TERMS))
    if not len(short):
        return None
    mean, sd = hood.mean, hood.sd
    if archive_background is not None:
        mean = np.concatenate([archive_background.mean, mean])
        sd = np.concatenate([archive_background.sd, sd])
    ids = hood.ids[short, :FEEDBACK_DOCS]
    sims = hood.sims[short, :FEEDBACK_DOCS].astype(np.float64)
    rows = np.broadcast_to((first_row + short)[:, None], ids.shape)
    z = Background(mean, sd).z(rows, np.maximum(ids, 0), sims)
    chosen = (ids >= 0) & (z >= story_z)
    expanded = short[chosen.any(axis=1)]
    if not len(expanded):
        return None
    source = query if archive_vectors is None else concatenate([archive_vectors, query])
    owner = np.repeat(np.arange(len(short)), chosen.sum(axis=1))  # per chosen pair: its short row
    fresh = _rocchio(query, short, source, owner, ids[chosen], chosen.sum(axis=1))
    keep = np.isin(short, expanded)
    order = np.arange(query.n)
    order[short[keep]] = query.n + np.arange(int(keep.sum()))
    vectors = take_rows(concatenate([query, take_rows(fresh, np.flatnonzero(keep))]), order)
    index = InvertedIndex(vectors, vocab_size)
    again = neighbourhood(take_rows(vectors, expanded), [*archive, (index, first_row)], self_offset=None,
                          own_columns=first_row + expanded)
    ids_out, sims_out = hood.ids.copy(), hood.sims.copy()
    ids_out[expanded], sims_out[expanded] = again.ids, again.sims
    mean_out, sd_out = hood.mean.copy(), hood.sd.copy()
    mean_out[expanded], sd_out[expanded] = again.mean, again.sd
    # Other query rows keep their neighbour lists; their cosines with expanded items are redone.
    local = ids_out - first_row
    stale = (local >= 0) & np.isin(local, expanded)
    stale[expanded] = False
    r, c = np.nonzero(stale)
    sims_out[r, c] = pair_cosines(vectors, r, local[r, c])
    return vectors, Neighbourhood(mean_out, sd_out, ids_out, sims_out)


def _rocchio(query: Vectors, short: np.ndarray, source: Vectors, owner: np.ndarray, picked: np.ndarray,
             counts: np.ndarray) -> Vectors:
    """Per short row: its vector plus FEEDBACK_WEIGHT × the mean of its picked source rows, L2-normalised."""
    own_owner, own_pos = postings(query, short)
    src_owner, src_pos = postings(source, picked)
    pair_owner = owner[src_owner]
    weight = FEEDBACK_WEIGHT / np.maximum(counts[pair_owner], 1)
    row = np.concatenate([own_owner, pair_owner])
    term = np.concatenate([query.indices[own_pos], source.indices[src_pos]])
    value = np.concatenate([query.data[own_pos].astype(np.float64), weight * source.data[src_pos]])
    width = int(max(query.indices.max(initial=0), source.indices.max(initial=0))) + 1
    unique, inverse = np.unique(row * width + term, return_inverse=True)
    summed = np.bincount(inverse, weights=value)
    r, t = np.divmod(unique, width)
    summed /= np.maximum(np.sqrt(np.bincount(r, weights=summed * summed, minlength=len(short))), 1e-12)[r]
    indptr = np.concatenate(([0], np.cumsum(np.bincount(r, minlength=len(short)))))
    return Vectors(indptr, t.astype(np.int64), summed.astype(np.float32))


def postings(vectors: Vectors, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the listed rows: each stored entry's position in `rows` and its index in the CSR arrays."""
    counts = vectors.nnz()[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    positions = np.repeat(vectors.indptr[rows] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    return owner, positions


def take_rows(vectors: Vectors, rows: np.ndarray) -> Vectors:
    """The listed rows, in that order, as a new CSR block."""
    owner, positions = postings(vectors, rows)
    indptr = np.concatenate(([0], np.cumsum(vectors.nnz()[rows])))
    return Vectors(indptr, vectors.indices[positions], vectors.data[positions])


def pair_cosines(vectors: Vectors, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of rows a[k] and b[k] for every k (rows are L2-normalised)."""
    if not len(a):
        return np.zeros(0, dtype=np.float32)
    width = int(vectors.indices.max(initial=0)) + 1
    b_owner, b_pos = postings(vectors, b)
    b_keys = b_owner * width + vectors.indices[b_pos]  # sorted: pairs in order, terms ascending
    a_owner, a_pos = postings(vectors, a)
    a_keys = a_owner * width + vectors.indices[a_pos]
    if not len(b_keys):
        return np.zeros(len(a), dtype=np.float32)
    at = np.minimum(np.searchsorted(b_keys, a_keys), len(b_keys) - 1)
    products = np.where(b_keys[at] == a_keys, vectors.data[a_pos].astype(np.float64) * vectors.data[b_pos][at], 0.0)
    return np.bincount(a_owner, weights=products, minlength=len(a)).astype(np.float32)
