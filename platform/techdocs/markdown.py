"""Markdown → sanitised HTML for TechDocs pages, with heading anchors, a table of contents and YAML front matter.

First `limits_check` reads the source once (size, nesting of block quotes, lists and HTML, and the renderer's
superlinear paths; see the notes above it for why this renderer and this guard): a text over a limit is never given
to the renderer or the sanitiser, and shows as escaped plain text under a notice. The same check refuses such text
when a runbook or ADR is saved or imported. Then three steps, the engine and the sanitiser built once at import time:
- markdown-it-pyrs (the Rust port of markdown-it: CommonMark + tables + strikethrough + heading anchors + bare URLs
  as links, raw HTML on) turns the text into HTML. Every heading starts with
  `<a class="anchor" id="slug" href="#slug">`, GitHub-style slugs, duplicates numbered -1, -2…
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import nh3
import yaml
from markdown_it_pyrs import MarkdownIt

from catalog import safe_yaml

_HEADING_TAG_RE = re.compile(r"<(/?)h([1-6])(?=[\s>])")
# Part of the rendering cache's key (techdocs.selectors): raise it whenever the same text would render differently,
# so that an upgrade does not serve a day of pages drawn the old way.
RENDER_VERSION = 3
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
    problem: str = ""
    """Why the text was not rendered (over a limit), or "" when it was."""

    @property
    def html_in_page(self) -> str:
        """`html` with every heading one level down (h1 → h2 … h5 → h6), for a page whose own h1 is the document's
        title: a page has one h1, and screen readers list headings by level. Anchors and the table of contents stay."""
        return _HEADING_TAG_RE.sub(lambda match: f"<{match[1]}h{min(int(match[2]) + 1, 6)}", self.html)


def render(*, text: str) -> Rendered:
    """Render Markdown to sanitised HTML with anchored headings; call `split_front_matter` first if the text has any.

    A text over the limits (see `limits_check`) is never given to the renderer or the sanitiser: it comes back as
    its escaped source in a <pre>, under a notice saying which limit it broke, with `problem` set.
    """
    try:
        limits_check(text=text)
    except LimitError as error:
        return unrendered(text=text, problem=str(error))
    return _render_checked(text)


def _render_checked(text: str) -> Rendered:
    """The three steps, for a text `limits_check` accepted."""
    unsafe_html = _MARKDOWN.render(text, xhtml=False).replace(_ANCHOR_ICON, "")
    if _TABLE_ALIGN_MARK in unsafe_html:
        unsafe_html = _TABLE_ALIGN_RE.sub(r'<\1 align="\2">', unsafe_html)
    if (depth := _output_depth_over(unsafe_html, limits().max_nesting)) is not None:
        # Emphasis can nest the output deeper than the source scan sees; nh3 must not get it either.
        return unrendered(text=text, problem=f"Its emphasis nests more than {depth} deep; simplify it.")
    safe_html = _CLEANER.clean(unsafe_html)
    toc = tuple(_headings(safe_html))
    title = next((heading.text for heading in toc if heading.level == 1), None)
    return Rendered(html=safe_html, toc=toc, title=title)


def unrendered(*, text: str, problem: str) -> Rendered:
    """What a document over the limits shows instead: a notice and its source, escaped (cheap whatever the text)."""
    notice = html.escape(f"This document is shown as plain text: {problem}")
    source = html.escape(text[: limits().max_bytes])
    more = "\n…" if len(text) > limits().max_bytes else ""
    return Rendered(
        html=f'<p class="notice" role="note">{notice}</p>\n<pre class="markdown-source">{source}{more}</pre>\n',
        toc=(),
        title=None,
        problem=problem,
    )


# The elements the renderer nests from emphasis, which the source checks do not bound (container and raw HTML depth
# are): `*` runs in one paragraph can open hundreds of <em>/<strong> inside each other.
_INLINE_TAG_RE = re.compile(r"<(/?)(em|strong|s)>")


def _output_depth_over(unsafe_html: str, max_nesting: int) -> int | None:
    """The depth limit if the renderer nested emphasis deeper than it, else None: nh3's parser (html5ever) takes time
    in proportion to depth for each tag, so its input is bounded too."""
    if unsafe_html.count("<em>") + unsafe_html.count("<strong>") + unsafe_html.count("<s>") <= max_nesting:
        return None
    return max_nesting if _tag_depth_over(unsafe_html, _INLINE_TAG_RE, max_nesting) is not None else None


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


# ---------------------------------------------------------------------------------------------------------------
# Limits, checked before anything is rendered or sanitised.
#
# Why markdown-it-pyrs with a guard, not markdown-it-py with maxNesting (measured on the bench's 200 KB runbook,
# tests/bench/bench_catalog_as_code.py, on the shared 2-core box): markdown-it-pyrs renders it in ~11 ms (~25 ms
# with nh3 and the TOC), markdown-it-py 4.3 (+ mdit-py-plugins) in ~90 ms before sanitising, so the pure-Python
# engine alone misses the 50 ms target. Neither is bounded by itself: markdown-it-pyrs recurses without a depth limit
# (nested `>`, `- `, `1. `, long runs of `*` overflow the stack and kill the process), is superlinear on some inputs
# (emphasis runs in
# one paragraph, link reference definitions, repeated headings' anchors, unclosed `<?`/`<![CDATA[`) and lets one
# table line amplify into millions of cells; markdown-it-py is linear but still takes seconds on 256 KB of such
# input, and nh3 (html5ever) is quadratic in HTML nesting whichever renderer feeds it. So: the fast renderer, and a
# scan of the source that refuses what it cannot render in bounded time, with a clear reason. The scan covers every
# crashing or slow kind of input found (about 60, from CommonMark's pathological tests and beyond; none renders in
# more than a few hundred ms at 256 KB on a thread with a 512 KB stack). The renderer has no limits of its own, so a
# new kind needs a budget here; rendering in a child process with a deadline would bound even those.
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_MAX_BYTES = 256 * 1024
"""MARKDOWN_MAX_BYTES: the largest document rendered (UTF-8 bytes). The bench's 200 KB runbook fits."""
DEFAULT_MAX_NESTING = 32
"""MARKDOWN_MAX_NESTING: the deepest nesting of block quotes and list items, and of HTML tags."""

# Budgets for the renderer's superlinear paths, far above what real documents use (the bench's 200 KB runbook:
# 558 headings, 66 of them "Escalation", 971 emphasis runs in all, no reference definitions).
MAX_TABLE_CELLS = 65_536  # markdown-it's own cap on cells it pads out: a wide header over many short rows
MAX_HEADINGS = 2_000
MAX_SAME_HEADING = 200  # headings with one text: each gets a numbered anchor, found by trying -1, -2...
MAX_LINK_DEFINITIONS = 500
MAX_EMPHASIS_RUNS = 2_000  # runs of * _ ~ in one paragraph (or one table row)
MAX_EMPHASIS_RUN_LENGTH = 64
MAX_UNCLOSED_HTML = 20  # `<?` or `<![CDATA[` with no end after it: each is searched for to the end of the text


class LimitError(ValueError):
    """A document over the limits: it is never given to the renderer. The message names the limit and what to fix."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_nesting: int


def limits() -> Limits:
    """The limits in force: settings MARKDOWN_MAX_BYTES and MARKDOWN_MAX_NESTING, or the defaults."""
    from django.conf import settings

    return Limits(
        max_bytes=int(getattr(settings, "MARKDOWN_MAX_BYTES", DEFAULT_MAX_BYTES)),
        max_nesting=int(getattr(settings, "MARKDOWN_MAX_NESTING", DEFAULT_MAX_NESTING)),
    )


def limits_check(*, text: str, limits_: Limits | None = None) -> None:
    """Raise LimitError when `text` is over a limit, saying which: a few regular expression passes, ~4 ms per 200 KB.

    The same check guards rendering, saving (forms, API) and importing, so a document that is accepted renders.
    Depth is over-estimated, never under-estimated (see `_nesting_check`), so nothing accepted overflows the renderer.
    """
    lim = limits_ or limits()
    if len(text) > lim.max_bytes or len(text.encode()) > lim.max_bytes:
        size = len(text.encode())
        raise LimitError(
            f"The document is {_kb(size)}; the limit is {_kb(lim.max_bytes)} (MARKDOWN_MAX_BYTES). "
            "Split it into several documents."
        )
    _nesting_check(text, lim.max_nesting)
    _structure_check(text)
    if "<" in text:
        _html_check(text, lim.max_nesting)


def _kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 10 * 1024 else f"{size / 1024:,.1f} KB"


def _line_number(text: str, position: int) -> int:
    """The line of `position`; in a text with a line break put in front, the line of a match starting at a break."""
    return text.count("\n", 0, position) + 1


# Each check below counts with one regular expression over the whole text (C speed), and walks lines or tags in
# Python only when that count says the limit could be reached: real documents never take the slow paths.

_CONTAINER_RE = re.compile(r"[ \t]*(?:>|[-+*](?=[ \t]|$)|[0-9]{1,9}[.)](?=[ \t]|$))", re.MULTILINE)
_CONTAINER_PREFIX_CHARS = r"[ \t>*+\-0-9.)]"


def _nesting_check(text: str, max_nesting: int) -> None:
    """Block quotes and list items nested deeper than `max_nesting` on some line.

    A line's depth is over-estimated, never under-estimated: its markers, plus one level per two columns of
    indentation where indentation can continue list items of earlier lines (at the start of the line and after a
    `>`, less its optional space; a list item's content starts at least two columns in). Each level takes at least
    one character, so only lines whose first `max_nesting` + 1 characters could all be markers need a look.
    """
    candidates = re.compile(rf"^{_CONTAINER_PREFIX_CHARS}{{{max_nesting + 1}}}", re.MULTILINE)
    for candidate in candidates.finditer(text):
        position, depth, after = candidate.start(), 0, "start"
        while depth <= max_nesting and (marker := _CONTAINER_RE.match(text, position)) is not None:
            token = marker[0]
            symbol = token.lstrip(" \t")
            space = token[: len(token) - len(symbol)]
            columns = space.count(" ") + 4 * space.count("\t")
            if after == "start":
                depth += columns // 2
            elif after == ">":
                depth += max(columns - 1, 0) // 2
            depth += 1
            after, position = (">" if symbol == ">" else "item"), marker.end()
        if depth > max_nesting:
            raise LimitError(
                f"Line {_line_number(text, candidate.start())} nests block quotes and list items {depth} deep or "
                f"more; the limit is {max_nesting} (MARKDOWN_MAX_NESTING)."
            )


# These start with a line break (the text gets one in front) rather than `^`: a literal start lets the regular
# expression engine skip ahead, ten times faster than trying `^` at every position.
_QUOTED = r"\n[ \t>]*"  # a line break, then the line's indentation and block quote markers
# Headings also inside list items (`- # Title`), and setext ones (a line underlined with = or -), whose text is
# the line above: each gets an anchor, and the renderer numbers repeated ones by trying -1, -2... in turn.
_HEADING_RE = re.compile(r"\n[ \t>*+\-0-9.)]*#{1,6}(?:[ \t]+([^\n]*))?(?=\n|\Z)")
_UNDERLINE_RE = re.compile(r"\n[ \t>]*(?:=+|-+)[ \t]*(?=\n|\Z)")
_DEFINITION_RE = re.compile(rf"{_QUOTED}\[[^\]\n]+\]:")
_DELIMITER_ROW_RE = re.compile(
    rf"{_QUOTED}(?:\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?|\|[ \t]*:?-+:?[ \t]*\|)[ \t]*(?=\n|\Z)"
)
_BLANK_LINE_RE = re.compile(rf"{_QUOTED}(?=\n|\Z)")
_EMPHASIS_RUN_RE = re.compile(r"[*_~]+")


def _columns(row: str) -> int:
    return row.strip(" \t>\n").strip("|").count("|") + 1


def _structure_check(text: str) -> None:
    """The renderer's superlinear paths: headings, link definitions, table cells, emphasis runs, unclosed `<?`."""
    lines = "\n" + text
    if lines.count("#") + lines.count("=") + lines.count("-") > MAX_SAME_HEADING:
        headings = _HEADING_RE.findall(lines)
        headings += [
            lines[lines.rfind("\n", 0, line.start()) + 1 : line.start()] for line in _UNDERLINE_RE.finditer(lines)
        ]
        if len(headings) > MAX_HEADINGS:
            raise LimitError(f"The document has {len(headings):,} headings; the limit is {MAX_HEADINGS:,}.")
        same = Counter("".join(c for c in heading.lower() if c.isalnum()) for heading in headings).most_common(1)
        if same and same[0][1] > MAX_SAME_HEADING:
            raise LimitError(
                f"The document has {same[0][1]} headings with the same text; the limit is {MAX_SAME_HEADING}."
            )
    if lines.count("]:") > MAX_LINK_DEFINITIONS:
        definitions = len(_DEFINITION_RE.findall(lines))
        if definitions > MAX_LINK_DEFINITIONS:
            raise LimitError(
                f"The document has {definitions:,} link reference definitions ('[name]: url' lines); the limit is "
                f"{MAX_LINK_DEFINITIONS}. Write the links inline instead."
            )
    cells = 0
    for row in _DELIMITER_ROW_RE.finditer(lines) if "-" in text and "|" in text else ():
        # Every row up to the next blank line is padded out to the delimiter row's columns.
        blank = _BLANK_LINE_RE.search(lines, row.end())
        cells += _columns(row[0]) * (lines.count("\n", row.end(), blank.start() if blank else len(lines)) + 2)
        if cells > MAX_TABLE_CELLS:
            raise LimitError(
                f"Line {_line_number(lines, row.start())}: the document's tables have more than "
                f"{MAX_TABLE_CELLS:,} cells in all (columns × rows); split the tables."
            )
    if text.count("*") + text.count("_") + text.count("~") > MAX_EMPHASIS_RUNS:
        _emphasis_check(lines)
    if _LONG_RUN_RE.search(text) is not None:
        _long_run_check(text)
    unclosed = _unclosed(text, "<?", "?>") + _unclosed(text, "<![CDATA[", "]]>")
    if unclosed > MAX_UNCLOSED_HTML:
        raise LimitError(
            f"The document has {unclosed} '<?' or '<![CDATA[' with no '?>' or ']]>' after them; the limit is "
            f"{MAX_UNCLOSED_HTML}. Put them in `code`, or close them."
        )


_LONG_RUN_RE = re.compile(rf"[*_~]{{{MAX_EMPHASIS_RUN_LENGTH + 1},}}")


def _long_run_check(text: str) -> None:
    """A long run of * (or _ or ~) nests one level of emphasis per pair: 100,000 of them overflowed the renderer's
    stack on a worker thread. A line of nothing else is a thematic break (or a code fence), and code is not read."""
    prose = _FENCED_CODE_RE.sub(_newlines, text) if "`" in text or "~" in text else text
    for run in _LONG_RUN_RE.finditer(prose):
        start, end = prose.rfind("\n", 0, run.start()) + 1, prose.find("\n", run.end())
        if not prose[start : end if end >= 0 else len(prose)].strip(" \t" + run[0][0]):
            continue
        raise LimitError(
            f"Line {_line_number(prose, run.start())} has a run of {len(run[0]):,} *, _ or ~; at most "
            f"{MAX_EMPHASIS_RUN_LENGTH} are rendered (each pair nests a level of emphasis)."
        )


def _emphasis_check(lines: str) -> None:
    """Emphasis runs per paragraph (the renderer pairs them up in time that grows with their square); a table's rows
    are rendered cell by cell, so a table counts per row."""
    if len(_EMPHASIS_RUN_RE.findall(lines)) <= MAX_EMPHASIS_RUNS:
        return
    position = 0
    for blank in (*_BLANK_LINE_RE.finditer(lines), None):
        end = blank.start() if blank else len(lines)
        paragraph = lines[position:end]
        parts = [paragraph]
        if (row := _DELIMITER_ROW_RE.search(paragraph)) is not None:
            header = paragraph[: row.start()].rsplit("\n", 1)[-1]
            if _columns(header) == _columns(row[0]):  # a table, as the renderer sees one
                parts = [paragraph[: row.start()], *paragraph[row.start() :].split("\n")]
        if any(len(_EMPHASIS_RUN_RE.findall(part)) > MAX_EMPHASIS_RUNS for part in parts):
            raise LimitError(
                f"Line {_line_number(lines, position)}: a paragraph has more than {MAX_EMPHASIS_RUNS:,} runs of "
                "*, _ or ~; split it with blank lines."
            )
        position = blank.end() if blank else end


def _unclosed(text: str, start: str, end: str) -> int:
    """How many `start` come after the last `end`: each of those makes the renderer search to the end of the text."""
    if start not in text:
        return 0
    return text.count(start, text.rfind(end) + 1)


_SOURCE_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(?=[\s/>]|$)")  # not autolinks such as <https://…>
# Top-level fenced code, read as CommonMark does (a backtick fence's info has no backtick; a fence closes at a run at
# least as long), so no line the renderer reads as Markdown is skipped. Fences inside block quotes and list items
# are left in, which can only over-count.
_FENCED_CODE_RE = re.compile(
    r"^ {0,3}(`{3,}(?=[^`\n]*$)|~{3,})[^\n]*(?:.*?\n {0,3}\1[`~]*[ \t]*(?=\n|\Z)|.*)",
    re.MULTILINE | re.DOTALL,
)
# Code spans within one line only: with `.*?` across lines, each unmatched backtick would search to the end of the
# text. Spans this misses are counted as prose, which can only over-count tags.
_CODE_SPAN_RE = re.compile(r"(`+)[^`\n]+\1")
_VOID_TAGS = frozenset(
    "area base br col embed hr img input link meta source track wbr param keygen basefont bgsound frame".split()
)


def _html_check(text: str, max_nesting: int) -> None:
    """Raw HTML tags nested deeper than `max_nesting`, followed as the sanitiser's parser nests them (an end tag
    closes up to its start tag, a stray one is ignored); tags in code are text, so code is left out first."""
    if text.count("<") <= max_nesting:
        return
    if "`" in text or "~~~" in text:
        text = _CODE_SPAN_RE.sub(_newlines, _FENCED_CODE_RE.sub(_newlines, text))
    if (position := _tag_depth_over(text, _SOURCE_TAG_RE, max_nesting)) is not None:
        raise LimitError(
            f"Line {_line_number(text, position)} nests HTML tags more than {max_nesting} deep "
            "(MARKDOWN_MAX_NESTING); close the tags the document opens."
        )


def _newlines(match: re.Match[str]) -> str:
    """Code left out, its line breaks kept so that line numbers stay right."""
    return "\n" * match[0].count("\n")


def _tag_depth_over(html_text: str, tag_re: re.Pattern[str], limit: int) -> int | None:
    """Where the start tags matched by `tag_re` first nest deeper than `limit`, or None."""
    stack: list[str] = []
    open_: dict[str, int] = {}
    for tag in tag_re.finditer(html_text):
        name = tag[2].lower()
        if tag[1]:
            if open_.get(name):
                while stack:
                    top = stack.pop()
                    open_[top] -= 1
                    if top == name:
                        break
        elif name not in _VOID_TAGS:
            stack.append(name)
            open_[name] = open_.get(name, 0) + 1
            if len(stack) > limit:
                return tag.start()
    return None


# linkify: runbooks paste bare dashboard and console URLs. It adds no superlinear path (1 MB of URLs, dots, colons or
# parentheses renders in under 0.1 s, as without it), and its links pass the same sanitiser as every other.
_MARKDOWN = MarkdownIt("commonmark").enable_many(["table", "strikethrough", "heading_anchors", "linkify"])


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
