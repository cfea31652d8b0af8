"""Story clustering and related coverage, with no database.

    grouping = group_documents(docs)            # one shot: a file, a window of articles

    index = StoryIndex()                        # incremental: keep the fitted archive
    index.fit(archive_docs)
    grouping = index.add(new_docs)              # new docs join a story or start one

Method (see docs/grouping.md for the measurements):

1. Each article becomes a sublinear TF-IDF vector of words, numbers and name
   features (text.py); similarities come from an inverted index (vectors.py).
2. Each similarity is re-expressed as a z-score against both documents' own
   background (similarity.py), which puts headlines and full text on one scale.
3. Average-link clustering over the neighbour graph merges while the mean z
   between two clusters is at least `story_z` (linkage.py). Articles published
   further apart than `window` are never linked into one story.
4. Related: each story's best-linked other story, kept only when the choice is
   mutual and above `related_z` (related.py). Nothing is better than filler.

Everything is ordered by document id first, so the result does not depend on
input order. `add` scores new articles against the frozen archive vocabulary and
background; refit from time to time (e.g. daily) so IDF follows the news.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from digest.group.documents import Doc, Grouping
from digest.group.linkage import average_link
from digest.group.related import related_documents
from digest.group.similarity import Background, Neighbourhood, neighbourhood
from digest.group.text import features_many
from digest.group.vectors import InvertedIndex, Vocabulary


@dataclass(frozen=True)
class GroupSettings:
    story_z: float = 3.5  # mean z between two clusters needed to call them one story
    edge_z: float = 1.0  # weaker pairs are background and are not kept as edges
    related_z: float = 1.5  # floor for the story-to-story linkage of related coverage
    related_limit: int = 5
    window: dt.timedelta = dt.timedelta(days=7)


def group_documents(docs: Sequence[Doc], settings: GroupSettings | None = None) -> Grouping:
    """Story label per document and up to `related_limit` related documents from other stories."""
    return StoryIndex(settings).fit(docs)


class StoryIndex:
    """A fitted archive that new articles can be added to without regrouping everything."""

    def __init__(self, settings: GroupSettings | None = None) -> None:
        self.settings = settings or GroupSettings()
        self.docs: list[Doc] = []
        self.position: dict[str, int] = {}
        self.vocab = Vocabulary()
        self.idf = np.zeros(0, dtype=np.float32)
        self.indexes: list[tuple[InvertedIndex, int]] = []
        self.background = Background(np.zeros(0), np.zeros(0))
        self.edges: list[dict[int, float]] = []  # per document: neighbour -> symmetric z
        self.story: list[int] = []
        self.members: dict[int, list[int]] = {}

    def fit(self, docs: Sequence[Doc]) -> Grouping:
        ordered = _canonical(docs)
        self.__init__(self.settings)  # type: ignore[misc]
        self.docs = ordered
        self.position = {d.id: i for i, d in enumerate(ordered)}
        if not ordered:
            return Grouping()
        bags = features_many([(d.title, d.text) for d in ordered])
        self.vocab.fit(bags)
        self.idf = self.vocab.idf()
        vectors = self.vocab.transform(bags, self.idf)
        self.indexes = [(InvertedIndex(vectors, len(self.vocab.df)), 0)]
        hood = neighbourhood(vectors, self.indexes, self_offset=0)
        self.background = Background(hood.mean, hood.sd)
        self.edges = [{} for _ in ordered]
        self._link(hood, first_row=0)
        story_edges = ((i, j, z) for i in range(len(ordered)) for j, z in self.edges[i].items()
                       if i < j and self._same_window(i, j))
        clusters = average_link(len(ordered), story_edges, self.settings.story_z)
        labels = {root: k for k, root in enumerate(sorted(clusters.size))}
        self.story = [labels[root] for root in clusters.labels]
        for i, label in enumerate(self.story):
            self.members.setdefault(label, []).append(i)
        return self.grouping()

    def add(self, docs: Sequence[Doc]) -> Grouping:
        """Place new articles (ids not seen before) into stories; returns the whole grouping."""
        fresh = [d for d in _canonical(docs) if d.id not in self.position]
        if not self.docs:
            return self.fit(fresh)
        if not fresh:
            return self.grouping()
        first = len(self.docs)
        fresh.sort(key=lambda d: (_timestamp(d) or 0.0, d.id))  # earlier articles found stories
        bags = features_many([(d.title, d.text) for d in fresh])
        vectors = self.vocab.transform(bags, self.idf)
        batch_index = (InvertedIndex(vectors, len(self.vocab.df)), first)
        hood = neighbourhood(vectors, [*self.indexes, batch_index], self_offset=first)
        self.indexes.append(batch_index)
        for d in fresh:
            self.position[d.id] = len(self.docs)
            self.docs.append(d)
        self.background = Background(np.concatenate([self.background.mean, hood.mean]),
                                     np.concatenate([self.background.sd, hood.sd]))
        self.edges.extend({} for _ in fresh)
        self._link(hood, first_row=first)
        for i in range(first, len(self.docs)):
            self._place(i)
        return self.grouping()

    def grouping(self) -> Grouping:
        related = related_documents(self.story, self.members, self.edges, self.settings.related_z,
                                    self.settings.related_limit)
        return Grouping(story_of={d.id: self.story[i] for i, d in enumerate(self.docs)},
                        related={d.id: [self.docs[j].id for j in related[i]] for i, d in enumerate(self.docs)})

    def _link(self, hood: Neighbourhood, first_row: int) -> None:
        """Record symmetric z-score edges from each new row to its neighbours."""
        rows, cols = np.nonzero(hood.ids >= 0)
        i = rows + first_row
        j = hood.ids[rows, cols]
        z = self.background.z(i, j, hood.sims[rows, cols].astype(np.float64))
        keep = z >= self.settings.edge_z
        for a, b, w in zip(i[keep].tolist(), j[keep].tolist(), z[keep].tolist(), strict=True):
            self.edges[a][b] = w
            self.edges[b][a] = w

    def _place(self, i: int) -> None:
        """Join the best-linked existing story (mean z over its members) or start a new one."""
        sums: dict[int, float] = {}
        for j, z in self.edges[i].items():
            if j < len(self.story) and self._same_window(i, j):
                sums[self.story[j]] = sums.get(self.story[j], 0.0) + z
        scored = [(s / len(self.members[label]), -label) for label, s in sums.items()]
        best = max(scored, default=None)
        if best is not None and best[0] >= self.settings.story_z:
            label = -best[1]
        else:
            label = max(self.members, default=-1) + 1
        self.story.append(label)
        self.members.setdefault(label, []).append(i)

    def _same_window(self, i: int, j: int) -> bool:
        a, b = _timestamp(self.docs[i]), _timestamp(self.docs[j])
        return a is None or b is None or abs(a - b) <= self.settings.window.total_seconds()


def _timestamp(doc: Doc) -> float | None:
    """Seconds since the epoch; naive datetimes are taken as UTC."""
    if doc.published is None:
        return None
    published = doc.published if doc.published.tzinfo else doc.published.replace(tzinfo=dt.UTC)
    return published.timestamp()


def _canonical(docs: Sequence[Doc]) -> list[Doc]:
    ordered = sorted(docs, key=lambda d: d.id)
    for a, b in zip(ordered, ordered[1:]):
        if a.id == b.id:
            raise ValueError(f"duplicate document id {a.id!r}")
    return ordered
