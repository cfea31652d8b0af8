"""Sparse TF-IDF vectors and exact similarity rows, in plain numpy.

Documents are rows of a CSR matrix (indptr, indices, data), L2-normalised. An
inverted index (the same matrix sorted by term) gives a block of similarity rows
with one gather and one bincount, so the cost is the number of (document, shared
term) postings touched, not n² × vocabulary. Common terms would make that cost
grow with df², so InvertedIndex keeps them as a small dense matrix instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digest.group.text import Bags

DENSE_FROM_DOCS = 100  # terms in more documents than this (and than the share) go dense
DENSE_FROM_SHARE = 0.02


@dataclass
class Vectors:
    """L2-normalised rows in CSR form."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def nnz(self) -> np.ndarray:
        return np.diff(self.indptr)


def concatenate(parts: Sequence[Vectors]) -> Vectors:
    """Stack the rows of several CSR blocks."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [int(p.indptr[-1]) for p in parts[:-1]])
    indptr = np.concatenate([[0]] + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)])
    return Vectors(indptr, np.concatenate([p.indices for p in parts]), np.concatenate([p.data for p in parts]))


class Vocabulary:
    """Term ids and document frequencies; frozen after `fit` except for new terms' ids."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.df: list[int] = []
        self.n_docs = 0

    def fit(self, bags: Bags) -> None:
        ids = self._ids(bags)  # also extends df with zeros for new terms
        self.df = (np.asarray(self.df, dtype=np.int64) + np.bincount(ids, minlength=len(self.df))).tolist()
        self.n_docs += len(bags)

    def idf(self) -> np.ndarray:
        df = np.asarray(self.df, dtype=np.float64)
        return np.log((1.0 + self.n_docs) / (1.0 + df)).astype(np.float32)

    def transform(self, bags: Bags, idf: np.ndarray) -> Vectors:
        """Sublinear tf × idf, L2-normalised. Unseen terms get the idf of a term seen once."""
        terms = self._ids(bags)
        counts = bags.counts
        lengths = bags.lengths
        row_of = np.repeat(np.arange(len(bags)), lengths)
        order = np.lexsort((terms, row_of))  # each row's terms ascending
        terms, counts = terms[order], counts[order]
        full_idf = np.full(len(self.ids), math.log((1.0 + self.n_docs) / 2.0), dtype=np.float64)
        full_idf[: len(idf)] = idf
        data = (1.0 + np.log(counts)) * full_idf[terms]
        norms = np.sqrt(np.bincount(row_of, weights=data * data, minlength=len(bags)))
        norms[norms == 0] = 1.0
        indptr = np.concatenate(([0], np.cumsum(lengths)))
        return Vectors(indptr, terms, (data / norms[row_of]).astype(np.float32))

    def _ids(self, bags: Bags) -> np.ndarray:
        """Global term ids for every (bag, term) entry, adding unseen terms to the vocabulary."""
        ids = self.ids
        remap = np.fromiter((ids.setdefault(t, len(ids)) for t in bags.terms), dtype=np.int64,
                            count=len(bags.terms))
        if len(ids) > len(self.df):
            self.df.extend([0] * (len(ids) - len(self.df)))
        return remap[bags.ids]


class InvertedIndex:
    """Postings (document, weight) per term for a fixed set of documents.

    Rare terms (the ones that make two articles one story) live in postings lists.
    Common terms (in more than DENSE_FROM_DOCS and DENSE_FROM_SHARE of the documents) would make postings cost
    grow with df², so they are kept as a small dense matrix instead and only
    scored exactly for candidate pairs and for a sample of columns.
    """

    def __init__(self, vectors: Vectors, vocab_size: int) -> None:
        self.n_docs = n = vectors.n
        rows = np.repeat(np.arange(n, dtype=np.int64), vectors.nnz())
        terms = vectors.indices
        df = np.bincount(terms, minlength=vocab_size)
        cap = max(DENSE_FROM_DOCS, int(DENSE_FROM_SHARE * n))
        common = np.flatnonzero(df > cap)
        self.dense_column = np.full(vocab_size, -1, dtype=np.int64)
        self.dense_column[common] = np.arange(len(common))
        is_common = self.dense_column[terms] >= 0
        # One spare all-zero column: padding for rows with fewer common terms than others.
        self.dense = np.zeros((n, len(common) + 1), dtype=np.float32)
        self.dense[rows[is_common], self.dense_column[terms[is_common]]] = vectors.data[is_common]
        rare = ~is_common
        order = np.argsort(terms[rare], kind="stable")
        self.docs = rows[rare][order]
        self.weights = vectors.data[rare][order].astype(np.float64)
        counts = np.bincount(terms[rare], minlength=vocab_size)
        self.start = np.concatenate(([0], np.cumsum(counts)))

    def rows(self, query: Vectors, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows first..last of the query: rare-term similarities to every document, and the
        query's common terms as padded (column, weight) pairs: columns of `dense`, the
        padding pointing at the zero column."""
        vocab = len(self.start) - 1
        lo, hi = query.indptr[first], query.indptr[last]
        terms = query.indices[lo:hi]
        weights = query.data[lo:hi].astype(np.float64)
        local_row = np.repeat(np.arange(last - first), np.diff(query.indptr[first : last + 1]))
        inside = terms < vocab
        terms, weights, local_row = terms[inside], weights[inside], local_row[inside]
        dense_col = self.dense_column[terms]
        is_common = dense_col >= 0
        per_row = np.bincount(local_row[is_common], minlength=last - first)
        width = max(1, int(per_row.max(initial=0)))
        slot = np.arange(int(is_common.sum())) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        columns = np.full((last - first, width), self.dense.shape[1] - 1, dtype=np.int64)
        values = np.zeros((last - first, width), dtype=np.float32)
        columns[local_row[is_common], slot] = dense_col[is_common]
        values[local_row[is_common], slot] = weights[is_common]
        begin, end = self.start[terms], self.start[terms + 1]
        lengths = end - begin
        total = int(lengths.sum())
        size = (last - first) * self.n_docs
        rare = np.zeros(size)
        if total:
            # Positions of every posting of every query term, without a Python loop.
            offsets = np.repeat(begin - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
            owner = np.repeat(np.arange(len(terms)), lengths)
            keys = local_row[owner] * self.n_docs + self.docs[offsets]
            rare = np.bincount(keys, weights=weights[owner] * self.weights[offsets], minlength=size)
        return rare.reshape(last - first, self.n_docs), columns, values
