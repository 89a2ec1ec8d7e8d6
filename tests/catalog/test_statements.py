"""The services list's statements by shape (catalog/api/statements.py): a page read through a kept statement is the
page the ordinary path builds, byte for byte, for any filters, orders, pages and cursors; a value that would not come
through unchanged is never filled in by hand; the shapes kept are bounded."""

import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog import text_search
from catalog.api import statements as statements_module
from catalog.api import views
from catalog.api.statements import Shape, Statements, shape_of, stand_in, statement_learn
from tests.factories import SystemFactory, TeamFactory, service_make

pytestmark = [pytest.mark.django_db]

SERVICES_URL = "/api/v1/services/"


@pytest.fixture
def services(world):  # type: ignore[no-untyped-def]
    """Fourteen services over three teams, two systems and a few tags, with names that share words."""
    teams = [world.owner_team, world.other_team, TeamFactory(slug="edge_ops", name="Edge Ops")]
    systems = [SystemFactory(slug="checkout", owner=teams[0]), SystemFactory(slug="discovery", owner=teams[1])]
    words = ["ledger", "billing", "search", "gateway", "vault", "proxy", "query"]
    for index in range(13):
        service_make(
            owner=teams[index % 3],
            slug=f"{words[index % 7]}-{index}",
            name=f"{words[index % 7].title()} {words[(index + 3) % 7]} {index}",
            tier=1 + index % 4,
            lifecycle=["production", "experimental", "deprecated"][index % 3],
            system=systems[index % 2] if index % 5 else None,
            tags=[["python", "pci"], ["go"], []][index % 3],
            description=f"Handles {words[(index + 1) % 7]}_{index} traffic",
        )
    return world


def _get(client, params: dict[str, str], *, ordinary: bool, monkeypatch) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patch:
        if ordinary:
            patch.setattr(views, "shape_of", lambda *args, **kwargs: None)
        response = client.get(SERVICES_URL, params)
    return response.status_code, response.content


VALUES = st.sampled_from(["", "payments", "search", "edge_ops", "nobody", "checkout", "discovery", "python", "go"])
WORDS = st.lists(
    st.sampled_from(["ledger", "Gate", "vault", "1", "a_b", "x%y", "ü", "query", "traffic", "o'brien", "-", "zz"]),
    max_size=3,
)
PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "owner": VALUES,
        "system": VALUES,
        "tag": VALUES,
        "q": WORDS.map(" ".join),
        "lifecycle": st.sampled_from(["", "production", "deprecated", "bogus"]),
        "tier": st.sampled_from(["", "1", "3", "9"]),
        "ordering": st.sampled_from(["", "name", "-name", "owner", "-tier", "lifecycle", "-updated", "verified", "x"]),
        "page": st.sampled_from(["1", "2", "3", "last", "0", "two"]),
        "page_size": st.sampled_from(["2", "5", "500", "-1"]),
        "cursor": st.just(""),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=PARAMS)
def test_a_kept_statement_reads_the_page_the_ordinary_path_builds(params, services, api_client, settings, monkeypatch):  # type: ignore[no-untyped-def]
    settings.CATALOG_API_CACHE = False
    api_client.force_authenticate(services.owner)
    for _ in range(2):  # the first request of a shape learns its statement, the second only fills it
        fast = _get(api_client, params, ordinary=False, monkeypatch=monkeypatch)
        assert fast == _get(api_client, params, ordinary=True, monkeypatch=monkeypatch), params
    if fast[0] == 200 and "cursor" in params:  # and a walk by cursor, page after page
        for _ in range(4):
            link = json.loads(fast[1])["next"]
            if not link:
                break
            walked = dict(parse_qsl(urlsplit(link).query, keep_blank_values=True))
            fast = _get(api_client, walked, ordinary=False, monkeypatch=monkeypatch)
            assert fast == _get(api_client, walked, ordinary=True, monkeypatch=monkeypatch), walked
            assert fast[0] == 200, fast


def test_a_list_request_on_postgresql_is_read_through_its_shape(
    services, api_client, settings, django_assert_num_queries
):  # type: ignore[no-untyped-def]
    settings.CATALOG_API_CACHE = False
    api_client.force_authenticate(services.owner)
    statements_module.statements.clear()
    for owner in ("payments", "search"):  # one shape, two owners: one statement learnt, filled twice
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):  # SQLite: count, then page
            body = api_client.get(SERVICES_URL, {"owner": owner, "ordering": "-tier"}).json()
        assert body["count"] == sum(1 for row in body["results"] if row["owner"] == owner) > 0
    kept = statements_module.statements._shapes
    if connection.vendor == "postgresql":
        assert [statement is not None for statement in kept.values()] == [True]
    else:  # SQLite counts and reads apart; it always takes the ordinary path
        assert not kept


def _shape(*values: str) -> Shape:
    return Shape(key=("k",), values=list(values), kinds=["s"] * len(values), number=1, after=False)


def test_a_value_that_changes_on_its_way_to_sql_is_never_filled_in_by_hand() -> None:
    one, two = stand_in(0, "s"), stand_in(1, "s")
    kept = statement_learn(_shape("a", "b"), "SELECT %s, %s", [one, f"%{two}%"], names=["_key0"], keyset=True)
    assert kept is not None and kept.fill(["payments", "led-ger"]) == ["payments", "%led-ger%"]
    assert kept.fill(["o'brien", "ledger"]) == ["o'brien", "%ledger%"]  # a whole parameter may be anything
    for unplain in ("a_b", "x%y", "o'brien", "back\\slash", "ü"):  # inside a pattern or quoted SQL: never
        assert kept.fill(["payments", unplain]) is None
    assert statement_learn(_shape("a", "b"), "SELECT %s", [one, two.lower()], names=[], keyset=True) is None
    assert statement_learn(_shape("a"), "SELECT %s", [], names=[], keyset=True) is None  # dropped
    assert statement_learn(_shape("a"), f"SELECT '{one}'", [one], names=[], keyset=True) is None  # in the SQL


def test_cursor_keys_stand_in_by_type_and_slots_do_not_overlap() -> None:
    assert stand_in(1, "s") not in stand_in(11, "s")
    moment = stand_in(2, "t")
    assert isinstance(moment, datetime) and moment.tzinfo is UTC and isinstance(stand_in(3, "i"), int)
    shape = Shape(key=("k",), values=[datetime(2026, 1, 1, tzinfo=UTC), 7], kinds=["t", "i"], number=None, after=True)
    kept = statement_learn(shape, "SELECT %s, %s", [stand_in(1, "i"), moment.replace()], names=[], keyset=True)
    assert kept is None  # slot 0 is a time, slot 1 a number: these stand-ins are 1 and 0's, swapped
    kept = statement_learn(shape, "SELECT %s, %s", [stand_in(0, "t"), stand_in(1, "i")], names=[], keyset=True)
    assert kept is not None and kept.fill(shape.values) == shape.values


def test_clock_filters_the_last_page_and_long_values_take_the_ordinary_path() -> None:
    from django.http import QueryDict

    def shape(query: str) -> Shape | None:
        return shape_of(QueryDict(query), number=1, size=50, after=None)

    expected = connection.vendor == "postgresql"
    assert (shape("owner=payments&q=ledger") is not None) is expected
    assert shape("stale=yes") is None and shape("verified=due") is None and shape("golden_path=behind") is None
    assert shape("q=" + "+".join(["w"] * 9)) is None and shape("owner=" + "x" * 201) is None
    assert shape("owner=a%00b") is None
    if expected:
        first, second = shape("owner=payments&tier=1"), shape("owner=search&tier=1")
        assert first and second and first.key == second.key and first.values != second.values
        assert shape("owner=payments&tier=2").key != first.key  # type: ignore[union-attr]


def test_the_shapes_kept_are_the_most_recently_used() -> None:
    kept = Statements(kept=2)
    learnt: list[tuple] = []

    def learn(shape: Shape) -> None:
        learnt.append(shape.key)

    for key in ("a", "b", "a", "c", "a", "b"):
        kept.get(Shape(key=(key,), values=[], kinds=[], number=1, after=False), learn)  # type: ignore[arg-type]
    assert learnt == [("a",), ("b",), ("c",), ("b",)] and list(kept._shapes) == [("a",), ("b",)]


@pytest.mark.postgres_only  # prepared statements are PostgreSQL's
def test_a_search_matching_few_is_prepared_and_one_matching_many_is_not(services, api_client, settings, monkeypatch):  # type: ignore[no-untyped-def]
    """A search that matches few services takes the tsquery its probe made as a parameter, and is prepared like the
    other shapes. One that matches many is not: the planner must see its words to choose between the name index and
    the full-text index, and PostgreSQL's generic plan of a call with parameters would build the tsquery once per row
    (5x slower for a common word)."""
    settings.CATALOG_API_CACHE = False
    api_client.force_authenticate(services.owner)

    def prepared() -> list[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
            return [row[0] for row in cursor.fetchall()]

    for _ in range(7):  # past the five runs after which PostgreSQL may switch a prepared statement to a generic plan
        few = api_client.get(SERVICES_URL, {"q": "ledger"})
        assert few.status_code == 200 and few.json()["results"][0]["slug"] in ("ledger-0", "ledger-7")  # by relevance
        assert api_client.get(SERVICES_URL, {"owner": "payments"}).status_code == 200
    assert any("counted.n" in text and "owner_id" in text for text in prepared())
    ranked = [text for text in prepared() if "::tsquery" in text]
    assert ranked and not any("catalog_search_query" in text for text in ranked)
    monkeypatch.setattr(text_search, "RANK_UP_TO", 0)  # every search matches "many"
    for _ in range(7):
        many = api_client.get(SERVICES_URL, {"q": "billing"})
        names = [row["name"].lower() for row in many.json()["results"]]
        assert many.status_code == 200 and len(names) > 2 and names == sorted(names)  # by name, not relevance
    assert not any("catalog_search_query" in text for text in prepared())
