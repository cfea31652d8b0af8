"""`digest group --input A.jsonl --output B.jsonl`: the production grouping on a file.

Reads `{id, title, text, published?, url?}` lines, writes `{id, story, related}`
lines. Label fields in the input are ignored on purpose.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from digest.errors import DigestError
from digest.group.cluster import group_documents
from digest.group.documents import Doc


def read_docs(lines: Iterable[str], origin: str = "input") -> Iterator[Doc]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DigestError(f"{origin}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "id" not in record:
            raise DigestError(f"{origin}:{number}: each line needs an object with an 'id'")
        published = None
        if record.get("published"):
            try:
                published = dt.datetime.fromisoformat(str(record["published"]).replace("Z", "+00:00"))
            except ValueError:
                raise DigestError(f"{origin}:{number}: 'published' is not an ISO 8601 date") from None
            if published.tzinfo is None:
                published = published.replace(tzinfo=dt.UTC)
        yield Doc(id=str(record["id"]), title=str(record.get("title") or ""), text=str(record.get("text") or ""),
                  published=published, url=str(record.get("url") or ""))


def group_file(input_path: Path, output_path: Path) -> int:
    """Group the documents of one JSONL file into another; returns the number of documents."""
    try:
        with input_path.open(encoding="utf-8") as handle:
            docs = list(read_docs(handle, str(input_path)))
    except OSError as exc:
        raise DigestError(f"cannot read {input_path}: {exc.strerror}") from None
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise DigestError(f"{input_path}: duplicate ids")
    grouping = group_documents(docs)
    with output_path.open("w", encoding="utf-8") as out:
        for doc in docs:
            out.write(json.dumps({"id": doc.id, "story": grouping.story_of[doc.id],
                                  "related": grouping.related.get(doc.id, [])}, ensure_ascii=False) + "\n")
    return len(docs)
