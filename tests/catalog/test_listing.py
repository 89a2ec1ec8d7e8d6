"""The catalog table's rows are drawn in Python (catalog.listing.rows_html): whatever a name, tag or slug holds, it
comes back out of the HTML as the same text, and no markup of its own gets in."""

from datetime import UTC, datetime
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.listing import ServiceRow, rows_html
from portal.templatetags.portal_tags import text_escaped

TAGS = {"tr", "td", "a", "div", "span", "time"}
texts = st.text(st.characters(codec="utf-8"), max_size=12)


class _Parts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.texts: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


@settings(max_examples=300, deadline=None)
@given(
    slug=texts,
    name=texts,
    owner_name=texts,
    system=st.none() | texts,
    tags=st.lists(texts, max_size=3),
    lifecycle=texts,
    verified=st.booleans(),
)
def test_every_value_comes_back_as_the_same_text(slug, name, owner_name, system, tags, lifecycle, verified) -> None:
    row = ServiceRow(
        pk=7,
        slug=slug,
        name=name,
        owner_slug="platform",
        owner_name=owner_name,
        system_slug=system,
        system_name=system,
        lifecycle=lifecycle,
        tier=2,
        tags=tags,
        verified_at=datetime(2026, 3, 4, 23, 30, tzinfo=UTC) if verified else None,
    )
    parts = _Parts()
    parts.feed(rows_html([row]))
    parts.close()
    assert set(parts.tags) <= TAGS
    texts_seen = "\x1f".join(parts.texts)
    for value in (name, owner_name, *([system] if system else []), *tags):
        assert value in texts_seen
    hrefs = [value for key, value in parts.attributes if key == "href"]
    assert f"/catalog/services/{slug}/" in hrefs
    assert [f"?tag={tag}" for tag in tags] == [href for href in hrefs if href.startswith("?tag=")]
    assert ("class", f"badge badge-{lifecycle}") in parts.attributes


def test_text_escaped_is_conditional_escape_for_every_kind_of_value() -> None:
    from django.utils.html import conditional_escape
    from django.utils.safestring import mark_safe
    from django.utils.translation import gettext_lazy

    for value in ["<a href='x'>&amp;</a>", mark_safe("<b>kept</b>"), gettext_lazy("Tier 1 — critical"), 3, None]:
        assert text_escaped(value) == str(conditional_escape(value))
        assert isinstance(text_escaped(value), str)
