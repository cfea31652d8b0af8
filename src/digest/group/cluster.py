"""Story clustering and related coverage, with no database.

    grouping = group_documents(docs)            # one shot: a file, a window of articles

    index = StoryIndex()                        # incremental: keep the fitted archive
    index.fit(archive_docs)                     # (or fit(archive_docs, stories=labels) to keep labels)
    grouping = index.add(new_docs)              # new docs join a story or start one

Method (see docs/grouping.md for the measurements):

1. Each article becomes a sublinear TF-IDF vector of words, numbers and name
   features (text.py); similarities come from an inverted index (vectors.py).
2. Each similarity is re-expressed as a z-score against both documents' own
   background (similarity.py), which puts headlines and full text on one scale.
   Headline-length items then take in the words of their closest story-strength
   neighbours (Rocchio feedback, feedback.py) and are compared again.
3. Average-link clustering over the neighbour graph merges while the mean z
   between two clusters is at least `story_z` (linkage.py). Articles published
   further apart than `window` are never linked into one story.
4. Related (related.py): stories are compared on their event-type vocabulary
   (common words; names, places and numbers left out). A pair is related only
   when each is the other's closest story, the runner-up is clearly further
   (ratio test), the similarity is a z >= `related_z` outlier against the
   stories' own background, and no article of either story links to the other
   at `story_z` (it could be the same event, split by the clustering). Nothing
   is better than filler.

Everything is ordered by document id first, so the result does not depend on
input order. `add` scores new articles against the frozen archive vocabulary and
background; refit from time to time (e.g. daily) so IDF follows the news.
`fit(docs, stories=labels)` indexes an archive grouped earlier without regrouping
it; the database path (recent.py) does that on every run, then `add`s the new articles.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from digest.group.documents import Doc, Grouping
from digest.group.feedback import refine
from digest.group.linkage import average_link
from digest.group.related import RelatedSettings, related_documents, topic_terms
from digest.group.similarity import Background, Neighbourhood, neighbourhood
from digest.group.text import features_many
from digest.group.vectors import InvertedIndex, Vectors, Vocabulary, concatenate


@dataclass(frozen=True)
class GroupSettings:
    story_z: float = 3.5  # mean z between two clusters needed to call them one story
    edge_z: float = 1.0  # weaker pairs are background and are not kept as edges
    related_z: float = 3.0  # floor (z) for the story-to-story similarity of related coverage
    related_ratio: float = 0.8  # runner-up / best story similarity above this: ambiguous, show nothing
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
        self.vectors: list[Vectors] = []  # per fitted or added batch, in document order
        self.background = Background(np.zeros(0), np.zeros(0))
        self.topic = np.zeros(0, dtype=bool)  # per term: event-type vocabulary (related.topic_terms)
        self.times = np.zeros(0)  # per document: seconds since the epoch, NaN when unknown
        self.edges = _no_edges()  # (i, j, z) with i < j, each in-window pair once
        self.story: list[int] = []
        self.members: dict[int, list[int]] = {}

    def fit(self, docs: Sequence[Doc], stories: Mapping[str, int] | None = None) -> Grouping:
        """Index `docs` and cluster them; with `stories` (id -> label for every doc), keep those
        labels instead (an archive grouped by earlier runs), ready for `add`."""
        ordered = _canonical(docs)
        if stories is not None and any(d.id not in stories for d in ordered):
            raise ValueError("every document needs a story label")
        self.__init__(self.settings)  # type: ignore[misc]
        self.docs = ordered
        self.position = {d.id: i for i, d in enumerate(ordered)}
        if not ordered:
            return Grouping()
        bags = features_many([(d.title, d.text) for d in ordered])
        self.vocab.fit(bags)
        self.idf = self.vocab.idf()
        vectors = self.vocab.transform(bags, self.idf)
        index = InvertedIndex(vectors, len(self.vocab.df))
        hood = neighbourhood(vectors, [(index, 0)], self_offset=0)
        refined = refine(vectors, hood, 0, [], None, None, len(self.vocab.df), self.settings.story_z)
        if refined is not None:  # headline-length items took in their closest neighbours' words
            vectors, hood = refined
            index = InvertedIndex(vectors, len(self.vocab.df))
        self.vectors = [vectors]
        self.indexes = [(index, 0)]
        self.background = Background(hood.mean, hood.sd)
        self.times = _timestamps(ordered)
        self.edges = self._link(hood, first_row=0)
        if stories is not None:
            self.story = [int(stories[d.id]) for d in ordered]
        else:
            clusters = average_link(len(ordered), self.edges, self.settings.story_z)
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
        refined = refine(vectors, hood, first, self.indexes, concatenate(self.vectors), self.background,
                         len(self.vocab.df), self.settings.story_z)
        if refined is not None:
            vectors, hood = refined
            batch_index = (InvertedIndex(vectors, len(self.vocab.df)), first)
        self.indexes.append(batch_index)
        self.vectors.append(vectors)
        for d in fresh:
            self.position[d.id] = len(self.docs)
            self.docs.append(d)
        self.background = Background(np.concatenate([self.background.mean, hood.mean]),
                                     np.concatenate([self.background.sd, hood.sd]))
        self.times = np.concatenate([self.times, _timestamps(fresh)])
        new = self._link(hood, first_row=first)
        self.edges = (np.concatenate([self.edges[0], new[0]]), np.concatenate([self.edges[1], new[1]]),
                      np.concatenate([self.edges[2], new[2]]))
        neighbours: dict[int, dict[int, float]] = {}
        for a, b, z in zip(*(part.tolist() for part in new), strict=True):
            neighbours.setdefault(a, {})[b] = z
            neighbours.setdefault(b, {})[a] = z
        for i in range(first, len(self.docs)):
            self._place(i, neighbours.get(i, {}))
        return self.grouping()

    def grouping(self) -> Grouping:
        related: list[list[int]] = [[] for _ in self.docs]
        if self.docs:
            if len(self.topic) < len(self.vocab.ids):  # terms first seen by `add`
                self.topic = np.concatenate([self.topic, topic_terms(self.vocab, start=len(self.topic))])
            related = related_documents(concatenate(self.vectors), self.story, self.members,
                                        self.topic, self._related_settings(), self.background)
        return Grouping(story_of={d.id: self.story[i] for i, d in enumerate(self.docs)},
                        related={d.id: [self.docs[j].id for j in related[i]] for i, d in enumerate(self.docs)})

    def _related_settings(self) -> RelatedSettings:
        s = self.settings
        return RelatedSettings(floor=s.related_z, ratio=s.related_ratio, limit=s.related_limit,
                               same_story_z=s.story_z)

    def _link(self, hood: Neighbourhood, first_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Symmetric z-score edges from each new row to its neighbours: (i, j, z), i < j, each pair once.

        Pairs published further apart than the window are dropped here: they may
        never be one story, and related coverage does not use these edges.
        """
        rows, cols = np.nonzero(hood.ids >= 0)
        i = rows + first_row
        j = hood.ids[rows, cols]
        z = self.background.z(i, j, hood.sims[rows, cols].astype(np.float64))
        gap = np.abs(self.times[i] - self.times[j])
        keep = (z >= self.settings.edge_z) & ~(gap > self.settings.window.total_seconds())  # NaN: unknown
        lo, hi, z = np.minimum(i, j)[keep], np.maximum(i, j)[keep], z[keep]
        # A pair found from both ends appears twice; keep the first (lowest key) once.
        _, once = np.unique(lo * len(self.times) + hi, return_index=True)
        return lo[once], hi[once], z[once]

    def _place(self, i: int, neighbours: dict[int, float]) -> None:
        """Join the best-linked existing story (mean z over its members) or start a new one."""
        sums: dict[int, float] = {}
        for j, z in neighbours.items():
            if j < len(self.story):
                sums[self.story[j]] = sums.get(self.story[j], 0.0) + z
        scored = [(s / len(self.members[label]), -label) for label, s in sums.items()]
        best = max(scored, default=None)
        if best is not None and best[0] >= self.settings.story_z:
            label = -best[1]
        else:
            label = max(self.members, default=-1) + 1
        self.story.append(label)
        self.members.setdefault(label, []).append(i)

def _timestamp(doc: Doc) -> float | None:
    """Seconds since the epoch; naive datetimes are taken as UTC."""
    if doc.published is None:
        return None
    published = doc.published if doc.published.tzinfo else doc.published.replace(tzinfo=dt.UTC)
    return published.timestamp()


def _timestamps(docs: Sequence[Doc]) -> np.ndarray:
    return np.array([np.nan if (t := _timestamp(d)) is None else t for d in docs], dtype=np.float64)


def _no_edges() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)


def _canonical(docs: Sequence[Doc]) -> list[Doc]:
    ordered = sorted(docs, key=lambda d: d.id)
    for a, b in zip(ordered, ordered[1:]):
        if a.id == b.id:
            raise ValueError(f"duplicate document id {a.id!r}")
    return ordered
