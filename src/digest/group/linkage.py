"""Average-link agglomerative clustering over a sparse similarity graph.

Pairs that are not edges count as similarity 0 (background: for z-scores that is
exactly "unrelated"), so the linkage of two clusters is the sum of their edge
weights divided by |A|·|B|. Merging stops when no pair of clusters links at or
above the threshold. Ties break on the smaller cluster ids, so the result depends
only on the edges, not on dict or heap order.

An average of at least the threshold needs at least one edge at or above it, so
every cluster is connected by such strong edges: the nodes are first split into
the components of the strong edges, and only edges inside a component are kept.
That is exact and leaves the heap a small fraction of the graph.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass
class Clusters:
    labels: list[int]  # per node: the smallest member index of its cluster
    links: dict[int, dict[int, float]]  # between cluster labels: summed edge weight
    size: dict[int, int]

    def linkage(self, a: int, b: int) -> float:
        """Average-link score of clusters a and b (0 when no edge joins them)."""
        return self.links.get(a, {}).get(b, 0.0) / (self.size[a] * self.size[b])


def average_link(n: int, edges: tuple[np.ndarray, np.ndarray, np.ndarray], threshold: float) -> Clusters:
    """Cluster the `n` nodes; `edges` = (i, j, weight) arrays, each pair once; missing edges count 0."""
    first, second, weight = edges
    component = _components(n, first[weight >= threshold], second[weight >= threshold])
    inside = (component[first] == component[second]) & (first != second)
    links: list[dict[int, float]] = [{} for _ in range(n)]
    for i, j, w in zip(first[inside].tolist(), second[inside].tolist(), weight[inside].tolist(), strict=True):
        links[i][j] = links[i].get(j, 0.0) + w
        links[j][i] = links[j].get(i, 0.0) + w
    size = [1] * n
    version = [0] * n
    alive = [True] * n
    parent = list(range(n))
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, b: int) -> None:
        if a > b:
            a, b = b, a
        score = links[a][b] / (size[a] * size[b])
        if score >= threshold:
            heapq.heappush(heap, (-score, a, b, version[a], version[b]))

    for a in range(n):
        for b in links[a]:
            if a < b:
                push(a, b)
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or va != version[a] or vb != version[b]:
            continue
        # Merge b into a (a < b): a's index stays the label, so labels are min member ids.
        alive[b] = False
        parent[b] = a
        for c, w in links[b].items():
            if c == a:
                continue
            links[a][c] = links[a].get(c, 0.0) + w
            links[c][a] = links[c].get(a, 0.0) + w
            del links[c][b]
        links[a].pop(b, None)
        links[b] = {}
        size[a] += size[b]
        version[a] += 1
        for c in sorted(links[a]):
            push(a, c)
    labels = list(range(n))
    for i in range(n):  # parent links always point to a smaller index: one pass resolves them
        labels[i] = labels[parent[i]]
    roots = [a for a in range(n) if alive[a]]
    return Clusters(labels, {a: links[a] for a in roots}, {a: size[a] for a in roots})


def _components(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected-component id per node (union-find with path halving)."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.fromiter((root(x) for x in range(n)), dtype=np.int64, count=n)
