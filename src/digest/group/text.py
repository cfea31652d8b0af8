"""Tokenising for similarity: words for alphabetic scripts, character bigrams for Hangul/CJK."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")

STOPWORDS = frozenset("""
a about after again all also an and any are as at be been before being but by can could did do does
during each for from had has have he her here hers him his how i if in into is it its itself just me
more most my no nor not now of off on once only or other our out over own said same says she should so
some such than that the their them then there these they this those through to too under until up very
was we were what when where which while who whom why will with would you your new one two year years
""".split())


def tokens(text: str) -> list[str]:
    """Lower-cased content tokens; Hangul/CJK runs become overlapping bigrams (no word spaces to rely on)."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            if len(word) == 1:
                out.append(word)
            out.extend(word[i : i + 2] for i in range(len(word) - 1))
        elif len(word) > 1 and not word.isdigit() and word not in STOPWORDS:
            out.append(word)
    return out
