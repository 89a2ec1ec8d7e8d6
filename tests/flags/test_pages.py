"""The flag pages: every signed-in user reads, the owner team and platform admins change, segments are staff's."""

import json

import pytest
from django.urls import reverse

from deployments.models import Environment
from flags import services
from flags.models import Flag, FlagSetting, SdkKey, Segment

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"
ROLES = ["owner", "outsider", "staff", "anonymous"]


@pytest.fixture
def envs(db):  # type: ignore[no-untyped-def]
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    return staging, production


@pytest.fixture
def flag(world, envs) -> Flag:  # type: ignore[no-untyped-def]
    return services.flag_create(actor=None, service=world.service, key="new-checkout", default_variant="off")


def _login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


def _urls(flag: Flag) -> dict[str, str]:
    slug, key = flag.service.slug, flag.key
    return {
        "list": reverse("flags:flag-list", args=[slug]),
        "detail": reverse("flags:flag-detail", args=[slug, key]),
        "preview": reverse("flags:preview", args=[slug, key]) + "?environment=production&targeting_key=u1",
        "sdk-keys": reverse("flags:sdk-keys", args=[slug]),
        "segments": reverse("flags:segment-list"),
    }


@pytest.mark.parametrize("page", ["list", "detail", "preview", "sdk-keys", "segments"])
@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 200), ("staff", 200), ("anonymous", 302)])
def test_every_signed_in_user_reads(client, world, flag, page, role, expected) -> None:
    _login(client, world, role)
    response = client.get(_urls(flag)[page])
    assert response.status_code == expected
    if role == "anonymous":
        assert response["Location"].startswith(LOGIN)


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 302)])
@pytest.mark.parametrize("name", ["flag-new", "kill"])
def test_change_forms_are_the_owners(client, world, flag, role, expected, name) -> None:
    _login(client, world, role)
    args = [world.service.slug] + ([flag.key] if name == "kill" else [])
    assert client.get(reverse(f"flags:{name}", args=args)).status_code == expected


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 302)])
def test_toggle_with_htmx_swaps_the_cell_and_only_for_the_owner(client, world, flag, role, expected) -> None:
    _login(client, world, role)
    url = reverse("flags:toggle", args=[world.service.slug, flag.key, "production"])
    response = client.post(url, HTTP_HX_REQUEST="true")
    assert response.status_code == expected
    enabled = FlagSetting.objects.get(flag=flag, environment__slug="production").enabled
    assert enabled is (role in ("owner", "staff"))
    if expected == 200:
        assert b'aria-checked="true"' in response.content
        assert b"hx-confirm" in response.content  # production is protected: turning it off again asks first
        assert Flag.objects.get(pk=flag.pk).version == 2


def test_staging_toggles_without_confirmation_and_the_service_page_lists_flags(client, world, flag) -> None:
    client.force_login(world.owner)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert "new-checkout" in page and 'id="flags"' in page
    staging_button = page.split(f'id="toggle-{flag.pk}-staging"')[1].split("</span>")[0]
    assert "hx-confirm" not in staging_button and "hx-post" in staging_button
    client.force_login(world.outsider)
    page = client.get(reverse("catalog:service-detail", args=[world.service.slug])).content.decode()
    assert "new-checkout" in page and "hx-post" not in page.split('id="flags"')[1].split("</section>")[0]


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_create_flag(client, world, envs, role, expected) -> None:
    _login(client, world, role)
    body = {"key": "blue-button", "type": "string", "variants": '{"blue": "#00f", "red": "#f00"}', "kind": "experiment"}
    response = client.post(reverse("flags:flag-new", args=[world.service.slug]), body)
    assert response.status_code == expected
    created = Flag.objects.filter(key="blue-button").first()
    assert (created is not None) is (role in ("owner", "staff"))
    if created:
        assert created.variants == {"blue": "#00f", "red": "#f00"} and created.settings.count() == 2


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"key": "Bad Key"}, "key", "lowercase"),
        ({"key": "x", "type": "integer", "variants": '{"a": "text"}'}, "variants", "not a integer"),
        ({"key": "x", "variants": "{not json"}, "variants", "not valid JSON"),
        ({"key": "x", "variants": "[" * 5000 + "]" * 5000}, "variants", "nested too deeply"),
        ({"key": "x", "variants": '{"a\\u0000": true}'}, "variants", "NUL"),
        ({"key": "x", "default_variant": "maybe"}, "default_variant", "one of the flag"),
    ],
)
def test_a_bad_new_flag_is_a_field_error(client, world, envs, body, field, message) -> None:
    client.force_login(world.owner)
    response = client.post(
        reverse("flags:flag-new", args=[world.service.slug]), {"type": "boolean", "kind": "release"} | body
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Flag.objects.exists()


def test_a_duplicate_key_is_a_field_error(client, world, flag) -> None:
    client.force_login(world.owner)
    response = client.post(
        reverse("flags:flag-new", args=[world.service.slug]), {"key": flag.key, "type": "boolean", "kind": "release"}
    )
    assert "already has a flag" in str(response.context["form"].errors)


def test_settings_save_and_bad_json_names_the_field(client, world, flag) -> None:
    Segment.objects.create(name="Internal staff", slug="internal-staff", conditions=[])
    client.force_login(world.owner)
    url = reverse("flags:setting", args=[world.service.slug, flag.key, "production"])
    good = {
        "production-default_variant": "off",
        "production-rules": json.dumps(
            [{"name": "staff", "when": [{"op": "segment", "value": "internal-staff"}], "variant": "on"}]
        ),
        "production-rollout": '{"on": 10, "off": 90}',
        "production-note": "10 % to start",
    }
    assert client.post(url, good).status_code == 302
    setting = FlagSetting.objects.get(flag=flag, environment__slug="production")
    assert setting.rollout == {"on": 10.0, "off": 90.0} and setting.rules[0]["variant"] == "on"
    assert flag.versions.first().note == "10 % to start"  # type: ignore[union-attr]

    bad = good | {"production-rollout": '{"on": 10, "off": 80}'}
    response = client.post(url, bad)
    assert response.status_code == 400
    form = next(row["form"] for row in response.context["rows"] if row["setting"].environment.slug == "production")
    assert "add up to 100" in " ".join(form.errors["rollout"])
    assert b"add up to 100" in response.content
    bad = good | {
        "production-rules": '[{"when": [{"attribute": "plan", "op": "matches", "value": "x"}], "variant": "on"}]'
    }
    response = client.post(url, bad)
    assert response.status_code == 400 and b"Unknown operator" in response.content
    assert FlagSetting.objects.get(pk=setting.pk).rollout == {"on": 10.0, "off": 90.0}

    client.force_login(world.outsider)
    assert client.post(url, good | {"production-rollout": ""}).status_code == 403


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_kill_switch_needs_confirmation(client, world, flag, role, expected) -> None:
    for env in Environment.objects.all():
        services.setting_update(actor=None, flag=flag, environment=env, enabled=True)
    _login(client, world, role)
    url = reverse("flags:kill", args=[world.service.slug, flag.key])
    if role in ("owner", "staff"):
        assert client.post(url).status_code == 200  # no confirmation: the question again, nothing killed
        assert FlagSetting.objects.filter(flag=flag, enabled=True).count() == 2
    assert client.post(url, {"confirmed": "yes"}).status_code == expected
    assert FlagSetting.objects.filter(flag=flag, enabled=True).count() == (0 if role in ("owner", "staff") else 2)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"environment": "staging", "targeting_key": "u1"}, b"DISABLED"),
        (
            {"environment": "production", "targeting_key": "u1", "attributes": '{"email": "ana@example.com"}'},
            b"TARGETING_MATCH",
        ),
        ({"environment": "production", "targeting_key": "u1", "attributes": '{"email": 7}'}, b"ERROR"),
        ({"environment": "production", "attributes": '{"email": "x@y.z"}'}, b"TARGETING_KEY_MISSING"),
        ({"environment": "production", "targeting_key": "u1", "attributes": "[1]"}, b"JSON object"),
        ({"environment": "nowhere"}, b"Select a valid choice"),
    ],
)
def test_preview_answers_what_the_sdk_would_get(client, world, flag, query, expected) -> None:
    production = Environment.objects.get(slug="production")
    rules = [
        {
            "name": "example staff",
            "when": [{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
            "variant": "on",
        }
    ]
    services.setting_update(
        actor=None, flag=flag, environment=production, enabled=True, rules=rules, rollout={"on": 50, "off": 50}
    )
    client.force_login(world.outsider)
    response = client.get(reverse("flags:preview", args=[world.service.slug, flag.key]), query, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert expected in response.content
    assert b"<html" not in response.content


def test_sdk_key_is_shown_once_and_revoked_with_confirmation(client, world, envs) -> None:
    client.force_login(world.owner)
    url = reverse("flags:sdk-keys", args=[world.service.slug])
    response = client.post(url, {"environment": "production", "name": "checkout web"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    key = SdkKey.objects.get()
    raw = response.context["created"]["raw"]
    assert raw.startswith("rwf_") and raw.encode() in response.content
    assert raw.encode() not in client.get(url).content  # shown once

    client.force_login(world.outsider)
    assert client.post(url, {"environment": "production", "name": "mine"}).status_code == 403
    revoke = reverse("flags:sdk-key-revoke", args=[key.pk])
    assert client.post(revoke, {"confirmed": "yes"}).status_code == 403
    client.force_login(world.owner)
    assert client.get(revoke).status_code == 200
    assert client.post(revoke, {"confirmed": "yes"}).status_code == 302
    assert SdkKey.objects.get().revoked_at is not None


@pytest.mark.parametrize(("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_only_platform_admins_edit_segments(client, world, role, expected) -> None:
    _login(client, world, role)
    body = {
        "name": "Internal staff",
        "slug": "internal-staff",
        "conditions": '[{"attribute": "email", "op": "ends_with", "value": "@example.com"}]',
    }
    response = client.post(reverse("flags:segment-new"), body)
    assert response.status_code == expected
    assert Segment.objects.filter(slug="internal-staff").exists() is (role == "staff")


def test_segment_errors_name_the_field(client, world) -> None:
    client.force_login(world.staff)
    Segment.objects.create(name="EU", slug="eu", conditions=[{"attribute": "country", "op": "in", "value": ["DE"]}])
    for body, field, message in [
        (
            {"name": "A", "slug": "a", "conditions": '[{"attribute": "x", "op": "gt", "value": "high"}]'},
            "conditions",
            "needs a number",
        ),
        ({"name": "A", "slug": "a", "conditions": ""}, "conditions", "required"),
        ({"name": "B", "slug": "eu", "conditions": '[{"attribute": "x", "op": "eq", "value": 1}]'}, "slug", "already"),
    ]:
        response = client.post(reverse("flags:segment-new"), body)
        assert response.status_code == 200
        assert message in " ".join(response.context["form"].errors.get(field, [])), response.context["form"].errors
    response = client.post(
        reverse("flags:segment-edit", args=["eu"]),
        {"name": "EU", "slug": "eu", "conditions": '[{"attribute": "country", "op": "in", "value": ["DE", "FR"]}]'},
    )
    assert response.status_code == 302
    assert Segment.objects.get(slug="eu").conditions[0]["value"] == ["DE", "FR"]
    assert client.get(reverse("flags:segment-edit", args=["nope"])).status_code == 404


def test_the_segments_page_explains_an_empty_list_and_leads_back(client, world) -> None:
    client.force_login(world.outsider)
    page = client.get(reverse("flags:segment-list")).content.decode()
    assert "No segments yet. A segment names an audience once" in page
    assert "a platform admin makes them" in page
    assert f'<a href="{reverse("catalog:service-list")}">Catalog</a>' in page
    client.force_login(world.staff)
    assert (
        f'<a href="{reverse("flags:segment-new")}">make the first one</a>'
        in client.get(reverse("flags:segment-list")).content.decode()
    )


def test_a_protected_environment_is_named_so_not_only_marked_with_a_dot(client, world, flag) -> None:
    """The column's dot has a tooltip only a mouse finds; a screen reader hears the words."""
    client.force_login(world.owner)
    page = client.get(reverse("flags:flag-list", args=[world.service.slug])).content.decode()
    assert '<span class="visually-hidden">(protected: changes ask for confirmation)</span>' in page
    assert page.count("(protected: changes ask for confirmation)") == 1  # staging is not protected


def test_the_service_flags_table_costs_a_fixed_number_of_queries(
    client, world, envs, django_assert_max_num_queries
) -> None:
    for index in range(12):
        services.flag_create(actor=None, service=world.service, key=f"flag-{index}")
    client.force_login(world.owner)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("flags:flag-list", args=[world.service.slug]))
    assert response.content.count(b'role="switch"') == 24


def test_the_demo_flags_load_once_and_serve_staff_first(world, envs) -> None:
    from flags import demo, evaluation, selectors
    from tests.factories import service_make

    checkout = service_make(owner=world.owner_team, slug="checkout-api", name="Checkout API")
    assert demo.flags_load(admin=world.staff) == 3  # world.service is payments-api, which has one too
    assert demo.flags_load(admin=world.staff) == 0
    from flags import usage
    from flags.models import EvaluationCount

    assert [flag.key for flag, _debt in usage.stale_flags()] == ["express-shipping-banner"]  # the demo's debt
    assert EvaluationCount.objects.filter(flag__key="new-checkout", environment=envs[1], variant="on").count() == 14
    production = envs[1]
    compiled = selectors.compile_set(checkout.pk, production.pk)["flags"]["new-checkout"]
    _, staff = evaluation.evaluate("new-checkout", compiled, {"targetingKey": "u1", "email": "ana@example.com"})
    assert (staff["reason"], staff["value"]) == ("TARGETING_MATCH", True)
    shares = [evaluation.evaluate("new-checkout", compiled, {"targetingKey": f"u{i}"})[1]["value"] for i in range(2000)]
    assert 0.07 < shares.count(True) / len(shares) < 0.13  # the 10 % rollout
    # One flag is in a progressive rollout, its first step taken: 1 % of staging's shoppers get it.
    from flags.models import FlagRollout

    rollout = FlagRollout.objects.get(flag__key="one-page-checkout")
    assert (rollout.state, rollout.percent, rollout.environment.slug) == ("running", 1.0, "staging")
    staging = selectors.compile_set(checkout.pk, envs[0].pk)["flags"]["one-page-checkout"]
    assert staging["enabled"] and staging["rollout"] == [["on", 1.0], ["off", 99.0]]


def test_the_api_reads_flags_with_their_settings(client, world, flag, django_assert_max_num_queries) -> None:
    from rest_framework.test import APIClient

    services.flag_create(actor=None, service=world.service, key="second")
    api = APIClient()
    assert api.get("/api/v1/flags/").status_code in (401, 403)
    api.force_authenticate(world.outsider)
    with django_assert_max_num_queries(6):
        body = api.get("/api/v1/flags/", {"service__slug": world.service.slug}).json()
    assert [row["key"] for row in body["results"]] == ["new-checkout", "second"]
    first = body["results"][0]
    assert [s["environment"] for s in first["settings"]] == ["staging", "production"]
    assert first["variants"] == {"on": True, "off": False} and first["settings"][1]["enabled"] is False
    assert api.get(f"/api/v1/flags/{flag.pk}/").json()["key"] == "new-checkout"
    assert api.get("/api/v1/flags/", {"service__slug": "a\x00b"}).status_code == 400


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 401)])
def test_the_api_kill_switch_is_the_owners(world, flag, role, expected) -> None:
    from rest_framework.test import APIClient

    for env in Environment.objects.all():
        services.setting_update(actor=None, flag=flag, environment=env, enabled=True)
    api = APIClient()
    if role != "anonymous":
        api.force_authenticate(getattr(world, role))
    response = api.post(f"/api/v1/flags/{flag.pk}/kill/")
    assert response.status_code in ((401, 403) if role == "anonymous" else (expected,))
    on = FlagSetting.objects.filter(flag=flag, enabled=True).count()
    assert on == (0 if expected == 200 else 2)
    if expected == 200:
        assert [s["enabled"] for s in response.json()["settings"]] == [False, False]
