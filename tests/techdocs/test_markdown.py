"""TechDocs Markdown rendering: hostile input is neutralised, the rest renders with anchors, a TOC and front matter."""

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from techdocs.markdown import Heading, render, split_front_matter

pytestmark = pytest.mark.smoke


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def _assert_inert(html: str) -> None:
    """No active tag, no event handler or style, and every URL is http(s), mailto or relative."""
    for tag, attrs in _elements(html):
        assert tag not in {"script", "style", "iframe", "object", "embed", "form", "input", "svg", "math", "div"}
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", (tag, name)
            if name in ("href", "src"):
                assert urlsplit(value or "").scheme.lower() in ("", "http", "https", "mailto"), (tag, name, value)


# (Markdown, exact sanitised HTML, strings that must not appear anywhere in it, case-insensitive)
HOSTILE = {
    "script": (
        "before <script>alert(1)</script> after",
        "<p>before  after</p>\n",
        ["<script", "alert"],
    ),
    "img onerror": (
        "before <img src=x onerror=alert(1)> after",
        "<p>before <img> after</p>\n",
        ["onerror", "alert", 'src="x"'],
    ),
    "raw javascript href with a tab entity": (
        'see <a href="jav&#x09;ascript:alert(1)">x</a> after',
        '<p>see <a rel="noopener noreferrer">x</a> after</p>\n',
        ["ascript", "href"],
    ),
    "raw javascript href, mixed case and leading spaces": (
        'see <a href="  JaVaScRiPt:alert(1)">x</a> after',
        '<p>see <a rel="noopener noreferrer">x</a> after</p>\n',
        ["javascript", "href"],
    ),
    "data: href": (
        'see <a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a> after',
        '<p>see <a rel="noopener noreferrer">x</a> after</p>\n',
        ["data:", "base64", "href"],
    ),
    "iframe": (
        'before <iframe src="https://evil.example/"></iframe> after',
        "<p>before  after</p>\n",
        ["iframe", "evil.example"],
    ),
    "svg with onload and script": (
        "<svg onload=alert(1)><script>alert(2)</script></svg> after",
        "<p> after</p>\n",
        ["svg", "onload", "script", "alert"],
    ),
    "style attribute with javascript url": (
        '<div style="background:url(javascript:alert(1))">kept text</div>',
        "kept text\n",
        ["style", "javascript", "<div"],
    ),
    "style tag": (
        "<style>body{display:none}</style>\n\nvisible",
        "\n<p>visible</p>\n",
        ["style", "display"],
    ),
    "object": (
        '<object data="https://evil.example/x.swf">fallback text</object>',
        "<p>fallback text</p>\n",
        ["object", "swf"],
    ),
    "embed": (
        'before <embed src="https://evil.example/x.swf"> after',
        "<p>before  after</p>\n",
        ["embed", "swf"],
    ),
    "form": (
        '<form action="https://evil.example/"><input name="password">kept text</form>',
        "kept text\n",
        ["form", "input", "action", "evil.example"],
    ),
    "raw vbscript href": (
        'see <a href="vbscript:msgbox(1)">x</a> after',
        '<p>see <a rel="noopener noreferrer">x</a> after</p>\n',
        ["vbscript", "href"],
    ),
    "javascript img src": (
        '<img src="javascript:alert(1)" alt="pic">',
        '<img alt="pic">\n',
        ["javascript", "src"],
    ),
    "event handler and target on a good link": (
        '<a href="https://ok.example/" onclick="alert(1)" target="_blank">ok</a>',
        '<p><a href="https://ok.example/" rel="noopener noreferrer">ok</a></p>\n',
        ["onclick", "alert", "target"],
    ),
    "mutation-XSS namespace confusion": (
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<p></p>",
        ["onerror", "alert", "math", "style"],
    ),
}


@pytest.mark.parametrize(("markdown", "expected", "forbidden"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_input_is_neutralised(markdown: str, expected: str, forbidden: list[str]) -> None:
    html = render(text=markdown).html
    assert html == expected
    for needle in forbidden:
        assert needle.lower() not in html.lower()
    _assert_inert(html)


# Markdown links and images to URLs markdown-it refuses: it leaves their source on the page as plain text, so the
# exact output has no element but the paragraph, and no tag or attribute anywhere carries a forbidden string.
# (Markdown, exact sanitised HTML, strings that must not appear in any tag name, attribute name or value)
REFUSED_MARKDOWN_URLS = {
    "markdown javascript link": (
        "see [x](javascript:alert(1)) after",
        "<p>see [x](javascript:alert(1)) after</p>\n",
        ["javascript", "alert", "href"],
    ),
    "markdown JAVASCRIPT link": (
        "see [x](JAVASCRIPT:alert(1)) after",
        "<p>see [x](JAVASCRIPT:alert(1)) after</p>\n",
        ["javascript", "alert", "href"],
    ),
    "markdown javascript link, entity-encoded letter": (
        "see [x](&#106;avascript:alert(1)) after",
        "<p>see [x](javascript:alert(1)) after</p>\n",
        ["javascript", "alert", "href"],
    ),
    "svg data: image": (
        "before ![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+) after",
        "<p>before ![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+) after</p>\n",
        ["data:", "svg", "src", "<img"],
    ),
    "markdown vbscript link": (
        "see [x](vbscript:msgbox(1)) after",
        "<p>see [x](vbscript:msgbox(1)) after</p>\n",
        ["vbscript", "msgbox", "href"],
    ),
}


@pytest.mark.parametrize(
    ("markdown", "expected", "forbidden"), REFUSED_MARKDOWN_URLS.values(), ids=REFUSED_MARKDOWN_URLS.keys()
)
def test_refused_markdown_urls_stay_inert_text(markdown: str, expected: str, forbidden: list[str]) -> None:
    html = render(text=markdown).html
    assert html == expected
    elements = _elements(html)
    assert elements == [("p", {})]
    markup = repr(elements).lower()
    for needle in forbidden:
        assert needle.lower() not in markup
    assert "<a" not in html and "<img" not in html and "href" not in html and "src=" not in html
    _assert_inert(html)


def test_every_hostile_case_is_covered() -> None:
    assert len(HOSTILE) + len(REFUSED_MARKDOWN_URLS) == 21


def test_a_tab_entity_in_a_markdown_link_leaves_only_a_relative_url() -> None:
    # markdown-it decodes &#x09; and percent-encodes the tab: a scheme cannot contain "%", so browsers see a path.
    html = render(text="[x](jav&#x09;ascript:alert(1))").html
    assert html == '<p><a href="jav%09ascript:alert(1)" rel="noopener noreferrer">x</a></p>\n'
    assert "javascript" not in html.lower()
    _assert_inert(html)


def test_raw_html_ids_are_prefixed_and_classes_restricted() -> None:
    html = render(text='<h2 id="main" class="x">raw</h2>\n\n<code class="language-JS evil">c</code>').html
    assert html == '<h2 id="h-main">raw</h2>\n<p><code class="language-js">c</code></p>\n'
    # Only the heading anchor's own class and aria-hidden value pass, and only on links.
    text = '<a class="Anchor x" aria-hidden="false" href="#Top">t</a> <em class="anchor" aria-hidden="true">e</em>'
    html = render(text=text).html
    assert html == '<p><a class="anchor" href="#h-Top" rel="noopener noreferrer">t</a> <em>e</em></p>\n'


def test_in_page_links_reach_the_headings_they_name() -> None:
    text = (
        '<p id="main">intro</p>\n\nSee [jump](#my-heading), [setup](#setup) and <a href="#h-setup">H setup</a>.\n\n'
        "## My heading\n\n## Setup\n\n## H setup"
    )
    elements = _elements(render(text=text).html)
    ids = [attrs["id"] for _, attrs in elements if "id" in attrs]
    links = [attrs["href"] for tag, attrs in elements if tag == "a" and "class" not in attrs]
    assert ids == ["h-main", "h-my-heading", "h-setup", "h-h-setup"]  # a raw id is prefixed like the anchors
    assert links == ["#h-my-heading", "#h-setup", "#h-h-setup"]
    assert all(link.removeprefix("#") in ids for link in links)


def test_harmless_raw_html_survives() -> None:
    text = "<details><summary>Why</summary>\n\nH<sub>2</sub>O, x<sup>2</sup>, <kbd>Ctrl</kbd>\n\n</details>"
    html = render(text=text).html
    assert html == (
        "<details><summary>Why</summary>\n<p>H<sub>2</sub>O, x<sup>2</sup>, <kbd>Ctrl</kbd></p>\n</details>\n"
    )


def test_images_need_an_absolute_http_url() -> None:
    html = render(text='![a](https://cdn.example/a.png "A") ![b](b.png) ![c](mailto:x@example.com)').html
    assert html == '<p><img src="https://cdn.example/a.png" alt="a" title="A"> <img alt="b"> <img alt="c"></p>\n'


def test_links_get_rel_noopener_and_keep_safe_urls() -> None:
    text = '[docs](https://docs.example/ "Docs") [page](other.md#h-setup) [mail](mailto:ops@example.com) <https://a.example>'
    links = [attrs for tag, attrs in _elements(render(text=text).html) if tag == "a"]
    assert links == [
        {"href": "https://docs.example/", "title": "Docs", "rel": "noopener noreferrer"},
        {"href": "other.md#h-setup", "rel": "noopener noreferrer"},
        {"href": "mailto:ops@example.com", "rel": "noopener noreferrer"},
        {"href": "https://a.example", "rel": "noopener noreferrer"},
    ]


def test_bare_urls_become_links_and_other_schemes_stay_text() -> None:
    """A runbook's pasted dashboard URL is a link; `javascript:` text is not linked, and an ftp URL's link loses its
    href to the sanitiser (only http(s), mailto and relative URLs are kept), so both stay inert text."""
    text = "Dashboard: https://grafana.example.com/d/accounts?from=now-1h.\n\njavascript:alert(1) ftp://files.example/x"
    html = render(text=text).html
    links = [attrs for tag, attrs in _elements(html) if tag == "a"]
    assert links == [
        {"href": "https://grafana.example.com/d/accounts?from=now-1h", "rel": "noopener noreferrer"},
        {"rel": "noopener noreferrer"},
    ]
    assert "javascript:alert(1)" in html and "ftp://files.example/x" in html


def test_tables_render_with_alignment() -> None:
    text = "| Signal | Limit |\n|:--|--:|\n| errors | 2% |"
    assert render(text=text).html == (
        "<table>\n<thead>\n<tr>\n"
        '<th align="left">Signal</th>\n<th align="right">Limit</th>\n'
        "</tr>\n</thead>\n<tbody>\n<tr>\n"
        '<td align="left">errors</td>\n<td align="right">2%</td>\n'
        "</tr>\n</tbody>\n</table>\n"
    )


def test_fenced_code_keeps_its_language_and_escapes_html() -> None:
    html = render(text='```Python\nprint("<script>alert(1)</script>")\n```').html
    assert html == (
        '<pre><code class="language-python">print("&lt;script&gt;alert(1)&lt;/script&gt;")\n</code></pre>\n'
    )


def test_strikethrough_and_list_start() -> None:
    html = render(text="~~old~~ <del>older</del> new\n\n3. three\n4. four").html
    assert html == '<p><s>old</s> <del>older</del> new</p>\n<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'


def test_headings_get_unique_anchors_and_a_toc_in_order() -> None:
    text = (
        "# Runbook\n\n## Setup\n\n### Check\n\n## Setup\n\n#### Check\n\n##### Too deep\n\n"
        "## Setup-1\n\n## Setup\n\n## H setup"
    )
    rendered = render(text=text)
    assert rendered.toc == (
        Heading(level=1, text="Runbook", anchor="h-runbook"),
        Heading(level=2, text="Setup", anchor="h-setup"),
        Heading(level=3, text="Check", anchor="h-check"),
        Heading(level=2, text="Setup", anchor="h-setup-1"),
        Heading(level=4, text="Check", anchor="h-check-1"),
        Heading(level=2, text="Setup-1", anchor="h-setup-1-1"),
        Heading(level=2, text="Setup", anchor="h-setup-2"),
        Heading(level=2, text="H setup", anchor="h-h-setup"),  # its slug is "h-setup": prefixed again, no clash
    )
    assert rendered.title == "Runbook"
    anchors = [attrs for tag, attrs in _elements(rendered.html) if tag == "a"]
    assert [attrs["id"] for attrs in anchors] == [
        *("h-runbook", "h-setup", "h-check", "h-setup-1", "h-check-1", "h-too-deep"),
        *("h-setup-1-1", "h-setup-2", "h-h-setup"),
    ]
    for attrs in anchors:
        assert attrs == {
            "aria-hidden": "true",
            "class": "anchor",
            "id": attrs["id"],
            "href": "#" + str(attrs["id"]),
            "rel": "noopener noreferrer",
        }
    assert '<h5><a aria-hidden="true" class="anchor" id="h-too-deep" href="#h-too-deep"' in rendered.html  # not in TOC
    assert "<svg" not in rendered.html and "<path" not in rendered.html
    _assert_inert(rendered.html)
    assert render(text=text) == rendered  # stable


def test_heading_with_markup_and_unicode_gets_github_style_slugs() -> None:
    text = "## Restart `payments` **now** <em>please</em>!\n\n## Café déjà vu\n\n## 日本語の見出し\n\n## ???"
    rendered = render(text=text)
    assert [(heading.text, heading.anchor) for heading in rendered.toc] == [
        ("Restart payments now please!", "h-restart-payments-now-please"),
        ("Café déjà vu", "h-café-déjà-vu"),
        ("日本語の見出し", "h-日本語の見出し"),
        ("???", "h-"),
    ]
    assert rendered.html.startswith(
        '<h2><a aria-hidden="true" class="anchor" id="h-restart-payments-now-please"'
        ' href="#h-restart-payments-now-please" rel="noopener noreferrer"></a>'
        "Restart <code>payments</code> <strong>now</strong> <em>please</em>!</h2>\n"
    )
    assert rendered.title is None


def test_toc_text_is_plain_and_raw_html_headings_stay_out() -> None:
    text = (
        '<h1 id="x">Raw heading</h1>\n\n## Fish &amp; <b>chips</b> [menu](https://m.example "a>b")\n\n'
        'Setext\ntitle\n===\n\n<a href="x">\n\n## Wrapped\n\n</a>'
    )
    rendered = render(text=text)
    assert [(heading.level, heading.text) for heading in rendered.toc] == [
        (2, "Fish & chips menu"),
        (1, "Setext title"),
        (2, "Wrapped"),
    ]
    assert rendered.title == "Setext title"


def test_front_matter_is_split_from_the_body() -> None:
    text = "---\ntitle: Payments runbook\ntags: [payments, oncall]\n---\n# Body\n"
    assert split_front_matter(text=text) == ({"title": "Payments runbook", "tags": ["payments", "oncall"]}, "# Body\n")


def test_front_matter_with_crlf_and_an_empty_block() -> None:
    assert split_front_matter(text="---\r\nowner: sre\r\n---\r\nbody") == ({"owner": "sre"}, "body")
    assert split_front_matter(text="---\n---\nbody") == ({}, "body")


@pytest.mark.parametrize("text", ["# No front matter\n", "", "---\nan unclosed block is a thematic break\n"])
def test_text_without_front_matter_is_returned_whole(text: str) -> None:
    assert split_front_matter(text=text) == ({}, text)


def test_malformed_front_matter_names_the_line() -> None:
    with pytest.raises(ValueError, match=r"^Front matter is not valid YAML at line 3: mapping values are not allowed"):
        split_front_matter(text="---\ntitle: ok\nowner: sre: platform\n---\nbody")
    with pytest.raises(ValueError, match=r"at line 4: .* \(while parsing a flow sequence started at line 3\)$"):
        split_front_matter(text="---\ntitle: ok\ntags: [unclosed\n---\nbody")


def test_front_matter_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match=r"must be a YAML mapping"):
        split_front_matter(text="---\n- a\n- b\n---\nbody")
