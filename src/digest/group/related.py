"""Related coverage: same topic, another event, or nothing.

"Same topic" is decided on the event-type vocabulary only: the common words of
each story (earthquake, magnitude, rehab, heavyweight, shooting), with names,
places and numbers left out, since those are what make it another event. Each
story becomes the centroid of its articles' word vectors, and two stories are
related only when all of these hold:

* mutual best: each is the other's closest story (a generic story weakly like
  many others is nobody's best match);
* unambiguous: the runner-up of either side is clearly further away (at most
  `ratio` of the best cosine, Lowe's ratio test): when two other stories are
  about as close, the choice is a guess, and a guess is filler;
* significant: the similarity, as a z-score against both stories' own
  background (their similarity to every other story, shrunk towards a news
  prior exactly like the article-level z, similarity.py), is at least `floor`;
* another event: no article of either story links to the other story as
  strongly as articles are linked into one story (mean article z >= the story
  threshold). Clustering that splits one event leaves its fragments each
  other's closest, unambiguous, significant match, exactly like a twin event;
  the articles on the seam are what give a split away.

A document's related items are the partner story's articles, most central first,
and only articles closer to their own story than to the partner take part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digest.group.similarity import Background, shrunk_stats
from digest.group.vectors import InvertedIndex, Vectors, Vocabulary


@dataclass(frozen=True)
class RelatedSettings:
    floor: float = 3.0  # z of the story-to-story similarity: three standard deviations
    ratio: float = 0.8  # runner-up / best cosine above this is ambiguous
    limit: int = 5
    same_story_z: float = 3.5  # an article linked this strongly to the partner story may be the same event


def topic_terms(vocab: Vocabulary, start: int = 0) -> np.ndarray:
    """Per term id from `start` on: True for event-type vocabulary, False for names, places, numbers.

    A word is a name when at least half of the documents that use it write it in
    Title Case inside a sentence (the ``E:`` twin feature of text.py counts those).
    """
    terms = list(vocab.ids)[start:]
    df = np.asarray(vocab.df, dtype=np.float64)
    ids = vocab.ids
    twin = np.fromiter((ids.get("E:" + t, -1) for t in terms), dtype=np.int64, count=len(terms))
    plain = np.fromiter((not (t.startswith("E:") or t[0].isdigit()) for t in terms), dtype=bool, count=len(terms))
    own = df[start : start + len(terms)]
    named = (twin >= 0) & (df[np.maximum(twin, 0)] >= 0.5 * np.maximum(own, 1.0))
    return plain & ~named


def story_partners(vectors: Vectors, story: list[int], keep: np.ndarray,
                   settings: RelatedSettings) -> dict[int, int]:
    """Story label -> its related story's label (symmetric), for the stories that have one."""
    labels = sorted(set(story))
    if len(labels) < 2:
        return {}
    row_story = np.searchsorted(labels, np.asarray(story))
    centroids = _centroids(vectors, row_story, len(labels), keep)
    best, top, runner_up, mean, sd = _closest_stories(centroids, len(keep))
    background = Background(mean, sd)
    partners: dict[int, int] = {}
    for a in range(len(labels)):
        b = int(best[a])
        if b < 0 or int(best[b]) != a:
            continue
        s = float(top[a])
        z = float(background.z(np.array([a]), np.array([b]), np.array([s]))[0])
        if z < settings.floor or max(runner_up[a], runner_up[b]) > settings.ratio * s:
            continue
        partners[labels[a]] = labels[b]
    return partners


def _closest_stories(centroids: Vectors, vocab_size: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per story: closest other story, its cosine, the runner-up's cosine, and the background.

    Stories are far fewer than articles, so every story-to-story cosine is computed
    exactly (rare terms from postings, common terms as one dense product), a block
    of rows at a time; the background (mean and sd over all other stories) is
    shrunk towards the news prior like the article-level one.
    """
    n = centroids.n
    index = InvertedIndex(centroids, vocab_size)
    best = np.full(n, -1, dtype=np.int64)
    top, runner_up = np.zeros(n), np.zeros(n)
    total, total_sq = np.zeros(n), np.zeros(n)
    step = max(16, 4_000_000 // max(n, 1))
    for first in range(0, n, step):
        last = min(first + step, n)
        rare, columns, values = index.rows(centroids, first, last)
        local = np.arange(last - first)
        common = np.zeros((len(local), index.dense.shape[1]), dtype=np.float32)
        np.add.at(common, (np.repeat(local, columns.shape[1]), columns.ravel()), values.ravel())
        sims = rare + common @ index.dense.T
        sims[local, first + local] = 0.0
        total[first:last] = sims.sum(axis=1)
        total_sq[first:last] = (sims * sims).sum(axis=1)
        sims[local, first + local] = -1.0
        two = np.argpartition(-sims, 1, axis=1)[:, :2]
        pair = sims[local[:, None], two]
        swap = (pair[:, 1] > pair[:, 0]) | ((pair[:, 1] == pair[:, 0]) & (two[:, 1] < two[:, 0]))
        two[swap] = two[swap][:, ::-1]
        best[first:last] = two[:, 0]
        top[first:last] = sims[local, two[:, 0]]
        runner_up[first:last] = np.maximum(sims[local, two[:, 1]], 0.0)
    best[top <= 0] = -1
    mean, sd = shrunk_stats(total, total_sq, np.full(n, n - 1, dtype=np.float64))
    return best, top, runner_up, mean, sd


def related_documents(vectors: Vectors, story: list[int], members: dict[int, list[int]],
                      keep: np.ndarray, settings: RelatedSettings, background: Background) -> list[list[int]]:
    """Per document index: up to `limit` related document indices, all from one other story.

    Same-event checks, in article z units (the scale the stories were made on):

    * a pair of stories is dropped when any article of either has a mean link to
      the other story of at least `same_story_z`, the linkage at which articles are
      made one story (cluster.GroupSettings.story_z): that article would join the
      other story if it arrived now, so the two may be one event that clustering
      split, and a split-off part of the story is not "related", it is the story;
    * an article takes part (as reader or as item shown) only when its mean link to
      its own story, itself left out, beats its mean link to the partner story: a
      twin event merged into one cluster leaves its articles closer to the other side.

    The partner's most central articles (highest mean link to their own story) come first.
    """
    out: list[list[int]] = [[] for _ in story]
    partners = story_partners(vectors, story, keep, settings)
    if not partners:
        return out
    used = sorted(partners)
    rows = np.asarray(sorted(i for a in used for i in members[a]), dtype=np.int64)
    slot = {label: k for k, label in enumerate(used)}
    row_slot = np.full(vectors.n, -1, dtype=np.int64)
    row_slot[rows] = [slot[story[i]] for i in rows.tolist()]
    own_slot = row_slot[rows]
    other_slot = np.asarray([slot[partners[story[i]]] for i in rows.tolist()], dtype=np.int64)
    links = _StoryLinks(vectors, rows, row_slot[rows], len(used), background)
    own_sum, self_term = links.total(rows, own_slot), links.self_term(rows)
    size = np.bincount(own_slot, minlength=len(used))
    alone = size[own_slot] == 1
    own_mean = np.where(alone, np.inf, (own_sum - self_term) / np.maximum(size[own_slot] - 1, 1))
    other_mean = links.total(rows, other_slot) / size[other_slot]
    joins = np.bincount(own_slot, weights=other_mean >= settings.same_story_z, minlength=len(used))
    partners = {a: b for a, b in partners.items() if joins[slot[a]] == 0 and joins[slot[b]] == 0}
    firm = set(rows[own_mean > other_mean].tolist())
    centrality = dict(zip(rows.tolist(), np.where(alone, 0.0, own_mean).tolist(), strict=True))
    for a, b in partners.items():
        shown = sorted((j for j in members[b] if j in firm), key=lambda j: (-centrality[j], j))[: settings.limit]
        for i in members[a]:
            if i in firm:
                out[i] = shown
    return out


class _StoryLinks:
    """Summed article z-scores between documents and whole stories, without the pairs.

    z(i, j) = ((s - μi)/σi + (s - μj)/σj) / 2 is linear in the document vectors, so
    its sum over a story J is one dot product with Σ_J x_j, one with Σ_J x_j/σj,
    and a constant Σ_J μj/σj: exact, and linear in the stories' sizes.
    """

    def __init__(self, vectors: Vectors, rows: np.ndarray, slots: np.ndarray, n_slots: int,
                 background: Background) -> None:
        self.vectors, self.background = vectors, background
        mean, sd = background.mean[rows], background.sd[rows]
        owner, positions = _postings(vectors, rows)
        self.width = int(vectors.indices.max(initial=0)) + 1
        unique, inverse = np.unique(slots[owner] * self.width + vectors.indices[positions], return_inverse=True)
        data = vectors.data[positions].astype(np.float64)
        self.keys = unique  # sorted (slot, term) keys of the per-story sums
        self.plain = np.bincount(inverse, weights=data, minlength=len(unique))
        self.scaled = np.bincount(inverse, weights=data / sd[owner], minlength=len(unique))
        self.offset = np.bincount(slots, weights=mean / sd, minlength=n_slots)
        self.size = np.bincount(slots, minlength=n_slots).astype(np.float64)

    def total(self, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Σ_{j in story} z(row, j) per (row, story slot) pair, the row itself included if a member."""
        owner, positions = _postings(self.vectors, rows)
        keys = slots[owner] * self.width + self.vectors.indices[positions]
        plain, scaled = np.zeros(len(rows)), np.zeros(len(rows))
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            data = np.where(self.keys[at] == keys, self.vectors.data[positions], 0.0)
            plain = np.bincount(owner, weights=data * self.plain[at], minlength=len(rows))
            scaled = np.bincount(owner, weights=data * self.scaled[at], minlength=len(rows))
        mean, sd = self.background.mean[rows], self.background.sd[rows]
        return 0.5 * ((plain - self.size[slots] * mean) / sd + scaled - self.offset[slots])

    def self_term(self, rows: np.ndarray) -> np.ndarray:
        """z(i, i): what a row contributes to its own story's total."""
        owner, positions = _postings(self.vectors, rows)
        norm = np.bincount(owner, weights=self.vectors.data[positions].astype(np.float64) ** 2, minlength=len(rows))
        return (norm - self.background.mean[rows]) / self.background.sd[rows]


def _postings(vectors: Vectors, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the listed rows: each stored entry's position in `rows` and its index in the CSR arrays."""
    counts = vectors.nnz()[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    positions = np.repeat(vectors.indptr[rows] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    return owner, positions


def _centroids(vectors: Vectors, row_story: np.ndarray, n_stories: int, keep: np.ndarray) -> Vectors:
    """Per story: the L2-normalised sum of its documents' (re-normalised) topic-word vectors."""
    counts = vectors.nnz()
    rows = np.repeat(np.arange(vectors.n), counts)
    terms = vectors.indices
    inside = terms < len(keep)
    mask = inside.copy()
    mask[inside] = keep[terms[inside]]
    rows, terms, data = rows[mask], terms[mask], vectors.data[mask].astype(np.float64)
    norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=vectors.n))
    data = data / np.maximum(norms[rows], 1e-12)
    owner = row_story[rows]
    key = owner * len(keep) + terms
    unique, inverse = np.unique(key, return_inverse=True)
    summed = np.bincount(inverse, weights=data)
    c_story, c_term = np.divmod(unique, len(keep))
    c_norm = np.sqrt(np.bincount(c_story, weights=summed * summed, minlength=n_stories))
    values = summed / np.maximum(c_norm[c_story], 1e-12)
    indptr = np.concatenate(([0], np.cumsum(np.bincount(c_story, minlength=n_stories))))
    return Vectors(indptr, c_term.astype(np.int64), values.astype(np.float32))
