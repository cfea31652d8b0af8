"""Story-grouping benchmark: quality on labelled ECB+ data, and speed at 10,000 articles.

    python benchmarks/grouping.py [--data PATH] [--skip-speed] [--skip-baseline]

Prints story B-cubed precision / recall / F1 and related precision@5 (a related
item is correct when it has the same topic but another story; coverage is the
share of documents that get any related item, at most 1.0 on ECB+, where every
document has a same-topic other story; wrong items are split into the reader's
own gold story, a clustering split leaking through, and another topic) for full text and headline-only
input, the naive TF-IDF + average-link baseline computed in the same run, a
held-out check (odd vs even topics), and the speed figures on synthetic articles
recombined from the same texts. Labels are read here only, never by the grouper.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from digest.group.cluster import StoryIndex, group_documents  # noqa: E402
from digest.group.documents import Doc, Grouping  # noqa: E402
from digest.group.text import tokens  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "grouping" / "ecbplus-dev.jsonl"
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s")


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def as_docs(rows: Sequence[dict], headline_only: bool) -> list[Doc]:
    """Headline-only: text blanked; rows without a title use their first sentence as one."""
    if not headline_only:
        return [Doc(id=r["id"], title=r.get("title", ""), text=r.get("text", "")) for r in rows]
    out = []
    for r in rows:
        title = r.get("title", "") or _FIRST_SENTENCE.split(r.get("text", "").strip(), maxsplit=1)[0]
        out.append(Doc(id=r["id"], title=title, text=""))
    return out


def bcubed(predicted: dict[str, int], gold: dict[str, str]) -> tuple[float, float, float]:
    pred_members: dict[int, set[str]] = defaultdict(set)
    gold_members: dict[str, set[str]] = defaultdict(set)
    for doc_id, label in predicted.items():
        pred_members[label].add(doc_id)
    for doc_id, label in gold.items():
        gold_members[label].add(doc_id)
    p = r = 0.0
    for doc_id in gold:
        a, b = pred_members[predicted[doc_id]], gold_members[gold[doc_id]]
        shared = len(a & b)
        p += shared / len(a)
        r += shared / len(b)
    p, r = p / len(gold), r / len(gold)
    return p, r, 2 * p * r / (p + r) if p + r else 0.0


def related_precision(grouping: Grouping, rows: Sequence[dict], k: int = 5) -> tuple[float, float, int, int, int]:
    """(micro precision@k over returned items, coverage, items returned, wrong items of the
    reader's own gold story, wrong items of another topic)."""
    story = {r["id"]: r["story"] for r in rows}
    topic = {r["id"]: r["topic"] for r in rows}
    returned = correct = covered = same_story = other_topic = 0
    for doc_id, related in grouping.related.items():
        covered += bool(related)
        for other in related[:k]:
            returned += 1
            correct += topic[other] == topic[doc_id] and story[other] != story[doc_id]
            same_story += story[other] == story[doc_id]
            other_topic += topic[other] != topic[doc_id]
    precision = correct / returned if returned else float("nan")
    return precision, covered / max(len(grouping.related), 1), returned, same_story, other_topic


def naive_baseline(docs: Sequence[Doc], threshold: float = 0.15, floor: float = 0.12) -> Grouping:
    """TF-IDF + cosine + average-link at one fixed threshold; related = top cosine above a floor."""
    bags = [Counter(tokens(d.title) * 3 + tokens(d.text)) for d in docs]
    vocab: dict[str, int] = {}
    for bag in bags:
        for term in bag:
            vocab.setdefault(term, len(vocab))
    df = np.zeros(len(vocab))
    for bag in bags:
        df[[vocab[t] for t in bag]] += 1
    x = np.zeros((len(docs), len(vocab)))
    for i, bag in enumerate(bags):
        for term, count in bag.items():
            x[i, vocab[term]] = (1 + math.log(count)) * math.log((1 + len(docs)) / (1 + df[vocab[term]]))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    link = sims.copy()
    np.fill_diagonal(link, -np.inf)
    size = np.ones(len(docs))
    members = {i: [i] for i in range(len(docs))}
    while len(members) > 1:
        flat = int(np.argmax(link))
        a, b = divmod(flat, len(docs))
        if link[a, b] < threshold:
            break
        link[a] = (link[a] * size[a] + link[b] * size[b]) / (size[a] + size[b])
        link[:, a] = link[a]
        link[a, a] = link[b] = link[:, b] = -np.inf
        size[a] += size[b]
        members[a] += members.pop(b)
    label = {i: k for k, group in enumerate(members.values()) for i in group}
    grouping = Grouping(story_of={d.id: label[i] for i, d in enumerate(docs)})
    for i, d in enumerate(docs):
        order = [j for j in np.argsort(-sims[i], kind="stable") if label[j] != label[i] and sims[i, j] >= floor]
        grouping.related[d.id] = [docs[j].id for j in order[:5]]
    return grouping


def quality(name: str, grouper: Callable[[Sequence[Doc]], Grouping], rows: Sequence[dict]) -> None:
    gold = {r["id"]: r["story"] for r in rows}
    for headline_only in (False, True):
        docs = as_docs(rows, headline_only)
        started = time.perf_counter()
        grouping = grouper(docs)
        elapsed = time.perf_counter() - started
        p, r, f = bcubed(grouping.story_of, gold)
        p5, coverage, returned, same_story, other_topic = related_precision(grouping, rows)
        mode = "headline-only" if headline_only else "full text"
        print(f"{name:<22} {mode:<14} B3 P={p:.3f} R={r:.3f} F1={f:.3f}   related P@5={p5:.3f} "
              f"coverage={coverage:.2f} items={returned} (wrong: {same_story} same story, {other_topic} other "
              f"topic)   stories={len(set(grouping.story_of.values()))} ({elapsed:.2f}s)")


def synthetic(rows: Sequence[dict], count: int, seed: int = 7) -> list[Doc]:
    """`count` articles recombined from the ECB+ texts: ~8 per synthetic story, names renamed per story."""
    rng = random.Random(seed)
    by_story: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_story[r["story"]].append(r)
    stories = sorted(by_story)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    docs: list[Doc] = []
    for number in range(math.ceil(count / 8)):
        source = by_story[rng.choice(stories)]
        tag = _tag(number)
        # Capitalised words get a per-story suffix, so recombined stories are distinct events.
        rename = re.compile(r"\b([A-Z][a-z]+)\b")
        when = start + dt.timedelta(hours=rng.randrange(60 * 24))
        for copy in range(8):
            base = rng.choice(source)
            sentences = _FIRST_SENTENCE.split(base["text"])
            extra = _FIRST_SENTENCE.split(rng.choice(source)["text"])
            picked = sentences[: max(1, int(len(sentences) * rng.uniform(0.5, 1.0)))] + extra[-2:]
            text = rename.sub(lambda m: m.group(1) + tag, " ".join(picked))
            title = rename.sub(lambda m: m.group(1) + tag, base["title"] or sentences[0][:80])
            docs.append(Doc(id=f"s{number}-{copy}", title=title, text=text,
                            published=when + dt.timedelta(hours=rng.randrange(48))))
    return docs[:count]


def _tag(number: int) -> str:
    letters = "bcdfghjklmnpqrstvwxz"
    out = ""
    while True:
        number, digit = divmod(number, len(letters))
        out += letters[digit]
        if not number:
            return out


def speed(rows: Sequence[dict], repeat: int = 3) -> None:
    """Best of `repeat` wall-clock runs (the machine is shared), with CPU including worker processes."""
    docs = synthetic(rows, 10_100)
    archive, fresh = docs[:10_000], docs[10_000:]
    fits, adds = [], []
    for _ in range(repeat):
        before = os.times()
        started = time.perf_counter()
        index = StoryIndex()
        grouping = index.fit(archive)
        wall = time.perf_counter() - started
        after = os.times()
        cpu = (after.user - before.user + after.system - before.system)
        workers = (after.children_user - before.children_user + after.children_system - before.children_system)
        fits.append((wall, cpu, workers))
        started, cpu_start = time.perf_counter(), time.process_time()
        added = index.add(fresh)
        adds.append((time.perf_counter() - started, time.process_time() - cpu_start))
    gold = {d.id: d.id.split("-")[0] for d in archive}
    p, r, f = bcubed(grouping.story_of, gold)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wall, cpu, workers = min(fits)
    add_wall, add_cpu = min(adds)
    print(f"speed ({os.cpu_count()} cores, load {load:.1f}, best of {repeat}): group 10,000 synthetic articles "
          f"{wall:.2f}s wall ({', '.join(f'{w:.2f}' for w, _, _ in fits)}), {cpu:.2f}s CPU in this process "
          f"+ {workers:.2f}s in feature workers [synthetic B3 F1={f:.3f}]; add 100 to the fitted 10,000: "
          f"{add_wall:.2f}s wall ({', '.join(f'{w:.2f}' for w, _ in adds)}), {add_cpu:.2f}s CPU; related coverage "
          f"after the add {sum(map(bool, added.related.values())) / len(added.related):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    rows = load(args.data)
    print(f"{args.data}: {len(rows)} documents, {len({r['story'] for r in rows})} stories, "
          f"{len({r['topic'] for r in rows})} topics")
    quality("digest.group", group_documents, rows)
    if not args.skip_baseline:
        quality("baseline tfidf+avglink", naive_baseline, rows)
    for parity in (1, 0):
        subset = [r for r in rows if int(r["topic"]) % 2 == parity]
        quality(f"held-out {'odd' if parity else 'even'} topics", group_documents, subset)
    titled = [r for r in rows if r.get("title")]
    gold = {r["id"]: r["story"] for r in titled}
    p, r, f = bcubed(group_documents(as_docs(titled, True)).story_of, gold)
    print(f"headlines only, {len(titled)} documents with a real title: B3 P={p:.3f} R={r:.3f} F1={f:.3f}")
    if not args.skip_speed:
        speed(rows)


if __name__ == "__main__":
    main()
