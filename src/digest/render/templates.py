"""Finding and rendering templates: an override folder first, then the bundled ones."""

from __future__ import annotations

import logging
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import mjml
from premailer import Premailer

from digest.errors import RenderError

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent.parent


def bundled_path(*parts: str) -> Path:
    """A bundled resource: inside the wheel (`digest/_bundled/…`) or, in a checkout, at the repo root."""
    installed = _PACKAGE / "_bundled" / Path(*parts)
    if installed.exists():
        return installed
    return _PACKAGE.parent.parent / Path(*parts)


def _wrap(value: str, width: int = 76) -> str:
    return "\n".join(textwrap.fill(p, width, break_long_words=False, break_on_hyphens=False) if p else ""
                     for p in str(value).split("\n"))


@lru_cache(maxsize=8)
def environment(override_dir: Path | None = None) -> jinja2.Environment:
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
    )
    env.filters["wrap"] = _wrap
    return env


def render_template(name: str, context: dict[str, Any], override_dir: Path | None = None) -> str:
    try:
        return environment(override_dir).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name} not found") from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"template {name}: {exc}") from None


def compile_mjml(source: str) -> str:
    try:
        return mjml.mjml2html(source, disable_comments=True)
    except Exception as exc:  # MRML raises plain exceptions with a parser message
        raise RenderError(f"MJML did not compile: {exc}") from None


# cssutils reports every vendor property it does not know at WARNING; that is noise here.
logging.getLogger("CSSUTILS").setLevel(logging.CRITICAL)
logging.getLogger("cssutils").setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """Inline CSS for clients that drop <style>; keep !important and media queries for dark mode."""
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


def render_email(base: str, context: dict[str, Any], override_dir: Path | None = None) -> tuple[str, str]:
    """(html, text) for `base` (e.g. "digest"): the MJML compiled and inlined, the text twin from the same data."""
    mjml_source = render_template(f"{base}.mjml.j2", context, override_dir)
    html = inline_css(compile_mjml(mjml_source))
    text = render_template(f"{base}.txt.j2", context, override_dir)
    return html, _tidy_text(text)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"
