"""Search across the portal, on both backends: PostgreSQL full text and the SQLite LIKE fallback.

Every test here runs on both databases unless marked postgres_only; what the fallback cannot do (stemming, ranking)
is tested on PostgreSQL alone.
"""

import pytest
from django.urls import reverse

from catalog.models import Service
from portal import search
from techdocs import services as techdocs_services
from tests.factories import SystemFactory, TeamFactory, service_make

pytestmark = [pytest.mark.django_db]

SEARCH = reverse("portal:search")
LOGIN = "/accounts/login/"


@pytest.fixture
def docs(world):  # type: ignore[no-untyped-def]
    """One of each kind, each with a distinctive word."""
    ledger = service_make(
        owner=world.owner_team, slug="ledger", name="Ledger", description="Keeps the double-entry ledger of refunds."
    )
    TeamFactory(name="Observability", slug="observability", description="Dashboards and alerts.")
    SystemFactory(name="Billing platform", slug="billing", owner=world.owner_team, description="Invoices.")
    techdocs_services.runbook_create(
        service=world.service, title="Incident guide", body="Start the rollback procedure first.", created_by=None
    )
    techdocs_services.adr_create(
        created_by=None, service=ledger, title="Adopt Kafka for events", decision="We stream refunds."
    )
    return world


def _search(client, query: str, **headers: str):  # type: ignore[no-untyped-def]
    response = client.get(SEARCH, {"q": query}, headers=headers)
    assert response.status_code == 200
    return response


def _hits(response) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    return {group.kind: [hit.title for hit in group.hits] for group in response.context["groups"]}


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("query", "kind", "title"),
    [
        ("double-entry", "services", "Ledger"),  # a word of the description
        ("rollback", "runbooks", "Incident guide"),  # a word of the body
        ("kafka", "adrs", "Adopt Kafka for events"),  # a word of the title
        ("observability", "teams", "Observability"),  # a team by name
        ("billing", "systems", "Billing platform"),
    ],
)
def test_finds_each_kind(client, docs, query, kind, title):
    client.force_login(docs.outsider)
    hits = _hits(_search(client, query))
    assert title in hits.get(kind, [])


def test_hits_link_to_their_pages_with_context(client, docs):
    client.force_login(docs.owner)
    groups = {group.kind: group for group in _search(client, "rollback").context["groups"]}
    (hit,) = groups["runbooks"].hits
    assert hit.url == "/docs/services/payments-api/runbooks/incident-guide/"
    assert hit.context == "Payments API"
    (adr,) = {g.kind: g for g in _search(client, "kafka").context["groups"]}["adrs"].hits
    assert adr.url == "/docs/services/ledger/adrs/1/"
    assert adr.context == "ADR-0001 · Ledger · Proposed"


def test_system_adrs_are_found_and_link_to_the_system(client, docs):
    system = SystemFactory(name="Warehouse", slug="warehouse", owner=docs.owner_team)
    techdocs_services.adr_create(created_by=None, system=system, title="Partition the zanzibar tables")
    client.force_login(docs.owner)
    (hit,) = _search(client, "zanzibar").context["groups"][0].hits
    assert hit.url == "/docs/systems/warehouse/adrs/1/"
    assert hit.context.startswith("ADR-0001 · Warehouse")


def test_every_word_must_match(client, docs):
    client.force_login(docs.owner)
    assert _hits(_search(client, "double refunds")).get("services") == ["Ledger"]
    assert "services" not in _hits(_search(client, "ledger quokka"))


def test_results_are_grouped_by_kind_with_at_most_per_kind(client, docs):
    for i in range(search.PER_KIND + 3):
        service_make(owner=docs.owner_team, slug=f"zebra-{i}", name=f"Zebra {i}", description="zebra crossing")
    techdocs_services.runbook_create(service=docs.service, title="Zebra drill", body="", created_by=None)
    client.force_login(docs.owner)

    groups = _search(client, "zebra").context["groups"]

    assert [group.kind for group in groups] == ["services", "runbooks"]
    assert [group.label for group in groups] == ["Services", "Runbooks"]
    assert len(groups[0].hits) == search.PER_KIND
    assert [hit.title for hit in groups[1].hits] == ["Zebra drill"]


@pytest.mark.smoke
def test_matching_word_is_marked(client, docs):
    client.force_login(docs.owner)
    response = _search(client, "ledger")
    (service_hit,) = [hit for group in response.context["groups"] if group.kind == "services" for hit in group.hits]
    assert "<mark>ledger</mark>" in service_hit.snippet.lower()
    assert "<mark>" in response.content.decode().lower()


@pytest.mark.smoke
def test_prefix_finds_the_whole_word(client, docs):
    """PostgreSQL matches the last word as a prefix; the LIKE fallback finds it as a substring."""
    client.force_login(docs.owner)
    assert "Ledger" in _hits(_search(client, "ledg")).get("services", [])


@pytest.mark.postgres_only
def test_word_forms_and_title_weight_on_postgres(client, docs):
    service_make(owner=docs.owner_team, slug="refund-api", name="Refund API", description="Money back.")
    client.force_login(docs.owner)
    # "refunding" and "refunds" share the stem "refund": the description of Ledger matches too, after the title hit.
    assert _hits(_search(client, "refunding"))["services"] == ["Refund API", "Ledger"]


# --- safety -----------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_html_in_the_query_is_escaped(client, docs):
    client.force_login(docs.owner)
    query = "<img src=x onerror=alert(1)>"
    html = _search(client, query).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    fragment = _search(client, query, HX_Request="true").content.decode()
    assert "<img src=x" not in fragment


@pytest.mark.smoke
def test_html_in_documents_is_escaped_in_titles_and_snippets(client, docs):
    techdocs_services.runbook_create(
        service=docs.service,
        title="<b>Loud</b> walrus",
        body="walrus steps <script>alert('pwned')</script> <img src=x onerror=alert(1)> walrus again",
        created_by=None,
    )
    Service.objects.filter(slug="ledger").update(description="walrus <script>alert('svc')</script>")
    client.force_login(docs.owner)

    response = _search(client, "walrus")

    html = response.content.decode()
    assert set(_hits(response)) == {"services", "runbooks"}
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<b>Loud</b>" not in html and "&lt;b&gt;Loud&lt;/b&gt; walrus" in html
    # The text around the tags is kept (PostgreSQL's ts_headline drops tags it recognises; the rest is escaped).
    assert "alert(&#x27;pwned&#x27;)" in html


@pytest.mark.parametrize(
    "query",
    ["a & b | !c :* ' \\", "'", "\\", ":*", "!!", "foo_bar", "_", "(ledger", "ledger:A", "ledger <-> x", "é", "1 2 3"],
)
def test_tsquery_syntax_in_the_query_does_not_error(client, docs, query):
    client.force_login(docs.owner)
    _search(client, query)


@pytest.mark.smoke
@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_shows_no_results(client, docs, query):
    client.force_login(docs.owner)
    response = _search(client, query)
    assert response.context["groups"] == []
    assert b"Nothing matches" not in response.content


def test_no_match_says_so(client, docs):
    client.force_login(docs.owner)
    response = _search(client, "quokka")
    assert response.context["groups"] == []
    assert "Nothing matches “quokka”" in response.content.decode()


@pytest.mark.smoke
def test_htmx_request_gets_only_the_results_fragment(client, docs):
    client.force_login(docs.owner)
    full = _search(client, "ledger")
    fragment = _search(client, "ledger", HX_Request="true")
    assert b"<html" in full.content and b'id="results"' in full.content
    assert b"<html" not in fragment.content and b"<form" not in fragment.content
    assert b'id="results"' not in fragment.content
    assert b'<section class="card search-group">' in fragment.content
    assert "HX-Request" in fragment["Vary"]


@pytest.mark.smoke
def test_anonymous_is_sent_to_sign_in(client, docs):
    response = client.get(SEARCH, {"q": "ledger"})
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


# --- snippets read as text, people can be found ----------------------------------------------------------------------


def test_snippets_show_markdown_as_plain_text(client, docs):
    body = (
        "## Alerts\n\n| alert | action |\n|---|---|\n"
        "| **PaymentsDown** | page the [rota](https://rota.example.com) |\n\n"
        "> Keep `kubectl` handy.\n\n- restart the *zeppelin* worker\n"
    )
    techdocs_services.runbook_create(service=docs.service, title="Zeppelin alerts", body=body, created_by=None)
    client.force_login(docs.owner)
    (hit,) = {g.kind: g for g in _search(client, "zeppelin").context["groups"]}["runbooks"].hits
    text = str(hit.snippet)
    words = text.replace("<mark>", "").replace("</mark>", "")
    for markup in ("##", "|", "---", "**", "](", "`", "> "):
        assert markup not in words, (markup, text)
    assert "<mark>zeppelin</mark>" in text.lower() or "<mark>Zeppelin</mark>" in text
    assert "PaymentsDown" in text or "rota" in text or "restart" in text


@pytest.mark.parametrize("query", ["olivia", "Olivia Okafor", "olivia@example", "okafor"])
def test_people_are_found_by_username_name_and_email_with_their_teams(client, docs, query):
    docs.owner.first_name, docs.owner.last_name, docs.owner.email = "Olivia", "Okafor", "olivia@example.com"
    docs.owner.save()
    client.force_login(docs.outsider)
    groups = {g.kind: g for g in _search(client, query).context["groups"]}
    (hit,) = groups["people"].hits
    assert hit.title == "Olivia Okafor"
    assert "olivia" in hit.context and "Payments" in hit.context
    assert hit.url == docs.owner_team.get_absolute_url()


def test_inactive_people_are_not_found(client, docs):
    docs.owner.is_active = False
    docs.owner.save()
    client.force_login(docs.outsider)
    assert "people" not in _hits(_search(client, "olivia"))


def test_search_page_query_count_is_bounded(client, docs, django_assert_max_num_queries):
    from tests.factories import MembershipFactory, UserFactory

    for i in range(12):
        MembershipFactory(team=docs.other_team, user=UserFactory(username=f"ledgerperson{i}"))
    client.force_login(docs.outsider)
    with django_assert_max_num_queries(12):  # session, user, one per kind, the snippets
        groups = _search(client, "ledger").context["groups"]
    assert {g.kind for g in groups} >= {"services", "people"}
