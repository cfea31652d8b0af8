"""Related coverage: same topic, another event, or nothing.

Two stories are related when the average z-score linking their articles is at
least the floor AND each is the other's best-linked story. The mutual-best test
is what keeps filler out: a generic story weakly linked to many others is
nobody's best match, while the other earthquake, the other rehab check-in, is.
A document's related items are the other story's articles, closest first.
"""

from __future__ import annotations


def related_documents(story: list[int], members: dict[int, list[int]], edges: list[dict[int, float]],
                      floor: float, limit: int) -> list[list[int]]:
    """Per document index: up to `limit` related document indices from other stories."""
    sums: dict[tuple[int, int], float] = {}
    for i, neighbours in enumerate(edges):
        a = story[i]
        for j, z in neighbours.items():
            b = story[j]
            if a != b:
                sums[(a, b)] = sums.get((a, b), 0.0) + z
    best: dict[int, tuple[float, int]] = {}
    for (a, b), total in sums.items():
        score = total / (len(members[a]) * len(members[b]))
        if score >= floor and (score, -b) > best.get(a, (float("-inf"), 0)):
            best[a] = (score, -b)
    partner = {a: -b for a, (_, b) in best.items()}
    out: list[list[int]] = [[] for _ in story]
    for a, b in partner.items():
        if partner.get(b) != a:
            continue
        for i in members[a]:
            ranked = sorted(members[b], key=lambda j: (-edges[i].get(j, 0.0), j))
            out[i] = ranked[:limit]
    return out
