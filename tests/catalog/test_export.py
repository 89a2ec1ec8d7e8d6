"""Catalog-as-code export: files that import back into the same catalog, alone or for one team."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from catalog import sync
from catalog.export import catalog_export, export_zip
from catalog.models import Api, CatalogSource, EntitySource, Resource, Service, System
from teams.models import Membership, Team
from techdocs.models import ADR, Runbook

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]
User = get_user_model()
V1 = "backstage.io/v1alpha1"


def files_write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def catalog_wipe() -> None:
    """Every catalog row and the teams' groups; audit rows stay (PostgreSQL refuses to delete them anyway)."""
    Runbook.objects.all().delete()
    ADR.objects.all().delete()
    Service.objects.all().delete()
    Api.objects.all().delete()
    Resource.objects.all().delete()
    System.objects.all().delete()
    EntitySource.objects.all().delete()
    CatalogSource.objects.all().delete()
    Membership.objects.all().delete()
    group_ids = list(Team.objects.values_list("group_id", flat=True))
    Team.objects.all().delete()
    Group.objects.filter(pk__in=group_ids).delete()
    assert not Service.objects.exists() and not Team.objects.exists() and not Group.objects.exists()


def slug(obj: Any) -> str | None:
    return obj.slug if obj is not None else None


def catalog_snapshot() -> dict[str, Any]:
    """Everything an import writes, keyed by slugs and numbers rather than database ids."""
    services = {}
    for service in Service.objects.select_related("owner", "system").prefetch_related(
        "tags", "resources", "provided_apis", "consumed_apis", "dependencies__target", "runbooks", "adrs__superseded_by"
    ):
        services[service.slug] = {
            **{
                name: getattr(service, name)
                for name in (
                    "name",
                    "description",
                    "lifecycle",
                    "component_type",
                    "tier",
                    "language",
                    "repository_url",
                    "docs_url",
                    "dashboard_url",
                    "chat_channel",
                    "on_call_url",
                    "links",
                    "annotations",
                )
            },
            "owner": service.owner.slug,
            "system": slug(service.system),
            "tags": sorted(tag.name for tag in service.tags.all()),
            "dependencies": sorted((d.target.slug, d.kind) for d in service.dependencies.all()),
            "resources": sorted(r.slug for r in service.resources.all()),
            "provides": sorted(a.slug for a in service.provided_apis.all()),
            "consumes": sorted(a.slug for a in service.consumed_apis.all()),
            "runbooks": {
                r.slug: (
                    r.title,
                    r.body,
                    r.review_interval_days,
                    r.last_reviewed_at.date(),
                    r.last_reviewed_by,
                    r.review_due_at.date(),
                )
                for r in service.runbooks.all()
            },
            "adrs": {
                a.number: (a.title, a.status, a.date, a.deciders, a.body, getattr(a.superseded_by, "number", None))
                for a in service.adrs.all()
            },
        }
    teams = {
        team.slug: {
            "name": team.name,
            "description": team.description,
            "chat_channel": team.chat_channel,
            "on_call_url": team.on_call_url,
            "parent": slug(team.parent),
            "members": sorted(
                (m.user.username, m.role) for m in team.memberships.select_related("user").order_by("user__username")
            ),
            "group_members": sorted(team.group.user_set.values_list("username", flat=True)),
        }
        for team in Team.objects.select_related("parent", "group")
    }
    people = {
        user.username: (user.first_name, user.last_name, user.email)
        for user in User.objects.filter(memberships__isnull=False).distinct()
    }
    return {
        "services": services,
        "teams": teams,
        "people": people,
        "systems": {s.slug: (s.name, s.description, s.owner.slug) for s in System.objects.select_related("owner")},
        "apis": {
            a.slug: (
                a.name,
                a.description,
                a.type,
                a.lifecycle,
                a.owner.slug,
                slug(a.system),
                a.definition,
                a.annotations,
            )
            for a in Api.objects.select_related("owner", "system")
        },
        "resources": {
            r.slug: (r.name, r.description, r.type, r.owner.slug, slug(r.system), r.annotations)
            for r in Resource.objects.select_related("owner", "system")
        },
    }


def test_export_of_the_demo_imports_back_into_the_same_catalog(tmp_path):
    assert sync.catalog_import(root=settings.SERVICES_DIR, source_name="demo").errors == []
    before = catalog_snapshot()
    assert len(before["services"]) == 43 and len(before["teams"]) == 9

    files = catalog_export(services=Service.objects.all(), teams=Team.objects.all())

    assert {"org/groups.yaml", "org/users.yaml", "systems.yaml", "payments-api/catalog-info.yaml"} <= set(files)
    assert "payments-api/docs/runbook-deploy.md" in files
    assert "ledger/docs/adr/0004-post-journal-entries-from-callers-transactional-outboxes.md" in files
    assert len(files) == 3 + 43 + 41 + 80
    catalog_wipe()
    report = sync.catalog_import(root=files_write(tmp_path / "export", files), source_name="export")

    assert report.errors == [] and report.missing == []
    assert dict(report.created) == {"Group": 9, "System": 8, "Resource": 5, "API": 9, "Component": 43}
    assert dict(report.updated) == {"User": 10}  # the people were kept, and are adopted by the new source
    after = catalog_snapshot()
    for key in before:
        assert after[key] == before[key], key
    demo = User.objects.get(username="demo")
    assert demo.has_perm("catalog.change_service", Service.objects.get(slug="payments-api"))


def test_export_of_one_team_imports_on_its_own(tmp_path):
    sync.catalog_import(root=settings.SERVICES_DIR, source_name="demo")
    before = catalog_snapshot()

    files = catalog_export(services=Service.objects.filter(owner__slug="data"))

    assert sorted(name for name in files if name.endswith("catalog-info.yaml")) == [
        "event-pipeline/catalog-info.yaml",
        "ml-features/catalog-info.yaml",
        "reporting/catalog-info.yaml",
        "warehouse-loader/catalog-info.yaml",
    ]
    catalog_wipe()
    report = sync.catalog_import(root=files_write(tmp_path, files), source_name="data")

    assert report.errors == []
    after = catalog_snapshot()
    assert set(after["services"]) == {"event-pipeline", "ml-features", "reporting", "warehouse-loader"}
    for service_slug, fields in after["services"].items():
        assert fields == before["services"][service_slug]
    assert set(after["teams"]) == {"data"} and after["teams"]["data"] == before["teams"]["data"]
    assert after["resources"] == {"events-kafka": before["resources"]["events-kafka"]}
    assert after["systems"] == {"analytics": before["systems"]["analytics"]}


def test_export_brings_the_teams_and_systems_of_the_apis_and_resources_it_includes(tmp_path):
    """alpha's service provides beta's API and uses delta's resource in gamma's system: all of it must travel."""
    tree = tmp_path / "tree"
    documents = {
        "org.yaml": [
            {"apiVersion": V1, "kind": "Group", "metadata": {"name": name}, "spec": {"type": "team"}}
            for name in ("alpha", "beta", "gamma", "delta")
        ],
        "systems.yaml": [
            {"apiVersion": V1, "kind": "System", "metadata": {"name": "infra"}, "spec": {"owner": "gamma"}},
            {"apiVersion": V1, "kind": "System", "metadata": {"name": "platform"}, "spec": {"owner": "alpha"}},
        ],
        "web/catalog-info.yaml": [
            {
                "apiVersion": V1,
                "kind": "Component",
                "metadata": {"name": "web"},
                "spec": {"owner": "alpha", "dependsOn": ["resource:db"], "providesApis": ["web-api"]},
            },
            {
                "apiVersion": V1,
                "kind": "API",
                "metadata": {"name": "web-api"},
                "spec": {"owner": "beta", "system": "platform", "type": "grpc"},
            },
            {
                "apiVersion": V1,
                "kind": "Resource",
                "metadata": {"name": "db"},
                "spec": {"owner": "delta", "system": "infra", "type": "database"},
            },
        ],
    }
    files_write(tree, {name: yaml.safe_dump_all(docs) for name, docs in documents.items()})
    assert sync.catalog_import(root=tree, source_name="tree").errors == []
    before = catalog_snapshot()

    files = catalog_export(services=Service.objects.filter(owner__slug="alpha"))
    catalog_wipe()
    report = sync.catalog_import(root=files_write(tmp_path / "export", files), source_name="alpha")

    assert report.errors == []
    after = catalog_snapshot()
    assert after["services"] == before["services"]
    assert after["apis"] == before["apis"] and after["resources"] == before["resources"]
    assert after["systems"] == before["systems"]
    assert set(after["teams"]) == {"alpha", "beta", "gamma", "delta"}


def test_export_zip_holds_every_file():
    import io
    import zipfile

    files = {"b/catalog-info.yaml": "kind: Component\n", "org/groups.yaml": "kind: Group\n"}
    with zipfile.ZipFile(io.BytesIO(export_zip(files))) as archive:
        assert {name: archive.read(name).decode() for name in archive.namelist()} == files


def test_service_descriptor_page_is_the_component_as_yaml(client):
    sync.catalog_import(root=settings.SERVICES_DIR, source_name="demo")
    client.force_login(User.objects.create_user("viewer", password="x"))

    response = client.get("/catalog/services/payments-api/catalog-info.yaml")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    documents = list(yaml.safe_load_all(response.content.decode()))
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Component", "payments-api"),
        ("API", "payments-api-v1"),
    ]
    component = documents[0]
    assert component["apiVersion"] == V1
    assert component["spec"]["owner"] == "group:payments" and component["spec"]["system"] == "payments-platform"
    assert component["spec"]["dependsOn"] == ["component:card-vault", "component:fraud-scoring", "component:ledger"]
    assert component["metadata"]["annotations"]["runway.dev/tier"] == "1"
