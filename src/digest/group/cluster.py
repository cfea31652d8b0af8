"""Story clustering: TF-IDF cosine similarity with greedy centroid assignment.

Deterministic (documents are taken in (published, id) order). Headline-only
documents use their own, lower threshold: short texts share fewer words.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence

from digest.group.documents import Doc, Grouping
from digest.group.text import tokens

FULL_TEXT_THRESHOLD = 0.30
HEADLINE_THRESHOLD = 0.35
RELATED_FLOOR = 0.12
RELATED_LIMIT = 5

Vector = dict[str, float]


def vectorise(docs: Sequence[Doc]) -> list[Vector]:
    bags = [Counter(tokens(d.title) * 3 + tokens(d.text)) for d in docs]
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag.keys())
    n = len(docs)
    vectors = []
    for bag in bags:
        vec = {t: (1 + math.log(c)) * math.log((1 + n) / (1 + df[t])) + 1e-9 for t, c in bag.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors.append({t: v / norm for t, v in vec.items()})
    return vectors


def cosine(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def group_documents(docs: Sequence[Doc]) -> Grouping:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    order = sorted(range(len(docs)), key=lambda i: (docs[i].published or epoch, docs[i].id))
    vectors = vectorise(docs)
    centroids: list[Vector] = []
    sizes: list[int] = []
    label_of: dict[int, int] = {}
    for i in order:
        threshold = FULL_TEXT_THRESHOLD if docs[i].text.strip() else HEADLINE_THRESHOLD
        best, best_sim = -1, threshold
        for label, centroid in enumerate(centroids):
            sim = cosine(vectors[i], centroid)
            if sim >= best_sim:
                best, best_sim = label, sim
        if best < 0:
            centroids.append(dict(vectors[i]))
            sizes.append(1)
            label_of[i] = len(centroids) - 1
            continue
        label_of[i] = best
        sizes[best] += 1
        merged = Counter(centroids[best])
        for t, v in vectors[i].items():
            merged[t] += v
        norm = math.sqrt(sum(v * v for v in merged.values())) or 1.0
        centroids[best] = {t: v / norm for t, v in merged.items()}

    grouping = Grouping(story_of={docs[i].id: label for i, label in label_of.items()})
    for i in range(len(docs)):
        scored = []
        for j in range(len(docs)):
            if label_of[j] == label_of[i]:
                continue
            sim = cosine(vectors[i], vectors[j])
            if sim >= RELATED_FLOOR:
                scored.append((sim, docs[j].id))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        grouping.related[docs[i].id] = [doc_id for _, doc_id in scored[:RELATED_LIMIT]]
    return grouping
