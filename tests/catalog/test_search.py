"""The catalog's text search (`q`, catalog/text_search.py): words as prefixes, relevance order, the cheap path for very
short queries, the substring fallback, cursors over the relevance order, and hostile input answered normally."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from catalog import text_search
from catalog.models import Service
from tests.factories import service_make

pytestmark = pytest.mark.django_db

SERVICES_URL = reverse("api:service-list")
CATALOG = reverse("catalog:service-list")
postgres_only = pytest.mark.postgres_only  # ranking needs the full-text index: deselected elsewhere


@pytest.fixture
def services(world):  # type: ignore[no-untyped-def]
    team = world.owner_team
    Service.objects.filter(pk=world.service.pk).update(description="Takes card payments")  # the world's payments-api
    service_make(owner=team, slug="payout-worker", name="Payout Worker", description="Sends money to merchants")
    service_make(owner=team, slug="ledger", name="Ledger", description="Double-entry bookkeeping for payments-api")
    service_make(owner=team, slug="apigateway", name="PaymentGateway", description="Routes card traffic")
    service_make(owner=team, slug="edge-proxy-7", name="Front Door", description="TLS and WAF, v1.2 config")
    return world


def _slugs(api_client, world, **params) -> list[str]:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    response = api_client.get(SERVICES_URL, params)
    assert response.status_code == 200, response.content
    return [row["slug"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("pay", {"payments-api", "payout-worker", "ledger", "apigateway"}),  # a prefix of a word in any of them
        ("PAYMENTS", {"payments-api", "ledger"}),  # case-insensitive
        ("payments ap", {"payments-api", "ledger"}),  # the last word is the one being typed
        ("edge-proxy", {"edge-proxy-7"}),  # a hyphenated word's parts, one after the other
        ("proxy-7", {"edge-proxy-7"}),
        ("v1.2", {"edge-proxy-7"}),
        ("money merchants", {"payout-worker"}),  # every word must match
        ("money ledger", set()),
    ],
)
def test_words_match_the_start_of_words(api_client, services, q, expected) -> None:  # type: ignore[no-untyped-def]
    assert set(_slugs(api_client, services, q=q)) == expected


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("gateway", {"apigateway"}),  # inside a word: no word starts with it, so substrings are looked for
        ("ments", {"payments-api", "ledger"}),
        ("entry bookkeep", {"ledger"}),
    ],
)
def test_words_no_word_starts_with_are_found_as_substrings(api_client, services, q, expected) -> None:  # type: ignore[no-untyped-def]
    assert set(_slugs(api_client, services, q=q)) == expected


@postgres_only
def test_without_an_ordering_the_best_matches_come_first(api_client, services) -> None:  # type: ignore[no-untyped-def]
    # payments-api has the word in its name and slug, ledger only in its description.
    assert _slugs(api_client, services, q="payments") == ["payments-api", "ledger"]
    assert _slugs(api_client, services, q="payments", ordering="-name") == ["payments-api", "ledger"]
    assert _slugs(api_client, services, q="payments", ordering="name") == ["ledger", "payments-api"]


@postgres_only
def test_past_the_ranking_limit_matches_are_in_name_order(api_client, services, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(text_search, "RANK_UP_TO", 0)  # the planner expects at least one match
    assert _slugs(api_client, services, q="payments") == ["ledger", "payments-api"]


def test_a_very_short_query_is_a_prefix_in_name_order_without_a_probe(api_client, services) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(services.owner)
    with CaptureQueriesContext(connection) as captured:
        slugs = _slugs(api_client, services, q="pa")
    expected = ["payments-api", "payout-worker"]
    if connection.vendor == "postgresql":
        expected = ["ledger", *expected, "apigateway"]  # ledger's description, PaymentGateway's name: words from "pa"
    else:
        expected = ["ledger", "apigateway", "payments-api", "payout-worker"]  # substrings on SQLite
    assert sorted(slugs) == sorted(expected) and slugs == sorted(slugs, key=_name_of(services))
    assert not any("catalog_search_probe" in query["sql"] for query in captured.captured_queries)


def _name_of(world):  # type: ignore[no-untyped-def]
    from catalog.models import Service

    names = dict(Service.objects.values_list("slug", "name"))
    return lambda slug: names[slug].lower()


@postgres_only
def test_cursors_walk_the_relevance_order(api_client, services) -> None:  # type: ignore[no-untyped-def]
    for index in range(7):
        service_make(owner=services.owner_team, slug=f"pay-{index}", description="pay " * index)
    api_client.force_authenticate(services.owner)
    whole = [row["slug"] for row in api_client.get(SERVICES_URL, {"q": "pay", "page_size": 50}).json()["results"]]
    walked, cursor = [], ""
    while cursor is not None:
        body = api_client.get(SERVICES_URL, {"q": "pay", "page_size": 2, "cursor": cursor}).json()
        walked += [row["slug"] for row in body["results"]]
        cursor = body["next_cursor"]
    assert walked == whole and len(whole) == 11


@postgres_only
def test_a_page_by_relevance_counts_its_matches_in_the_same_pass(api_client, services, settings) -> None:  # type: ignore[no-untyped-def]
    """Ordered by relevance, the sort reads every match, so the page's statement counts them with a window count
    instead of reading them a second time; the count is exact, past the exact limit too, and a page past the end is
    still a 404."""
    settings.CATALOG_API_CACHE = False
    settings.CATALOG_EXACT_COUNT_UP_TO = 3  # a window count is exact however many match
    for index in range(7):
        service_make(owner=services.owner_team, slug=f"pay-{index}", description="pay " * index)
    api_client.force_authenticate(services.owner)
    for _ in range(2):  # the ordinary path, then the statement kept for its shape
        with CaptureQueriesContext(connection) as captured:
            body = api_client.get(SERVICES_URL, {"q": "pay", "page": 2, "page_size": 4}).json()
        assert (body["count"], body["count_exact"], len(body["results"])) == (11, True, 4)
        statements = [query["sql"] or "" for query in captured.captured_queries]
        assert not any("count(*), CASE" in sql for sql in statements)  # no capped count: one pass
    assert api_client.get(SERVICES_URL, {"q": "pay", "page": 4, "page_size": 4}).status_code == 404
    by_name = api_client.get(SERVICES_URL, {"q": "pay", "ordering": "name", "page_size": 4}).json()
    assert by_name["count_exact"] is False and by_name["count"] >= 4  # not by relevance: counted as ever, capped


HOSTILE = [
    "'",
    "''",
    "\\",
    "\\'",
    "a'b\\c",
    "&|!:*()<>",
    "pay:*",
    "pay & !x",
    "'pay':* | 'x'",
    "%",
    "_",
    "%_%",
    "x" * 10_000,
    "pay " + "y" * 10_000,
    " ".join(["w"] * 50),
    "\u200b\u200d\u202e",  # zero-width and right-to-left marks
    "ﬁ İ ß Ǆ",  # letters whose case mappings change their length
    "e\u0301",  # a combining accent
    "😀 payments",
    "\ufffd",
    "-",
    "a-",
    "-a",
    "....",
    "@",
]


@pytest.mark.parametrize("q", HOSTILE)
def test_hostile_input_gets_a_normal_answer(api_client, client, services, q) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(services.owner)
    assert api_client.get(SERVICES_URL, {"q": q}).status_code == 200
    assert api_client.get(SERVICES_URL, {"q": q, "cursor": ""}).status_code == 200
    client.force_login(services.owner)
    assert client.get(CATALOG, {"q": q}).status_code == 200


def test_the_words_reach_the_database_as_typed() -> None:
    """Each word is a parameter of its own, unchanged: lower-casing, escaping and the tsquery are made in SQL."""
    words = text_search.words_split("pay'ments\\ %_x  ")
    assert words == ["pay'ments\\", "%_x"]
    if connection.vendor == "postgresql":
        assert text_search.match(words).params == tuple(words)
    substring = text_search.substring(words)
    assert [child.params for child in substring.children] == [(word,) * 3 for word in words]


def test_percent_and_underscore_are_literal_in_substrings(api_client, services) -> None:  # type: ignore[no-untyped-def]
    service_make(owner=services.owner_team, slug="odd", name="Odd", description="100%_sure")
    assert _slugs(api_client, services, q="0%_s") == ["odd"]
    assert _slugs(api_client, services, q="x%") == []


@postgres_only
def test_kept_statements_answer_each_search_as_its_own_words_ask(api_client, services, settings) -> None:  # type: ignore[no-untyped-def]
    """A list shape's statement (catalog/api/statements.py) is built with stand-in words: one-word searches that are
    ranked, fall back to substrings or are very short each get the statement of their own kind."""
    settings.CATALOG_API_CACHE = False  # the path through kept statements
    for _round in range(2):  # the first request of a shape builds its statement, the second reuses it
        assert _slugs(api_client, services, q="payments") == ["payments-api", "ledger"]
        assert _slugs(api_client, services, q="gateway") == ["apigateway"]
        assert _slugs(api_client, services, q="money") == ["payout-worker"]
        assert set(_slugs(api_client, services, q="pa")) == {"ledger", "payments-api", "payout-worker", "apigateway"}
        assert _slugs(api_client, services, q="ments") == ["ledger", "payments-api"]


def test_services_written_in_bulk_are_found_at_once(world) -> None:  # type: ignore[no-untyped-def]
    """The importer's and the bench's COPY path (catalog.bulk.objects_insert) fills the searched words in the same
    statement: nothing waits for a task after commit."""
    from django.http import QueryDict

    from catalog import bulk
    from catalog.filters import ServiceFilterSet

    service = Service(owner=world.owner_team, slug="bulk-quasar", name="Quasar Relay", description="Copied in")
    bulk.objects_insert(Service, [service])
    for q in ("quasar", "quas", "relay copied", "asar"):
        found = ServiceFilterSet(QueryDict(f"q={q}"), queryset=Service.objects.all()).qs
        assert [s.slug for s in found] == ["bulk-quasar"], q


@postgres_only
def test_a_repeated_search_skips_the_probe_and_one_that_matched_nothing_does_not(
    api_client, services, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.CATALOG_API_CACHE = False  # every request answered afresh, not from a cached page

    def probes(q: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            _slugs(api_client, services, q=q)
        return sum("catalog_search_probe" in (query["sql"] or "") for query in captured.captured_queries)

    assert [probes("payments"), probes("payments")] == [1, 0]  # the second asks nothing: its mode is remembered
    assert [probes("quokka"), probes("quokka")] == [1, 1]  # nothing matched: asked again every time
    service_make(owner=services.owner_team, slug="quokka-feed", name="Quokka Feed")
    assert _slugs(api_client, services, q="quokka") == ["quokka-feed"]  # found by its words at once
    text_search.modes.clear()
    assert probes("payments") == 1
