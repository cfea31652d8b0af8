"""Finding and rendering templates: an override folder first, then the bundled ones.

Pipeline per compiled body: Jinja2 (autoescaped for MJML) → mjml-python → premailer.
The compiled HTML is never rendered as a template again (see `digest_email.fill`).
"""

from __future__ import annotations

import logging
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import mjml
from premailer import Premailer

from digest.errors import RenderError
from digest.render.i18n import language_of, translations

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent
TEXT_WIDTH = 76

# cssutils reports every vendor property it does not know at WARNING; that is noise here.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
logging.getLogger("cssutils").setLevel(logging.CRITICAL)


def bundled_path(*parts: str) -> Path:
    """A bundled resource: inside the wheel (`digest/_bundled/…`) or, in a checkout, at the repo root."""
    installed = _PACKAGE / "_bundled" / Path(*parts)
    if installed.exists():
        return installed
    return _PACKAGE.parent.parent / Path(*parts)


def display_width(value: str) -> int:
    """Columns a string takes in a monospace font: East Asian wide characters count twice."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in value)


def wrap_text(value: object, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap for the text part: words are never broken (URLs stay clickable); CJK counts double width."""
    first = indent if first is None else first
    out: list[str] = []
    for paragraph in str(value).split("\n"):
        words = paragraph.split()
        if not words:
            out.append("")
            continue
        line, prefix = "", first
        for word in words:
            if _is_cjk_run(word) and display_width(indent + word) > width:
                # An unspaced CJK run (Japanese, Chinese) wider than a line: break between characters.
                line = _break_run(out, prefix, f"{line} {word}" if line else word, width, indent)
                prefix = indent
                continue
            candidate = f"{line} {word}" if line else word
            if line and display_width(prefix + candidate) > width:
                out.append(prefix + line)
                line, prefix = word, indent
            else:
                line = candidate
        out.append(prefix + line)
    return "\n".join(out)


def _is_cjk_run(word: str) -> bool:
    return any(unicodedata.east_asian_width(c) in "WF" for c in word)


def _break_run(out: list[str], prefix: str, rest: str, width: int, indent: str) -> str:
    while display_width(prefix + rest) > width:
        cut = 0
        while cut < len(rest) and display_width(prefix + rest[: cut + 1]) <= width:
            cut += 1
        out.append(prefix + rest[:cut].rstrip())
        rest, prefix = rest[cut:].lstrip(), indent
    return rest


@lru_cache(maxsize=32)
def environment(override_dir: Path | None = None, locale: str | None = None) -> jinja2.Environment:
    """One environment per (override folder, language): gettext is bound to the language's catalogue."""
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(override_dir)))
    loaders.append(jinja2.FileSystemLoader(str(bundled_path("templates", "email"))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2"), default_for_string=True,
                                            default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(language_of(locale)), newstyle=True)  # type: ignore[attr-defined]
    env.filters["wrap"] = wrap_text
    return env


def render_template(name: str, context: dict[str, Any], override_dir: Path | None = None,
                    locale: str | None = None) -> str:
    try:
        return environment(override_dir, language_of(locale)).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from None


def compile_mjml(source: str) -> str:
    try:
        # fonts={}: no Google Fonts <link>/@import (a tracking request, and premailer would try to fetch it).
        return mjml.mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:  # MRML raises plain exceptions with a parser message
        raise RenderError(f"MJML did not compile: {exc}") from None


def inline_css(html: str) -> str:
    """Inline CSS for clients that drop <style>; keep !important and media queries for dark mode."""
    try:
        return Premailer(
            html,
            strip_important=False,
            keep_style_tags=True,
            allow_network=False,
            allow_loading_external_files=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            disable_leftover_css=False,
        ).transform(pretty_print=False)
    except Exception as exc:  # premailer/cssutils/lxml raise a zoo of types
        raise RenderError(f"CSS inlining failed: {exc}") from None


def render_mjml(base: str, context: dict[str, Any], override_dir: Path | None = None,
                locale: str | None = None) -> str:
    """Jinja → MJML → HTML, without inlining (cheap; used to size a digest before the final pass)."""
    return compile_mjml(render_template(f"{base}.mjml.j2", context, override_dir, locale))


def render_text(base: str, context: dict[str, Any], override_dir: Path | None = None,
                locale: str | None = None) -> str:
    return tidy_text(render_template(f"{base}.txt.j2", context, override_dir, locale))


def render_email(base: str, context: dict[str, Any], override_dir: Path | None = None,
                 locale: str | None = None) -> tuple[str, str]:
    """(html, text) for `base` (e.g. "digest"): the MJML compiled and inlined, the text twin from the same data."""
    html = inline_css(render_mjml(base, context, override_dir, locale))
    return html, render_text(base, context, override_dir, locale)


def tidy_text(text: str) -> str:
    out: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"
