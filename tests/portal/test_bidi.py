"""Names and text refuse the invisible characters that reorder how text is displayed (U+202A–U+202E, U+2066–U+2069,
"Trojan Source"): in forms, API bodies and catalog descriptors alike."""

from pathlib import Path

import pytest
import yaml
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse

from accounts.models import ApiToken
from catalog import sync
from catalog.models import Service, System
from portal.validators import BIDI_CONTROLS, GUARDED_APPS, bidi_controls_refuse
from teams.models import Team

pytestmark = pytest.mark.django_db

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202etxt.exe" displays as "invoiceexe.txt"


@pytest.mark.parametrize("char", [chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))])
def test_the_validator_refuses_each_control_and_says_which(char: str) -> None:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
        bidi_controls_refuse(f"pay{char}ments")
    bidi_controls_refuse("Paiements — مدفوعات — 支付 ✓")  # other scripts, and right-to-left text itself, are fine


def test_every_text_field_of_runways_models_carries_the_validator() -> None:
    guarded = {
        f"{model._meta.label}.{field.name}": field
        for model in apps.get_models()
        if model._meta.app_label in GUARDED_APPS
        for field in model._meta.concrete_fields
        if isinstance(field, models.CharField | models.TextField) and not field.choices
    }
    assert {"catalog.Service.name", "teams.Team.description", "auth.User.first_name"} <= set(guarded)
    assert [name for name, field in guarded.items() if bidi_controls_refuse not in field.validators] == []


def test_the_validator_makes_no_migration() -> None:
    """It is attached where Django's own max-length validator is (the field's validators), not among the field's
    declared validators that migrations record."""
    field = Service._meta.get_field("name")
    assert bidi_controls_refuse not in field.deconstruct()[3].get("validators", [])


def test_a_form_refuses_a_team_name_with_an_override(client, world) -> None:
    client.force_login(world.staff)
    response = client.post(
        reverse("teams:team-create"), {"name": f"Pay{RLO}ments", "slug": "payments-2", "description": "x"}
    )
    assert response.status_code == 200
    assert "U+202E" in response.content.decode()
    assert not Team.objects.filter(slug="payments-2").exists()


def test_a_form_refuses_a_service_description_with_an_isolate(client, world) -> None:
    client.force_login(world.owner)
    edit = reverse("catalog:service-edit", kwargs={"slug": world.service.slug})
    page = client.get(edit)
    assert page.status_code == 200
    data = {name: value for name, value in page.context["form"].initial.items() if value is not None}
    data.update(description="Handles \u2067refunds\u2069", tags="")
    response = client.post(edit, data)
    assert response.status_code == 200 and "U+2067" in response.content.decode()
    world.service.refresh_from_db()
    assert "\u2067" not in world.service.description


def test_the_api_refuses_a_system_name_with_an_override(api_client, world) -> None:
    api_client.force_authenticate(world.staff)
    response = api_client.post(
        "/api/v1/systems/",
        {"slug": "shop", "name": f"Shop{RLO}", "owner": world.owner_team.slug, "description": ""},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "U+202E" in str(response.json()["name"])
    assert not System.objects.filter(slug="shop").exists()


def test_the_api_refuses_an_edit_with_an_embedding(api_client, world) -> None:
    api_client.force_authenticate(world.owner)
    response = api_client.patch(f"/api/v1/services/{world.service.slug}/", {"description": "a\u202ab"}, format="json")
    assert response.status_code == 400 and "U+202A" in str(response.json()["description"])


def test_the_tokens_page_refuses_a_token_name_with_an_override(client, world) -> None:
    client.force_login(world.owner)
    response = client.post(reverse("accounts:token-list"), {"name": f"deploy{RLO}", "lifetime_days": 30})
    assert "U+202E" in response.content.decode()
    assert not ApiToken.objects.exists()


def _component(name: str, description: str) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name, "description": description},
        "spec": {"type": "service", "lifecycle": "production", "owner": "group:payments"},
    }


def test_an_import_reports_the_entity_and_imports_the_rest(tmp_path: Path, world) -> None:
    (tmp_path / "catalog-info.yaml").write_text(
        yaml.safe_dump_all([_component("good-one", "Fine."), _component("bad-one", f"Looks{RLO} fine.")]),
        encoding="utf-8",
    )
    report = sync.catalog_import(root=tmp_path, source_name="bidi")
    assert Service.objects.filter(slug="good-one").exists()
    assert not Service.objects.filter(slug="bad-one").exists()
    (problem,) = report.errors
    assert problem.field == "metadata.description" and "U+202E" in problem.message


def test_the_pattern_covers_exactly_the_controls() -> None:
    found = {code for code in range(0x2000, 0x2100) if BIDI_CONTROLS.search(chr(code))}
    assert found == {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def test_the_wizard_refuses_an_answer_with_an_override() -> None:
    from scaffolder import registry

    path = registry.golden_path_get("python-worker")
    assert path is not None
    errors = path.validate({"description": f"Sends the nightly {RLO}reports to finance."}, only=("description",))
    assert any("U+202E" in message for message in errors["description"])


def test_an_import_refuses_a_persons_display_name_with_an_override(tmp_path: Path, world) -> None:
    person = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "mallory"},
        "spec": {"profile": {"displayName": f"Mallory {RLO}nimdA"}},
    }
    (tmp_path / "users.yaml").write_text(yaml.safe_dump(person), encoding="utf-8")
    (problem,) = sync.catalog_import(root=tmp_path, source_name="bidi").errors
    assert problem.field == "spec.profile.displayName" and "U+202E" in problem.message
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_a_reported_deployments_message_refuses_an_override(api_client, world) -> None:
    from deployments.models import Environment

    Environment.objects.get_or_create(slug="production", defaults={"name": "Production", "order": 30})
    api_client.force_authenticate(world.owner)
    response = api_client.post(
        "/api/v1/deploy-events/",
        {
            "service": world.service.slug,
            "environment": "production",
            "version": "1.2.3",
            "commit_sha": "a" * 40,
            "status": "failed",
            "message": f"Rolled back by {RLO}nimda",
        },
        format="json",
    )
    assert response.status_code == 400 and "U+202E" in str(response.json()["message"])
