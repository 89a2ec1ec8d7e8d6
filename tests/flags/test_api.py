"""The flags API's writes: the pages' own services behind them (validation, versions, audit), the owner team and
platform admins write a service's flags, platform admins write segments, everyone signed in reads."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from deployments.models import Environment
from flags import services
from flags.models import Flag, FlagSetting, Segment

pytestmark = pytest.mark.django_db
ROLES = ["owner", "outsider", "staff", "anonymous"]


@pytest.fixture
def envs(db):  # type: ignore[no-untyped-def]
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    return staging, production


@pytest.fixture
def flag(world, envs) -> Flag:  # type: ignore[no-untyped-def]
    return services.flag_create(actor=None, service=world.service, key="new-checkout", default_variant="off")


@pytest.fixture
def segment(db) -> Segment:  # type: ignore[no-untyped-def]
    conditions = [{"attribute": "email", "op": "ends_with", "value": "@example.com"}]
    return services.segment_save(actor=None, slug="internal-staff", name="Internal staff", conditions=conditions)


def api_as(world, role: str) -> APIClient:  # type: ignore[no-untyped-def]
    api = APIClient()
    if role != "anonymous":
        api.force_authenticate(getattr(world, role))
    return api


def _expected(role: str, allowed: set[str], ok: int) -> int:
    return 401 if role == "anonymous" else (ok if role in allowed else 403)


@pytest.mark.parametrize("role", ROLES)
def test_creating_a_flag_is_the_owner_teams(world, envs, role) -> None:
    body = {"service": world.service.slug, "key": "dark-mode", "variants": {"on": True, "off": False}}
    response = api_as(world, role).post("/api/v1/flags/", body, format="json")
    assert response.status_code == _expected(role, {"owner", "staff"}, 201), response.content
    created = Flag.objects.filter(key="dark-mode").first()
    assert (created is not None) is (response.status_code == 201)
    if created is not None:
        body = response.json()
        assert body["id"] == created.pk and body["service"] == world.service.slug and body["version"] == 1
        assert [(s["environment"], s["enabled"], s["default_variant"]) for s in body["settings"]] == [
            ("staging", False, "on"),
            ("production", False, "on"),
        ]
        event = AuditEvent.objects.get(action="flag.created", object_id=str(created.pk))
        assert event.actor_id == getattr(world, role).pk


@pytest.mark.parametrize("role", ROLES)
def test_changing_a_flag_is_the_owner_teams(world, flag, role) -> None:
    body = {"description": "The new checkout", "variants": {"on": True, "off": False, "dark": True}}
    response = api_as(world, role).patch(f"/api/v1/flags/{flag.pk}/", body, format="json")
    assert response.status_code == _expected(role, {"owner", "staff"}, 200), response.content
    flag.refresh_from_db()
    changed = response.status_code == 200
    assert (flag.description == "The new checkout") is changed and ("dark" in flag.variants) is changed
    assert flag.version == (2 if changed else 1)
    if changed:
        assert response.json()["variants"] == {"on": True, "off": False, "dark": True}


@pytest.mark.parametrize("role", ROLES)
def test_changing_a_setting_is_the_owner_teams(world, flag, role) -> None:
    body = {"enabled": True, "rollout": {"on": 10, "off": 90}, "note": "10 % first"}
    response = api_as(world, role).patch(f"/api/v1/flags/{flag.pk}/settings/production/", body, format="json")
    assert response.status_code == _expected(role, {"owner", "staff"}, 200), response.content
    setting = FlagSetting.objects.get(flag=flag, environment__slug="production")
    changed = response.status_code == 200
    assert setting.enabled is changed and setting.rollout == ({"on": 10.0, "off": 90.0} if changed else {})
    if changed:
        production = response.json()["settings"][1]
        assert production == production | {"enabled": True, "rollout": {"on": 10.0, "off": 90.0}}
        assert flag.versions.first().note == "10 % first"  # type: ignore[union-attr]


@pytest.mark.parametrize("role", ROLES)
def test_writing_segments_is_the_platform_admins(world, segment, role) -> None:
    api = api_as(world, role)
    staff = _expected(role, {"staff"}, 201)
    new = {"slug": "eu", "name": "EU", "conditions": [{"attribute": "country", "op": "in", "value": ["DE", "FR"]}]}
    assert api.post("/api/v1/flag-segments/", new, format="json").status_code == staff
    assert Segment.objects.filter(slug="eu").exists() is (staff == 201)
    changed = api.patch("/api/v1/flag-segments/internal-staff/", {"name": "Staff"}, format="json")
    assert changed.status_code == _expected(role, {"staff"}, 200)
    assert Segment.objects.get(slug="internal-staff").name == ("Staff" if staff == 201 else "Internal staff")
    assert api.delete("/api/v1/flag-segments/internal-staff/").status_code == _expected(role, {"staff"}, 204)
    assert Segment.objects.filter(slug="internal-staff").exists() is (staff != 201)
    read = api.get("/api/v1/flag-segments/")
    assert read.status_code == (401 if role == "anonymous" else 200)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "Not A Key"}, "key"),
        ({"key": "new-checkout"}, "key"),  # the service has it already
        ({"key": "x", "type": "integer", "variants": {"one": "1"}}, "variants"),
        ({"key": "x", "variants": {}}, "variants"),
        ({"key": "x", "default_variant": "maybe"}, "default_variant"),
        ({"key": "x", "type": "date"}, "type"),
        ({"key": "x", "kind": "forever"}, "kind"),
        ({"key": "x", "type": "string", "variants": {"a": "nul\x00here"}}, "variants"),
        ({"key": "x", "service": "nowhere"}, "service"),
    ],
)
def test_a_bad_new_flag_is_a_field_error(world, flag, body, field) -> None:
    before = Flag.objects.count()
    response = api_as(world, "owner").post("/api/v1/flags/", {"service": world.service.slug} | body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert Flag.objects.count() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": True, "rollout": {"on": 50, "off": 40}}, "rollout"),
        ({"rollout": {"maybe": 100}}, "rollout"),
        ({"rules": [{"when": [{"attribute": "plan", "op": "matches", "value": ".*"}], "variant": "on"}]}, "rules"),
        ({"rules": [{"when": [{"op": "segment", "value": "nobody"}], "variant": "on"}]}, "rules"),
        ({"rules": "everyone"}, "rules"),
        ({"default_variant": "sideways"}, "default_variant"),
        ({"enabled": "perhaps"}, "enabled"),
        ({"rules": [{"when": [{"attribute": "a", "op": "eq", "value": "\x00"}], "variant": "on"}]}, "rules"),
    ],
)
def test_a_bad_setting_is_a_field_error_and_changes_nothing(world, flag, body, field) -> None:
    response = api_as(world, "owner").patch(f"/api/v1/flags/{flag.pk}/settings/production/", body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    flag.refresh_from_db()
    assert flag.version == 1
    assert not FlagSetting.objects.get(flag=flag, environment__slug="production").enabled


def test_an_unknown_environment_or_flag_is_a_404(world, flag) -> None:
    api = api_as(world, "owner")
    assert api.patch(f"/api/v1/flags/{flag.pk}/settings/moon/", {"enabled": True}, format="json").status_code == 404
    assert api.patch("/api/v1/flags/999999/settings/production/", {}, format="json").status_code == 404
    assert api.put(f"/api/v1/flags/{flag.pk}/", {}, format="json").status_code == 405


def test_a_variant_still_served_cannot_be_removed(world, flag, envs) -> None:
    services.setting_update(actor=None, flag=flag, environment=envs[1], rollout={"on": 10, "off": 90})
    api = api_as(world, "owner")
    response = api.patch(f"/api/v1/flags/{flag.pk}/", {"variants": {"off": False}}, format="json")
    assert response.status_code == 400
    assert "Production still serves 'on'" in response.json()["variants"][0]
    flag.refresh_from_db()
    assert flag.variants == {"on": True, "off": False} and flag.version == 2


def test_a_rule_read_back_saves_unchanged(world, flag, segment) -> None:
    """A rule's rollout comes back as pairs; sending the rules as read must be accepted (page and API alike)."""
    api = api_as(world, "owner")
    staff = [{"op": "segment", "value": "internal-staff"}]
    rules = [{"name": "staff", "when": staff, "rollout": {"on": 50, "off": 50}}]
    first = api.patch(f"/api/v1/flags/{flag.pk}/settings/staging/", {"rules": rules}, format="json")
    assert first.status_code == 200, first.content
    read = first.json()["settings"][0]["rules"]
    assert read[0]["rollout"] == [["on", 50.0], ["off", 50.0]]
    again = api.patch(f"/api/v1/flags/{flag.pk}/settings/staging/", {"rules": read}, format="json")
    assert again.status_code == 200, again.content
    assert again.json()["settings"][0]["rules"] == read


def test_a_segment_in_use_cannot_be_deleted_and_its_slug_never_changes(world, flag, segment, envs) -> None:
    rules = [{"when": [{"op": "segment", "value": "internal-staff"}], "variant": "on"}]
    services.setting_update(actor=None, flag=flag, environment=envs[1], rules=rules)
    api = api_as(world, "staff")
    refused = api.delete("/api/v1/flag-segments/internal-staff/")
    assert refused.status_code == 409
    assert "payments-api/new-checkout in Production" in refused.json()["detail"]
    renamed = api.patch("/api/v1/flag-segments/internal-staff/", {"slug": "staff"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["slug"] == "internal-staff"
    dupe = {"slug": "internal-staff", "name": "Again", "conditions": segment.conditions}
    assert "slug" in api.post("/api/v1/flag-segments/", dupe, format="json").json()
    nested = {"slug": "x", "name": "X", "conditions": [{"op": "segment", "value": "internal-staff"}]}
    assert "conditions" in api.post("/api/v1/flag-segments/", nested, format="json").json()
    services.setting_update(actor=None, flag=flag, environment=envs[1], rules=[])
    assert api.delete("/api/v1/flag-segments/internal-staff/").status_code == 204
    assert AuditEvent.objects.filter(action="segment.deleted").count() == 1


def test_the_segment_list_reads_in_few_queries(world, segment, django_assert_max_num_queries) -> None:
    for n in range(5):
        conditions = [{"attribute": "plan", "op": "eq", "value": f"p{n}"}]
        services.segment_save(actor=None, slug=f"s{n}", name=f"S{n}", conditions=conditions)
    api = api_as(world, "outsider")
    with django_assert_max_num_queries(4):
        body = api.get("/api/v1/flag-segments/").json()
    assert body["count"] == 6
