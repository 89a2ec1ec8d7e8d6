"""Markdown → sanitised HTML for TechDocs pages, with heading anchors, a table of contents and YAML front matter.

Three steps per render, the engine and the sanitiser built once at import time:
- markdown-it-pyrs (the Rust port of markdown-it: CommonMark + tables + strikethrough + heading anchors, raw HTML on)
  turns the text into HTML. Every heading starts with `<a class="anchor" id="slug" href="#slug">`, GitHub-style
  slugs, duplicates numbered -1, -2…
- nh3 applies a strict allow-list to *all* of that HTML, so raw HTML in the Markdown gets no special trust. It also
  puts `ANCHOR_PREFIX` in front of every id and every in-page link (`#slug` → `#h-slug`), so ids can never clash with
  the page's own, while the author's `[see](#some-heading)` links still reach the heading they name.
- The table of contents is read back from that sanitised HTML, which has one fixed shape for headings.

URLs are judged by the sanitiser: `href` may be http(s), mailto or relative; `img src` must be absolute http(s).
markdown-it also refuses Markdown links and images to javascript:, vbscript:, file: and most data: URLs; those stay
on the page as their literal, inert Markdown text.
"""

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import nh3
import yaml
from markdown_it_pyrs import MarkdownIt

from catalog import safe_yaml

ANCHOR_PREFIX = "h-"
"""Every id in rendered HTML starts with this (the sanitiser adds it), so documents cannot reuse page ids."""


@dataclass(frozen=True)
class Heading:
    """One entry of the table of contents: an h1–h4 and the anchor that links to it."""

    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Rendered:
    """The result of `render`: HTML safe to mark safe in a template, its headings in order, and its title."""

    html: str
    toc: tuple[Heading, ...]
    title: str | None


def render(*, text: str) -> Rendered:
    """Render Markdown to sanitised HTML with anchored headings; call `split_front_matter` first if the text has any."""
    unsafe_html = _MARKDOWN.render(text, xhtml=False).replace(_ANCHOR_ICON, "")
    if _TABLE_ALIGN_MARK in unsafe_html:
        unsafe_html = _TABLE_ALIGN_RE.sub(r'<\1 align="\2">', unsafe_html)
    safe_html = _CLEANER.clean(unsafe_html)
    toc = tuple(_headings(safe_html))
    title = next((heading.text for heading in toc if heading.level == 1), None)
    return Rendered(html=safe_html, toc=toc, title=title)


def _headings(safe_html: str) -> Iterator[Heading]:
    """The anchored h1–h4 of sanitised HTML, in order: each `<hN>` up to the first `</hN>` after it (a heading
    without one is skipped), searched on after that. Raw HTML headings have no anchor, so stay out of the TOC."""
    find, position = safe_html.find, 0
    while (start := _HEADING_START_RE.search(safe_html, position)) is not None:
        end = find(f"</h{start[1]}>", start.end())
        if end < 0:
            position = start.start() + 1
            continue
        inner, position = safe_html[start.end() : end], end + 5
        anchor = _ANCHOR_RE.search(inner)
        if anchor is not None:
            text_html = inner[: anchor.start()] + inner[anchor.end() :]
            yield Heading(level=int(start[1]), text=_visible_text(text_html), anchor=anchor[1])


_YAML_LOADER = safe_yaml.Loader
_FRONT_MATTER_RE = re.compile(r"\A\ufeff?---[ \t]*\r?\n(?P<yaml>.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)


def split_front_matter(*, text: str) -> tuple[dict[str, Any], str]:
    """Split a leading `---` YAML block from the Markdown body; ({}, text) when there is none (or it never closes).

    Raises ValueError, naming the line of the whole document, when the block is not valid YAML or not a mapping, so an
    author can find the mistake.
    """
    match = _FRONT_MATTER_RE.match(text)
    if match is None:
        return {}, text
    try:
        # libyaml's parser when present, and plain documents built directly (see catalog.safe_yaml): front matter
        # is read for every runbook of an import.
        data = yaml.load(match["yaml"], Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        # +2 on each line number: the opening `---` is line 1 and YAML counts from 0.
        message = "Front matter is not valid YAML"
        if exc.problem_mark is not None:
            message += f" at line {exc.problem_mark.line + 2}"
        message += f": {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} started at line {exc.context_mark.line + 2})"
        raise ValueError(message) from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"Front matter is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ValueError("Front matter must be a YAML mapping with text keys (`key: value` lines), line 2 onwards.")
    return data, text[match.end() :]


def _visible_text(inner_html: str) -> str:
    """The text of a heading's sanitised inner HTML: tags dropped, entities decoded, whitespace collapsed."""
    if "<" in inner_html or "&" in inner_html:  # most headings are plain text
        inner_html = html.unescape(_TAG_RE.sub("", inner_html))
    return " ".join(inner_html.split())


_MARKDOWN = MarkdownIt("commonmark").enable_many(["table", "strikethrough", "heading_anchors"])


def _anchor_icon() -> str:
    """The octicon markdown-it-pyrs draws in every heading anchor, read from its own output so upgrades stay right."""
    match = re.search(r"<svg\b.*?</svg>", _MARKDOWN.render("# x", xhtml=False), re.DOTALL)
    if match is None:
        raise RuntimeError("markdown-it-pyrs heading_anchors no longer draws an <svg> icon: update techdocs.markdown")
    return match[0]


_ANCHOR_ICON = _anchor_icon()
"""Removed before sanitising: nh3 would drop it anyway (svg is not allowed), and it is over half the raw HTML."""

# markdown-it writes style="text-align:…" on table cells; style never passes the sanitiser, align does.
_TABLE_ALIGN_RE = re.compile(r'<(th|td) style="text-align:(left|center|right)">')
_TABLE_ALIGN_MARK = ' style="text-align:'  # a quick test that saves the substitution's scan when there is none

# A tag of nh3's output, where attribute values are always double-quoted (robust even to a ">" inside one).
_TAG_RE = re.compile(r'<(?:[^">]|"[^"]*")*>')
# A Markdown heading as nh3 writes it back: <hN><a aria-hidden="true" class="anchor" id="h-…" href="#h-…" rel="…"></a>…
# </hN>. The anchor is searched for inside the heading, since raw HTML around a heading can put other tags before it.
_HEADING_START_RE = re.compile(r"<h([1-4])>")
_ANCHOR_RE = re.compile(r'<a aria-hidden="true" class="anchor" id="([^"]*)"[^>]*></a>')

_CODE_CLASS_RE = re.compile(r"language-[a-z0-9+-]+")
_LIST_START_RE = re.compile(r"[0-9]{1,9}")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Second pass after the allow-list: prefixed ids and in-page links, few classes, numeric starts, http(s) images."""
    if attribute == "id":
        # Always prefixed, even "h-…" (the slug of "H setup"), so ids stay unique and page ids stay out of reach.
        return ANCHOR_PREFIX + value
    if attribute == "href":
        # The same mapping for in-page links, so "#h-setup" still reaches the heading whose id was "h-setup".
        return f"#{ANCHOR_PREFIX}{value[1:]}" if value.startswith("#") and len(value) > 1 else value
    if attribute == "class":
        names = value.lower().split()
        if tag == "a":
            return "anchor" if "anchor" in names else None
        kept = [name for name in names if _CODE_CLASS_RE.fullmatch(name)]
        return " ".join(kept) or None
    if attribute == "start":
        return value if _LIST_START_RE.fullmatch(value) else None
    if tag == "img" and attribute == "src":
        return value if urlsplit(value).scheme.lower() in ("http", "https") else None
    return value


_ALIGN = {"align": {"left", "center", "right"}}
_CLEANER = nh3.Cleaner(
    tags={
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "hr", "br"),
        *("table", "thead", "tbody", "tr", "th", "td", "pre", "code", "a", "img"),
        *("em", "strong", "s", "del", "details", "summary", "sup", "sub", "kbd"),
    },
    clean_content_tags={"script", "style"},
    attributes={
        "*": {"id", "lang", "title"},  # a "*" entry replaces nh3's default generic attributes, lang and title
        "a": {"href", "title", "class"},
        "img": {"src", "alt", "title"},
        "code": {"class"},
        "ol": {"start"},
    },
    tag_attribute_values={"th": _ALIGN, "td": _ALIGN, "a": {"aria-hidden": {"true"}}},
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
)
