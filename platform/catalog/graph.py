"""The dependency neighbourhood drawn as a picture: Graphviz's `dot` lays it out as SVG, on the server.

Why Graphviz and not a JavaScript library: the layout of directed graphs (layers, few crossings) is what `dot` was
built for; the page gets plain SVG with real links, so it works without JavaScript, needs nothing vendored or
allowed by the Content-Security-Policy, and can be cached like any other fragment. The cost is a child process per
new picture, which the cache keeps to one per neighbourhood and content.

Service names are user input. They reach `dot` only inside double-quoted DOT strings with backslashes and quotes
escaped and control characters dropped; `dot` escapes them again as XML text; and the SVG is then checked
element by element against an allow-list before it is put on the page, so no name can become markup. Without
`dot` (or if it fails or is slow) there is no picture and the pages show their text lists alone.
"""

import hashlib
import logging
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

from catalog.models import Service
from catalog.selectors import Neighbourhood

logger = logging.getLogger(__name__)

RENDER_TIMEOUT_SECONDS = 5
CACHE_SECONDS = 24 * 3600  # the key is the picture's whole content, so an entry is never wrong, only unused
LABEL_CHARS = 40
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SVG = "{http://www.w3.org/2000/svg}"
_XLINK = "{http://www.w3.org/1999/xlink}"
# What `dot -Tsvg` writes for boxes, arrows and links; anything else means the output is not what we asked for.
_ALLOWED_TAGS = {f"{_SVG}{tag}" for tag in ("svg", "g", "title", "polygon", "path", "ellipse", "text", "a", "polyline")}

CENTRE = ("#e7ecfd", "#2f4ac0")
CYCLE_COLOUR = "#c92a2a"


def _quoted(text: str, *, limit: int | None = None, expansions: int = 1) -> str:
    """A DOT double-quoted string holding `text` literally: `dot` reads backslash sequences (\\N is the node's name)
    once in labels and twice in tooltips (`expansions`), so each backslash is doubled that many times."""
    text = _UNPRINTABLE.sub("", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    for _ in range(expansions):
        text = text.replace("\\", "\\\\")
    return '"' + text.replace('"', '\\"') + '"'


def neighbourhood_dot(neighbourhood: Neighbourhood, *, title: str) -> str:
    """The DOT source of the picture: roots highlighted, edges in a cycle red and bold, every box a link."""
    lines = [
        f"digraph {_quoted(title)} {{",
        '  graph [rankdir=LR, bgcolor="transparent", nodesep=0.2, ranksep=0.45, fontname="Helvetica"];',
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8a94a6", fontname="Helvetica", '
        'fontsize=11, fontcolor="#1d2330", height=0.3, margin="0.12,0.04"];',
        '  edge [color="#5b6475", arrowsize=0.7];',
    ]
    for pk, (slug, name, lifecycle) in sorted(neighbourhood.nodes.items(), key=lambda item: item[1][1].lower()):
        attributes = {
            "label": _quoted(name, limit=LABEL_CHARS),
            "URL": _quoted(Service(slug=slug).get_absolute_url()),
            "tooltip": _quoted(f"{name} ({slug})", expansions=2),
        }
        if pk in neighbourhood.roots:
            attributes.update(fillcolor=f'"{CENTRE[0]}"', color=f'"{CENTRE[1]}"', penwidth="2")
        if lifecycle in (Service.Lifecycle.DECOMMISSIONED, Service.Lifecycle.DEPRECATED):
            attributes.update(style='"rounded,filled,dashed"', fontcolor='"#5b6475"')
        lines.append(f"  {_quoted(slug)} [{', '.join(f'{key}={value}' for key, value in attributes.items())}];")
    for source, target, kind in sorted(neighbourhood.edges):
        if source not in neighbourhood.nodes or target not in neighbourhood.nodes:
            continue
        source_slug, source_name = neighbourhood.nodes[source][:2]
        target_slug, target_name = neighbourhood.nodes[target][:2]
        in_cycle = (source, target) in neighbourhood.cycle_edges
        tooltip = f"{source_name} depends on {target_name} ({kind}){': part of a cycle' if in_cycle else ''}"
        attributes = {"tooltip": _quoted(tooltip, expansions=2)}
        if in_cycle:
            attributes.update(color=f'"{CYCLE_COLOUR}"', penwidth="2", style="bold", **{"class": '"cycle"'})
        if kind != "runtime":
            attributes["style"] = '"dashed,bold"' if in_cycle else "dashed"
        lines.append(
            f"  {_quoted(source_slug)} -> {_quoted(target_slug)} "
            f"[{', '.join(f'{key}={value}' for key, value in attributes.items())}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def neighbourhood_svg(neighbourhood: Neighbourhood, *, title: str) -> SafeString | None:
    """The picture as inline SVG, or None when there is nothing to draw or `dot` cannot draw it."""
    if len(neighbourhood.nodes) < 2:
        return None
    dot = neighbourhood_dot(neighbourhood, title=title)
    key = "catalog-graph:" + hashlib.sha256(dot.encode()).hexdigest()
    svg = cache.get(key)
    if svg is None:
        svg = _render(dot)
        if svg is None:
            return None
        cache.set(key, svg, CACHE_SECONDS)
    return mark_safe(svg)  # noqa: S308 - every element and attribute checked in _render


def _render(dot: str) -> str | None:
    """Run `dot` in a child process (no shell, a minimal environment, a time limit) and check what it wrote."""
    program = shutil.which("dot")
    if program is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 - a fixed program and arguments; the graph goes in on stdin
            [program, "-Tsvg"],
            input=dot.encode(),
            capture_output=True,
            timeout=RENDER_TIMEOUT_SECONDS,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.warning("dependency graph not drawn: %s", error)
        return None
    if result.returncode != 0:
        logger.warning("dependency graph not drawn: dot exited %s", result.returncode)
        return None
    return _checked(result.stdout.decode("utf-8", "replace"))


def _checked(svg: str) -> str | None:
    """The <svg> element alone (no prolog, doctype or comments), if it holds only what `dot` draws: a picture whose
    output has anything else (a script, an event handler, a link off the site) is not shown."""
    start = svg.find("<svg")
    if start < 0:
        return None
    svg = re.sub(r"<!--.*?-->", "", svg[start:], flags=re.S)
    try:
        root = ET.fromstring(svg)  # noqa: S314 - our own dot's output, with the doctype cut off: no entities to expand
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag not in _ALLOWED_TAGS:
            return None
        for name, value in element.attrib.items():
            off_site = not value.startswith("/") or value.startswith("//")
            if name.lower().startswith("on") or (name == f"{_XLINK}href" and off_site):
                return None
    # dot's size in points is the natural size; the stylesheet shrinks a wide picture to the card (max-width).
    return svg.replace("<svg ", '<svg class="dependency-graph" ', 1)
