"""The Jinja2 environment of every benchinit page, and the filters templates format with.

Every page (report, runs index, compare, history) is one self-contained file that loads
nothing when it opens. The rules that keep that promise live here, once:

- autoescaping is on and undefined names are errors, so a study's or a plugin's string is
  always text, never markup;
- Markdown (a study's description, a plugin section's text, a plugin's doc) is rendered
  with raw HTML off; an image reaches the page only as an embedded ``data:image/...``
  source (anything else would be fetched from the network when the page opens, so it is
  shown as its alt text); a link survives only when it is ``http(s):``, ``mailto:`` or a
  ``#fragment`` (a link is followed only when clicked, never fetched; ``javascript:``,
  ``data:``, ``file:`` and the rest are shown as plain text);
- numbers are formatted once (``num``): 4 significant digits, never ``-0``.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup

DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*$")
_SAFE_LINK = re.compile(r"^(https?://|mailto:|#)", re.IGNORECASE)
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+?)`")


def number(value: Any, digits: int = 4) -> str:
    """A number for a table: ``digits`` significant digits, '–' for missing, never '-0'."""
    if value is None or value is pd.NA:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "–"
    text = f"{x:.{digits}g}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def cell(value: Any) -> str:
    """A plugin table's cell as text: floats to 6 significant digits (never '-0'),
    everything else as ``str``."""
    if isinstance(value, float | np.floating):
        return number(value, 6)
    if value is None:
        return ""
    return str(value)


def _validate_link(url: str) -> bool:
    """Links and images that markdown-it may parse at all (rendering filters further)."""
    url = url.strip()
    return bool(_SAFE_LINK.match(url) or DATA_IMAGE.match(url))


def _image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    if DATA_IMAGE.match(src):
        return str(self.image(tokens, idx, options, env))
    alt = self.renderInlineAsText(token.children or [], options, env)
    return f'<span class="blocked">[image not loaded: {escapeHtml(alt or src)}]</span>'


def _link_open(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not _SAFE_LINK.match(href.strip()):  # data: images pass validation, not as links
        token.attrSet("href", "#")
    token.attrSet("rel", "noopener noreferrer nofollow")
    return str(self.renderToken(tokens, idx, options, env))


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False})
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.add_render_rule("image", _image)
    md.add_render_rule("link_open", _link_open)
    return md


def markdown(text: str) -> Markup:
    """Markdown to HTML under the rules in the module docstring."""
    return Markup(_markdown().render(str(text or "")))


def inline_markdown(text: str) -> Markup:
    """One line of Markdown (no paragraph): a plugin's doc in a table cell."""
    return Markup(_markdown().renderInline(str(text or "")))


def doc(text: str) -> Markup:
    """A plugin's doc line: reStructuredText roles (``:class:`x```) become code spans and
    its double-backtick literals are Markdown code spans already; rendered inline."""
    return inline_markdown(_RST_ROLE.sub(r"`\1`", str(text or "")))


def csv_uri(frame: pd.DataFrame) -> str:
    """A figure's numbers as a ``data:text/csv`` URI (base64, so no character of the data
    can end the attribute it sits in)."""
    text = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(text.encode()).decode()


@functools.cache
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: the package's templates, autoescaped, strict."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("benchinit.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["markdown"] = markdown
    env.filters["doc"] = doc
    return env
