"""Message catalogues: gettext `.po` files read at run time, one per language.

The catalogue is ordinary gettext (`locales/<lang>.po`, template `locales/digest.pot`), so
translators use the usual tools (Poedit, Weblate, `pybabel update`). We read `.po` directly
with the small parser below instead of shipping compiled `.mo` files: no binary artefacts
that can drift from their source, and no runtime dependency on Babel (which stays an
optional tool for extraction; `docs/render.md` has the command).
"""

from __future__ import annotations

import ast
import gettext
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from digest.errors import RenderError

LOCALE_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT_LANGUAGE = "en"

# Latin faces first for European languages; CJK faces first where the script is CJK so Latin
# glyphs inside Korean text come from the same (metrically matched) face.
_LATIN = "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial"
FONT_STACKS: dict[str, str] = {
    "ko": "'Apple SD Gothic Neo', 'Malgun Gothic', 'Noto Sans KR', 'Noto Sans CJK KR', " + _LATIN + ", sans-serif",
    "ja": "'Hiragino Sans', 'Hiragino Kaku Gothic ProN', Meiryo, 'Noto Sans JP', 'Noto Sans CJK JP', " + _LATIN
          + ", sans-serif",
    "zh": "'PingFang SC', 'Microsoft YaHei', 'Noto Sans SC', 'Noto Sans CJK SC', " + _LATIN + ", sans-serif",
}
DEFAULT_FONT_STACK = _LATIN + ", 'Apple SD Gothic Neo', 'Malgun Gothic', 'Noto Sans CJK KR', sans-serif"
CJK_LANGUAGES = frozenset({"ko", "ja", "zh"})


def language_of(locale: str | None) -> str:
    """'ko-KR', 'ko_KR.UTF-8' → 'ko'; empty → the default language."""
    value = (locale or "").strip().split(".")[0].replace("_", "-").split("-")[0].lower()
    return value if value.isalpha() else DEFAULT_LANGUAGE


def font_stack(locale: str | None) -> str:
    return FONT_STACKS.get(language_of(locale), DEFAULT_FONT_STACK)


class PoTranslations(gettext.GNUTranslations):
    """GNUTranslations fed from a `.po` text instead of a `.mo` file."""

    def _parse(self, fp: IO[Any]) -> None:
        self._catalog: dict[Any, str] = {}
        self._info: dict[str, str] = {}
        self._charset = "utf-8"
        self.plural = lambda n: int(n != 1)
        entries = parse_po(fp.read())
        header = entries.pop("", None)
        if isinstance(header, str):
            for line in header.splitlines():
                key, _, value = line.partition(":")
                if key.strip():
                    self._info[key.strip().lower()] = value.strip()
            forms = self._info.get("plural-forms", "")
            if "plural=" in forms:
                self.plural = gettext.c2py(forms.split("plural=", 1)[1].strip().rstrip(";"))
        for msgid, value in entries.items():
            if isinstance(value, str):
                self._catalog[msgid] = value
            else:
                for index, text in enumerate(value):
                    self._catalog[(msgid, index)] = text


def parse_po(text: str) -> dict[str, str | list[str]]:
    """{msgid: msgstr or [msgstr[0], …]}; fuzzy and untranslated entries are left out."""
    entries: dict[str, str | list[str]] = {}
    current: dict[str, str] = {}
    key = ""
    fuzzy = False

    def flush() -> None:
        nonlocal current, fuzzy
        if "msgid" in current and not fuzzy:
            plurals = sorted((k for k in current if k.startswith("msgstr[")), key=lambda k: int(k[7:-1]))
            if plurals:
                values = [current[k] for k in plurals]
                if all(values):
                    entries[current["msgid"]] = values
            elif current.get("msgstr") or current["msgid"] == "":
                entries[current["msgid"]] = current.get("msgstr", "")
        current, fuzzy = {}, False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                if "msgid" in current:
                    flush()
                fuzzy = True
        elif line.startswith('"'):
            if not key:
                raise RenderError(f"catalogue line {number}: continuation without a keyword")
            current[key] += _unquote(line, number)
        else:
            keyword, _, rest = line.partition(" ")
            if keyword == "msgid" and "msgid" in current:
                flush()
            if keyword not in ("msgid", "msgid_plural", "msgstr", "msgctxt") and not keyword.startswith("msgstr["):
                raise RenderError(f"catalogue line {number}: unknown keyword {keyword!r}")
            key = keyword
            current[key] = _unquote(rest.strip(), number)
    flush()
    return entries


def _unquote(token: str, number: int) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise RenderError(f"catalogue line {number}: expected a quoted string")
    try:
        value = ast.literal_eval(token)  # C-style escapes (\n, \", \\) are Python's too
    except (ValueError, SyntaxError):
        raise RenderError(f"catalogue line {number}: bad escape in {token!r}") from None
    return str(value)


@lru_cache(maxsize=16)
def translations(locale: str | None) -> gettext.NullTranslations:
    """The catalogue for a locale's language; English source strings when there is none."""
    path = LOCALE_DIR / f"{language_of(locale)}.po"
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open(encoding="utf-8") as handle:
        return PoTranslations(handle)


def available_languages() -> list[str]:
    return list(_catalogues())


@lru_cache(maxsize=1)
def _catalogues() -> tuple[str, ...]:
    # The catalogues ship with the package; the subscribe form asks on every request.
    return tuple(sorted(p.stem for p in LOCALE_DIR.glob("*.po")))


