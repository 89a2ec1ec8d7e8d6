"""Markdown → sanitised HTML for TechDocs pages, with heading anchors, a table of contents and YAML front matter.

Two stages, each built once at import time:
- markdown-it-py (CommonMark + tables + strikethrough, raw HTML on) turns the text into HTML. A core rule gives h1–h4
  a stable, unique `id` (prefixed `ANCHOR_PREFIX`) and collects the table of contents.
- nh3 then applies a strict allow-list to *all* of that HTML, so raw HTML in the Markdown gets no special trust.

URLs are judged once, by the sanitiser: `href` may be http(s), mailto or relative; `img src` must be absolute http(s).
markdown-it's own link check (a deny-list) is switched off, because a link it rejects is left on the page as literal
Markdown source; with it off such a link renders as plain text and nh3 drops the URL.
"""

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import nh3
import yaml
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

ANCHOR_PREFIX = "h-"
"""Every generated heading id starts with this; the sanitiser drops any other id, so documents cannot reuse page ids."""

_ANCHORED_TAGS = frozenset({"h1", "h2", "h3", "h4"})
_TOC_ENV_KEY = "techdocs_toc"


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
    env: dict[str, Any] = {}
    unsafe_html = _MARKDOWN.render(text, env)
    toc: tuple[Heading, ...] = tuple(env.get(_TOC_ENV_KEY, ()))
    title = next((heading.text for heading in toc if heading.level == 1), None)
    return Rendered(html=_CLEANER.clean(unsafe_html), toc=toc, title=title)


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
        data = yaml.safe_load(match["yaml"])
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


def _slugify(text: str) -> str:
    """Lower-case words joined by hyphens, accents dropped but other scripts kept ("Café 日本" → "cafe-日本")."""
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(char for char in decomposed if not unicodedata.combining(char))
    words = re.sub(r"[^\w\s-]", "", without_marks.lower())
    # NFC re-composes scripts that NFKD split but that have no separate accents (Hangul syllables).
    return unicodedata.normalize("NFC", re.sub(r"[\s_-]+", "-", words).strip("-"))


def _heading_text(inline: Token) -> str:
    """The visible text of a heading: text and code spans, without markup or raw HTML."""
    parts = []
    for child in inline.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


def _anchor_headings(state: StateCore) -> None:
    """Give h1–h4 unique ids (duplicates get -2, -3…) and store the TOC in env; turn table alignment into `align`."""
    used: set[str] = set()
    toc: list[Heading] = []
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in _ANCHORED_TAGS:
            text = _heading_text(tokens[index + 1])
            base = ANCHOR_PREFIX + (_slugify(text) or "section")
            anchor, suffix = base, 2
            while anchor in used:
                anchor, suffix = f"{base}-{suffix}", suffix + 1
            used.add(anchor)
            token.attrSet("id", anchor)
            toc.append(Heading(level=int(token.tag[1]), text=text, anchor=anchor))
        elif token.type in ("th_open", "td_open") and "style" in token.attrs:
            # markdown-it writes style="text-align:right"; style attributes never pass the sanitiser, align does.
            style = str(token.attrs.pop("style"))
            token.attrSet("align", style.removeprefix("text-align:"))
    state.env[_TOC_ENV_KEY] = toc


def _render_del(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """Strikethrough as <del> (markdown-it emits <s>), so the allow-list needs one tag for it."""
    return "<del>" if tokens[idx].nesting == 1 else "</del>"


class _TechDocsMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        """Accept every URL here: the sanitiser's scheme allow-list decides (see the module docstring)."""
        return True


_MARKDOWN = _TechDocsMarkdown("commonmark", {"html": True}).enable(["table", "strikethrough"])
_MARKDOWN.core.ruler.push("techdocs_anchors", _anchor_headings)
_MARKDOWN.add_render_rule("s_open", _render_del)
_MARKDOWN.add_render_rule("s_close", _render_del)


_CODE_CLASS_RE = re.compile(r"language-[a-z0-9+-]+")
_LIST_START_RE = re.compile(r"[0-9]{1,9}")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Second pass after the allow-list: only our anchors, language-* classes, numeric list starts, http(s) images."""
    if attribute == "id":
        return value if value.startswith(ANCHOR_PREFIX) else None
    if attribute == "class":
        kept = [name.lower() for name in value.split() if _CODE_CLASS_RE.fullmatch(name.lower())]
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
        *("em", "strong", "del", "details", "summary", "sup", "sub", "kbd"),
    },
    clean_content_tags={"script", "style"},
    attributes={
        **{tag: {"id"} for tag in _ANCHORED_TAGS},
        "a": {"href", "title"},
        "img": {"src", "alt", "title"},
        "code": {"class"},
        "ol": {"start"},
    },
    tag_attribute_values={"th": _ALIGN, "td": _ALIGN},
    attribute_filter=_attribute_filter,
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer",
)
