"""The flagd export: valid against flagd's own JSON schema, and evaluated by OpenFeature's flagd provider (its
in-process evaluator reading the exported file: flagd's JsonLogic and `fractional`) to the same answers as Runway."""

import itertools
import json
import time
from pathlib import Path

import pytest
from django.urls import reverse
from jsonschema import Draft7Validator
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider import ProviderStatus
from referencing import Registry, Resource

from deployments.models import Environment
from flags import evaluation, flagd, selectors, services
from flags.models import Flag
from tests.flags.conftest import Shop

pytestmark = pytest.mark.django_db
SCHEMAS = Path(__file__).parent / "flagd_schema"
EU = ["DE", "FR", "NL"]
_domains = itertools.count()


def validator() -> Draft7Validator:
    flags, targeting = (json.loads((SCHEMAS / name).read_text()) for name in ("flags.json", "targeting.json"))
    # Draft 7 ignores a `$id` beside a `$ref` (flags.json's root), so its "./targeting.json" is resolved from no base.
    resource = Resource.from_contents(targeting)
    registry = Registry().with_resources([(targeting["$id"], resource), ("./targeting.json", resource)])
    return Draft7Validator(flags, registry=registry)


@pytest.fixture
def catalogue(shop: Shop) -> Shop:
    """Flags of every type, with every operator, a segment, rollouts (one with decimals) and a flag that is off."""
    services.segment_save(
        actor=None,
        slug="staff",
        name="Staff",
        conditions=[{"attribute": "email", "op": "ends_with", "value": "@shop.example"}],
    )
    env, service = shop.production, shop.flag.service
    services.setting_update(
        actor=None,
        flag=shop.flag,
        environment=env,
        rules=[
            {"name": "staff", "when": [{"op": "segment", "value": "staff"}], "variant": "on"},
            {"name": "not eu", "when": [{"attribute": "country", "op": "not_in", "value": EU}], "variant": "off"},
        ],
        rollout={"on": 12.5, "off": 87.5},
    )

    def make(key: str, flag_type: str, variants: dict, default: str, **setting: object) -> None:  # type: ignore[type-arg]
        flag = services.flag_create(
            actor=None, service=service, key=key, flag_type=flag_type, variants=variants, default_variant=default
        )
        services.setting_update(actor=None, flag=flag, environment=env, enabled=True, **setting)

    make(
        "theme",
        "string",
        {"light": "light", "dark": "dark", "contrast": "high-contrast"},
        "light",
        rules=[
            {
                "name": "beta",
                "when": [{"attribute": "plan", "op": "in", "value": ["beta", "trial"]}],
                "variant": "dark",
            },  # noqa: E501
            {
                "name": "a11y",
                "when": [{"attribute": "name", "op": "starts_with", "value": "Ada"}],
                "variant": "contrast",
            },  # noqa: E501
            {
                "name": "ops",
                "when": [
                    {"attribute": "email", "op": "contains", "value": "ops"},
                    {"attribute": "country", "op": "neq", "value": "FR"},
                ],
                "variant": "dark",
            },
        ],
    )
    make(
        "page-size",
        "integer",
        {"small": 10, "large": 50},
        "small",
        rules=[
            {"name": "big", "when": [{"attribute": "seats", "op": "gte", "value": 100}], "variant": "large"},
            {"name": "tiny", "when": [{"attribute": "seats", "op": "lt", "value": 3}], "variant": "large"},
            {"name": "exact", "when": [{"attribute": "seats", "op": "eq", "value": 42}], "variant": "large"},
        ],
    )
    make("discount", "float", {"none": 0.0, "some": 0.15}, "none", rollout={"some": 30, "none": 70})
    make(
        "banner",
        "object",
        {"plain": {"text": "Hello"}, "sale": {"text": "Sale", "colour": "red"}},
        "plain",
        rules=[
            {"name": "big spenders", "when": [{"attribute": "spend", "op": "gt", "value": 1000}], "variant": "sale"},
            {"name": "everyone else", "when": [], "rollout": {"sale": 50, "plain": 50}},
        ],
    )
    services.flag_create(actor=None, service=service, key="switched-off")  # off in production
    return shop


def _export(shop: Shop) -> dict:  # type: ignore[type-arg]
    return flagd.flag_set_export(service=shop.flag.service, environment=shop.production)


def test_the_export_is_valid_flagd(catalogue: Shop) -> None:
    document = _export(catalogue)
    errors = sorted(validator().iter_errors(document), key=str)
    assert not errors, [error.message for error in errors]
    assert set(document["flags"]) == {"new-checkout", "theme", "page-size", "discount", "banner", "switched-off"}
    assert document["flags"]["switched-off"]["state"] == "DISABLED"
    assert sorted(document["flags"]["discount"]["targeting"]["fractional"]) == [["none", 70], ["some", 30]]
    decimals = document["flags"]["new-checkout"]["targeting"]["if"][-1]["fractional"]
    assert sorted(decimals) == [["off", 8750], ["on", 1250]]  # 12.5 % in integer weights
    assert document["metadata"]["flagSetId"] == "checkout/production"

    broken = json.loads(json.dumps(document))
    broken["flags"]["theme"]["state"] = "ON"
    assert not validator().is_valid(broken)  # the schema is really checked


def test_object_variants_flagd_cannot_hold_are_left_out_and_named(shop: Shop) -> None:
    services.flag_create(
        actor=None, service=shop.flag.service, key="tiers", flag_type="object", variants={"a": [1, 2], "b": {"x": 1}}
    )
    document = _export(shop)
    assert "tiers" not in document["flags"] and document["metadata"]["runwayOmitted"] == "tiers"
    assert validator().is_valid(document)


def _flagd_client(tmp_path: Path, document: dict):  # type: ignore[no-untyped-def,type-arg]
    path = tmp_path / "flags.flagd.json"
    path.write_text(json.dumps(document))
    domain = f"flagd-{next(_domains)}"
    api.set_provider(FlagdProvider(resolver_type=ResolverType.FILE, offline_flag_source_path=str(path)), domain)
    client = api.get_client(domain)
    deadline = time.monotonic() + 10
    while client.get_provider_status() != ProviderStatus.READY:  # the provider reads the file in a thread of its own
        assert time.monotonic() < deadline, "the flagd provider never read the file"
        time.sleep(0.05)
    return client


CONTEXTS = [
    {"email": "ada@shop.example", "country": "FR"},
    {"email": "bob@mail.example", "country": "US"},
    {"email": "ops@mail.example", "country": "DE", "plan": "pro", "seats": 100},
    {"email": "ops@mail.example", "country": "FR", "seats": 99.5},
    {"name": "Ada Lovelace", "plan": "trial", "seats": 2},
    {"name": "Bea", "plan": "beta", "seats": 42, "spend": 1000},
    {"country": "NL", "spend": 1000.01},
    {"seats": 3},
    {},
]
GETTERS = {"boolean": "get_boolean_details", "string": "get_string_details", "integer": "get_integer_details"}
GETTERS |= {"float": "get_float_details", "object": "get_object_details"}
CODE_DEFAULTS = {"boolean": False, "string": "?", "integer": -1, "float": -1.0, "object": {"code": "default"}}


def test_flagd_answers_like_runway_for_every_rule(catalogue: Shop, tmp_path: Path) -> None:
    """Every flag and context whose answer does not depend on a rollout's bucketing: the same variant and value."""
    client = _flagd_client(tmp_path, _export(catalogue))
    compiled = selectors.compile_set(catalogue.flag.service_id, catalogue.production.pk)["flags"]
    compared: list[str] = []
    for key, flag in compiled.items():
        for attributes in CONTEXTS:
            context = {"targetingKey": "user-1", **attributes}
            _status, runway = evaluation.evaluate(key, flag, context)
            if runway.get("reason") == "SPLIT":
                continue  # placed by a hash: compared by shares below
            getter = getattr(client, GETTERS[flag["type"]])
            default = CODE_DEFAULTS[flag["type"]]
            answer = getter(key, default, EvaluationContext(targeting_key="user-1", attributes=attributes))
            if runway["reason"] == "DISABLED":
                assert answer.value == default, key  # both leave it to the code
            else:
                assert (answer.variant, answer.value) == (runway["variant"], runway["value"]), (key, attributes)
                assert answer.reason == runway["reason"], (key, attributes)
                compared.append(runway["reason"])
    assert len(compared) >= 25 and {"TARGETING_MATCH", "DEFAULT"} <= set(compared)


def test_flagd_rollouts_keep_runways_shares_and_are_sticky(catalogue: Shop, tmp_path: Path) -> None:
    client = _flagd_client(tmp_path, _export(catalogue))
    everyone_else = {"country": "DE"}  # past new-checkout's rules: its 12.5 % rollout decides
    keys = [f"user-{index}" for index in range(3000)]

    def share(flag_key: str, flag_type: str, variant: str, attributes: dict) -> float:  # type: ignore[type-arg]
        getter, default = getattr(client, GETTERS[flag_type]), CODE_DEFAULTS[flag_type]
        answers = [
            getter(flag_key, default, EvaluationContext(targeting_key=key, attributes=attributes)) for key in keys
        ]
        assert {answer.error_code for answer in answers} == {None}
        return sum(answer.variant == variant for answer in answers) / len(keys)

    assert abs(share("new-checkout", "boolean", "on", everyone_else) - 0.125) < 0.02
    assert abs(share("discount", "float", "some", {}) - 0.30) < 0.03
    assert abs(share("banner", "object", "sale", {"spend": 5}) - 0.50) < 0.03
    context = EvaluationContext(targeting_key="user-7", attributes=everyone_else)
    first = client.get_boolean_details("new-checkout", False, context).variant
    assert all(client.get_boolean_details("new-checkout", False, context).variant == first for _ in range(20))


# Pages and API


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 200), ("staff", 200), ("anonymous", 302)])
def test_every_signed_in_user_downloads_the_flagd_file(client, world, role, expected) -> None:  # type: ignore[no-untyped-def]
    Environment.objects.create(name="Production", slug="production", order=1)
    services.flag_create(actor=None, service=world.service, key="new-banner")
    if role != "anonymous":
        client.force_login(getattr(world, role))
    response = client.get(reverse("flags:flagd-export", args=[world.service.slug, "production"]))
    assert response.status_code == expected
    if expected == 200:
        assert response["Content-Disposition"] == 'attachment; filename="payments-api-production.flagd.json"'
        assert "new-banner" in response.json()["flags"]
        page = client.get(reverse("flags:flag-list", args=[world.service.slug])).content.decode()
        assert reverse("flags:flagd-export", args=[world.service.slug, "production"]) in page
    assert client.get(reverse("flags:flagd-export", args=[world.service.slug, "nowhere"])).status_code in (404, 302)


def test_the_api_exports_the_same_file(api_client, world, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    Environment.objects.create(name="Production", slug="production", order=1)
    services.flag_create(actor=None, service=world.service, key="new-banner")
    url = f"/api/v1/flagd/{world.service.slug}/production/"
    assert api_client.get(url).status_code in (401, 403)
    api_client.force_authenticate(world.outsider)
    with django_assert_max_num_queries(6):
        response = api_client.get(url)
    assert response.status_code == 200 and validator().is_valid(response.json())
    assert response.json() == json.loads(json.dumps(_export_of(world)))
    assert api_client.get(f"/api/v1/flagd/{world.service.slug}/nowhere/").status_code == 404
    assert api_client.get("/api/v1/flagd/no-such-service/production/").status_code == 404
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/v1/flagd/{service}/{environment}/" in schema["paths"]


def _export_of(world) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return flagd.flag_set_export(service=world.service, environment=Environment.objects.get(slug="production"))


def test_a_flag_count_does_not_change_the_query_count(api_client, world, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    Environment.objects.create(name="Production", slug="production", order=1)
    for index in range(25):
        services.flag_create(actor=None, service=world.service, key=f"flag-{index}")
    api_client.force_authenticate(world.outsider)
    with django_assert_max_num_queries(6):
        response = api_client.get(f"/api/v1/flagd/{world.service.slug}/production/")
    assert len(response.json()["flags"]) == 25 and Flag.objects.count() == 25
