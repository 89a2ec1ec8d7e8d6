"""Catalog-as-code import: the demo tree, idempotency, change and missing detection, bad input, archives, commands."""

import io
import json
import shutil
import tarfile
import tempfile
import uuid
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from guardian.shortcuts import get_perms

from audit.models import AuditEvent
from catalog import sync
from catalog.models import Api, CatalogSource, Dependency, EntitySource, Resource, Service, System
from catalog.sync import Problem, Report
from deployments.models import Environment
from teams.models import Membership, Team
from techdocs.models import ADR, Runbook, RunbookVersion
from tests.factories import service_make

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]
User = get_user_model()
V1 = "backstage.io/v1alpha1"


# --- building trees -----------------------------------------------------------------------------------------------


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_documents(root: Path, rel: str, *documents: dict[str, Any]) -> Path:
    return write(root, rel, yaml.safe_dump_all(documents, sort_keys=False))


def document(kind: str, name: str, spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": V1, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec or {}}


def component(name: str, *, owner: str | None = "group:alpha", metadata: dict | None = None, **spec: Any) -> dict:
    spec = {"type": "service", "lifecycle": "production", **spec}
    if owner is not None:
        spec["owner"] = owner
    return document("Component", name, spec, **(metadata or {}))


def runbook_text(title: str = "On-call", body: str = "Restart it.", reviewed: str = "2026-11-01") -> str:
    return (
        f"---\ntitle: {title}\nreviewed_at: {reviewed}\nreviewed_by: ann\nreview_interval_days: 30\n---\n"
        f"# {title}\n\n{body}\n"
    )


def adr_text(number: int, title: str, status: str) -> str:
    return (
        f"# {number}. {title}\n\nDate: 2026-01-10\nDeciders: ann, bob\n\n## Status\n\n{status}\n\n## Context\n\nWhy.\n"
    )


def base_tree(root: Path) -> Path:
    """Two teams (beta under alpha), two people, a system, two services, an API, a resource, a runbook, two ADRs."""
    write_documents(
        root,
        "org/groups.yaml",
        document(
            "Group",
            "alpha",
            {"type": "team", "profile": {"displayName": "Alpha"}, "members": ["ann"]},
            annotations={"runway.dev/leads": "ann", "runway.dev/chat-channel": "#alpha"},
        ),
        document(
            "Group",
            "beta",
            {"type": "team", "profile": {"displayName": "Beta"}, "parent": "group:alpha"},
            annotations={"runway.dev/leads": "ann"},  # a lead who is not listed among the members
        ),
    )
    write_documents(
        root,
        "org/users.yaml",
        document("User", "ann", {"profile": {"displayName": "Ann Lee", "email": "ann@example.com"}}),
        document("User", "bob", {"profile": {"displayName": "Bob Ray"}, "memberOf": ["beta"]}),
    )
    write_documents(root, "systems.yaml", document("System", "shop", {"owner": "group:alpha"}, title="Shop"))
    write_documents(
        root,
        "web/catalog-info.yaml",
        component(
            "web",
            system="shop",
            dependsOn=["component:api-svc", "resource:db"],
            consumesApis=["api:api-v1"],
            metadata={
                "title": "Web",
                "description": "The shop front.",
                "tags": ["Python", "frontend"],
                "annotations": {"runway.dev/tier": "2", "runway.dev/dependency-kinds": "api-svc=data"},
            },
        ),
    )
    write_documents(
        root,
        "api-svc/catalog-info.yaml",
        component("api-svc", owner="group:beta", providesApis=["api:api-v1"], metadata={"description": "API."}),
        document("API", "api-v1", {"type": "openapi", "owner": "group:beta", "definition": "openapi: 3.0.3\n"}),
        document("Resource", "db", {"type": "database", "owner": "group:beta", "system": "shop"}),
    )
    write(root, "api-svc/docs/runbook.md", runbook_text())
    write(root, "api-svc/docs/adr/0001-use-postgresql.md", adr_text(1, "Use PostgreSQL", "Accepted"))
    write(
        root,
        "api-svc/docs/adr/0002-use-cockroachdb.md",
        adr_text(2, "Use CockroachDB", "Accepted\n\nSupersedes [1. Use PostgreSQL](0001-use-postgresql.md)"),
    )
    return root


def import_tree(root: Path, source: str = "test") -> Report:
    return sync.catalog_import(root=root, source_name=source)


def only_problem(report: Report) -> Problem:
    assert len(report.errors) == 1, report.errors
    return report.errors[0]


BASE_ENTITIES = {"alpha", "beta", "ann", "bob", "shop", "web", "api-svc", "api-v1", "db"}


def assert_base_imported() -> None:
    assert set(Team.objects.values_list("slug", flat=True)) == {"alpha", "beta"}
    assert set(Service.objects.values_list("slug", flat=True)) >= {"web", "api-svc"}
    assert Runbook.objects.filter(service__slug="api-svc").count() == 1
    assert set(EntitySource.objects.filter(source__name="test").values_list("name", flat=True)) >= BASE_ENTITIES


def assert_not_imported(name: str, kind: str = "Component") -> None:
    """Nothing half-written: no row, no source record, no audit event for the refused entity."""
    assert not Service.objects.filter(slug=name).exists()
    assert not Team.objects.filter(slug=name).exists()
    assert not EntitySource.objects.filter(kind=kind, name=name).exists()
    assert not AuditEvent.objects.filter(object_repr=name).exists()


def timestamps() -> dict[str, dict]:
    return {
        "services": dict(Service.objects.values_list("slug", "updated_at")),
        "teams": dict(Team.objects.values_list("slug", "updated_at")),
        "systems": dict(System.objects.values_list("slug", "updated_at")),
        "apis": dict(Api.objects.values_list("slug", "updated_at")),
        "resources": dict(Resource.objects.values_list("slug", "updated_at")),
        "runbooks": dict(Runbook.objects.values_list("pk", "updated_at")),
        "adrs": dict(ADR.objects.values_list("pk", "updated_at")),
        "sources": dict(EntitySource.objects.values_list("pk", "synced_at")),
    }


# --- 1. the demo organisation -------------------------------------------------------------------------------------


def test_demo_tree_imports_every_entity_with_relations_grants_and_audit():
    users_before = User.objects.count()
    report = import_tree(settings.SERVICES_DIR, "demo")

    assert report.errors == [] and report.missing == [] and report.unchanged == 0
    assert dict(report.created) == {
        "Group": 9,
        "User": 10,
        "System": 8,
        "Resource": 5,
        "API": 9,
        "Component": 43,
        "slo": 2,  # OpenSLO files next to two services' descriptors (docs/monitoring.md)
    }
    assert dict(report.updated) == {}
    assert (Team.objects.count(), System.objects.count(), Service.objects.count()) == (9, 8, 43)
    assert (Api.objects.count(), Resource.objects.count()) == (9, 5)
    assert User.objects.count() == users_before + 10
    assert (Runbook.objects.count(), ADR.objects.count(), RunbookVersion.objects.count()) == (41, 80, 41)
    assert not User.objects.get(username="demo").has_usable_password()

    assert Dependency.objects.count() == 61
    assert set(Dependency.objects.exclude(kind="runtime").values_list("source__slug", "target__slug", "kind")) == {
        ("ci-runners", "artifact-store", "build"),
        ("fraud-scoring", "ml-features", "data"),
        ("legacy-billing", "ledger", "data"),
        ("ml-features", "warehouse-loader", "data"),
        ("recommendations", "ml-features", "data"),
        ("reporting", "warehouse-loader", "data"),
        ("search", "product-api", "data"),
        ("warehouse-loader", "event-pipeline", "data"),
    }
    payments_api = Service.objects.get(slug="payments-api")
    assert (payments_api.name, payments_api.tier, payments_api.lifecycle) == ("Payments API", 1, "production")
    assert (payments_api.owner.slug, payments_api.system.slug, payments_api.language) == (
        "payments",
        "payments-platform",
        "Python",
    )
    assert payments_api.repository_url == "https://git.example.com/payments/payments-api"
    assert sorted(payments_api.tags.values_list("name", flat=True)) == ["api", "pci", "python"]
    assert set(payments_api.dependencies.values_list("target__slug", flat=True)) == {
        "card-vault",
        "fraud-scoring",
        "ledger",
    }
    assert list(payments_api.provided_apis.values_list("slug", flat=True)) == ["payments-api-v1"]
    assert set(payments_api.consumed_apis.values_list("slug", flat=True)) == {"card-vault-tokens-v1", "ledger-grpc"}
    assert list(Service.objects.get(slug="ledger").resources.values_list("slug", flat=True)) == ["ledger-db"]

    assert Membership.objects.count() == 14
    assert set(Membership.objects.filter(role="lead").values_list("team__slug", "user__username")) == {
        ("catalogue", "ana"),
        ("checkout", "lee"),
        ("data", "raj"),
        ("growth", "kim"),
        ("logistics", "eva"),
        ("payments", "demo"),
        ("payments", "sam"),
        ("platform", "admin"),
        ("sre", "tom"),
    }
    assert Membership.objects.get(team__slug="payments", user__username="sam").role == "lead"
    assert Membership.objects.get(team__slug="checkout", user__username="demo").role == "member"  # from memberOf
    assert Team.objects.get(slug="sre").parent.slug == "platform"

    superseded = set(
        ADR.objects.filter(status="superseded").values_list("service__slug", "number", "superseded_by__number")
    )
    assert superseded == {
        ("auth-gateway", 2, 4),
        ("event-pipeline", 2, 3),
        ("feature-flags", 2, 4),
        ("search", 2, 4),
        ("web-storefront", 2, 3),
        ("ledger", 3, 4),
    }
    assert ADR.objects.get(service__slug="ledger", number=4).status == "accepted"

    demo, raj = User.objects.get(username="demo"), User.objects.get(username="raj")  # fresh: guardian caches perms
    assert demo.groups.filter(name="team:payments").exists()
    assert demo.has_perm("catalog.change_service", payments_api)
    assert demo.has_perm("catalog.deploy_service", payments_api)
    assert demo.has_perm("catalog.change_system", System.objects.get(slug="payments-platform"))
    assert not raj.has_perm("catalog.change_service", payments_api)
    assert not raj.has_perm("catalog.change_system", System.objects.get(slug="payments-platform"))

    assert EntitySource.objects.count() == 84
    record = EntitySource.objects.get(kind="Component", name="payments-api")
    assert (record.source.name, record.path, record.target) == ("demo", "payments-api/catalog-info.yaml", payments_api)
    assert record.missing_since is None
    assert EntitySource.objects.get(kind="User", name="demo").target == demo
    kinds = ("group", "user", "system", "resource", "api", "component")
    actions = {f"{kind}.imported": AuditEvent.objects.filter(action=f"{kind}.imported").count() for kind in kinds}
    assert actions == {
        "group.imported": 9,
        "user.imported": 10,
        "system.imported": 8,
        "resource.imported": 5,
        "api.imported": 9,
        "component.imported": 43,
    }
    event = AuditEvent.objects.get(action="component.imported", object_id=str(payments_api.pk))
    assert event.service_id == payments_api.pk
    assert event.after == {"change": "created", "source": "demo", "path": "payments-api/catalog-info.yaml"}
    assert CatalogSource.objects.get(name="demo").last_report["created"]["Component"] == 43


def test_small_tree_maps_every_field(tmp_path):
    report = import_tree(base_tree(tmp_path))

    assert report.errors == []
    web = Service.objects.get(slug="web")
    assert (web.name, web.description, web.tier, web.system.slug, web.owner.slug) == (
        "Web",
        "The shop front.",
        2,
        "shop",
        "alpha",
    )
    assert sorted(web.tags.values_list("name", flat=True)) == ["frontend", "python"]
    assert list(web.dependencies.values_list("target__slug", "kind")) == [("api-svc", "data")]
    assert list(web.resources.values_list("slug", flat=True)) == ["db"]
    assert list(web.consumed_apis.values_list("slug", flat=True)) == ["api-v1"]
    assert web.annotations == {}
    assert Api.objects.get(slug="api-v1").providers.get().slug == "api-svc"
    assert Resource.objects.get(slug="db").system.slug == "shop"
    assert Team.objects.get(slug="beta").parent.slug == "alpha"
    assert Team.objects.get(slug="alpha").chat_channel == "#alpha"
    assert set(Membership.objects.values_list("team__slug", "user__username", "role")) == {
        ("alpha", "ann", "lead"),
        ("beta", "ann", "lead"),
        ("beta", "bob", "member"),
    }
    ann = User.objects.get(username="ann")
    assert (ann.first_name, ann.last_name, ann.email) == ("Ann", "Lee", "ann@example.com")
    runbook = Runbook.objects.get(service__slug="api-svc")
    assert (runbook.slug, runbook.title, runbook.version, runbook.review_interval_days) == (
        "runbook",
        "On-call",
        1,
        30,
    )
    assert (runbook.last_reviewed_at.date().isoformat(), runbook.last_reviewed_by) == ("2026-11-01", "ann")
    assert runbook.source_path == "api-svc/docs/runbook.md"
    first, second = ADR.objects.filter(service__slug="api-svc").order_by("number")
    assert (first.status, first.superseded_by) == ("superseded", second)  # from the newer ADR's "Supersedes"
    assert (second.status, second.deciders) == ("accepted", "ann, bob")


# --- 2. idempotency -----------------------------------------------------------------------------------------------


def test_second_import_of_the_same_tree_writes_nothing(django_assert_max_num_queries):
    import_tree(settings.SERVICES_DIR, "demo")
    before = timestamps()
    counts = (AuditEvent.objects.count(), RunbookVersion.objects.count(), Membership.objects.count())

    # Reads only, none of them per entity (one fewer on SQLite: no SET LOCAL), one of them for relations waiting for
    # their target, one for the SLOs the source owns, one for the services needing a new document (none).
    with django_assert_max_num_queries(20):
        report = import_tree(settings.SERVICES_DIR, "demo")

    assert report.errors == [] and report.missing == []
    assert (dict(report.created), dict(report.updated), report.unchanged) == ({}, {}, 84)
    assert timestamps() == before
    assert (AuditEvent.objects.count(), RunbookVersion.objects.count(), Membership.objects.count()) == counts


# --- 3. change detection ------------------------------------------------------------------------------------------


def test_an_edited_description_and_runbook_update_only_that_service(tmp_path):
    tree = tmp_path / "services"
    shutil.copytree(settings.SERVICES_DIR, tree)
    import_tree(tree, "demo")
    before = timestamps()
    versions, events = RunbookVersion.objects.count(), AuditEvent.objects.count()
    descriptor = tree / "payments-api/catalog-info.yaml"
    old = "Authorises and captures card payments for every order."
    descriptor.write_text(descriptor.read_text().replace(old, "Takes card payments."))
    runbook_file = tree / "payments-api/docs/runbook.md"
    runbook_file.write_text(runbook_file.read_text() + "\nCall the acquirer first.\n")

    report = import_tree(tree, "demo")

    assert report.errors == []
    # 83 entities, and payments-api's SLO, read again with its folder (its runbook changed) and found unchanged.
    assert (dict(report.created), dict(report.updated), report.unchanged) == ({}, {"Component": 1}, 84)
    payments_api = Service.objects.get(slug="payments-api")
    assert payments_api.description == "Takes card payments."
    after = timestamps()
    assert {slug for slug, at in after["services"].items() if at != before["services"][slug]} == {"payments-api"}
    for key in ("teams", "systems", "apis", "resources", "adrs"):
        assert after[key] == before[key], key
    runbook = Runbook.objects.get(service=payments_api, slug="runbook")
    assert runbook.version == 2 and runbook.body.endswith("Call the acquirer first.\n")
    assert {pk for pk, at in after["runbooks"].items() if at != before["runbooks"][pk]} == {runbook.pk}
    assert RunbookVersion.objects.count() == versions + 1
    assert runbook.versions.get(number=2).body == runbook.body
    assert Runbook.objects.get(service=payments_api, slug="deploy").version == 1
    assert AuditEvent.objects.count() == events + 1
    assert AuditEvent.objects.filter(action="component.imported", after__change="updated").get().service_id == (
        payments_api.pk
    )


def test_a_descriptor_change_does_not_mark_runbooks_without_a_review_date_as_reviewed(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "web/docs/runbook.md", "# Web runbook\n\nNo front matter, so never reviewed in the file.\n")
    import_tree(tmp_path)
    runbook = Runbook.objects.get(service__slug="web")
    long_ago = runbook.last_reviewed_at.replace(year=2020)
    Runbook.objects.filter(pk=runbook.pk).update(last_reviewed_at=long_ago, review_due_at=long_ago)
    descriptor = tmp_path / "web/catalog-info.yaml"
    descriptor.write_text(descriptor.read_text().replace("The shop front.", "The new shop front."))

    report = import_tree(tmp_path)

    assert report.errors == [] and dict(report.updated) == {"Component": 1}
    runbook.refresh_from_db()
    assert runbook.last_reviewed_at == long_ago and runbook.is_stale
    assert runbook.version == 1 and runbook.versions.count() == 1


def test_an_owner_change_moves_the_grants_to_the_new_team(tmp_path):
    base_tree(tmp_path)
    import_tree(tmp_path)
    descriptor = tmp_path / "web/catalog-info.yaml"
    descriptor.write_text(descriptor.read_text().replace("owner: group:alpha", "owner: group:beta"))

    report = import_tree(tmp_path)

    assert report.errors == [] and dict(report.updated) == {"Component": 1}
    web = Service.objects.get(slug="web")
    assert web.owner.slug == "beta"
    assert get_perms(Team.objects.get(slug="alpha").group, web) == []
    assert set(get_perms(Team.objects.get(slug="beta").group, web)) == {
        "change_service",
        "deploy_service",
        "decommission_service",
    }


# --- 4. missing from the source -----------------------------------------------------------------------------------


def test_an_entity_gone_from_its_source_is_flagged_not_deleted_and_unflagged_when_back(tmp_path):
    tree, stash = base_tree(tmp_path / "tree"), tmp_path / "stash"
    import_tree(tree)
    shutil.move(tree / "web", stash)

    report = import_tree(tree)

    assert report.errors == [] and report.missing == ["component:default/web"]
    assert (dict(report.created), dict(report.updated), report.unchanged) == ({}, {}, 8)
    record = EntitySource.objects.get(kind="Component", name="web")
    assert record.missing_since is not None
    assert Service.objects.filter(slug="web").exists()
    assert EntitySource.objects.filter(missing_since__isnull=False).count() == 1

    again = import_tree(tree)
    assert again.missing == [] and again.unchanged == 8  # still missing, not reported twice
    shutil.move(stash, tree / "web")

    back = import_tree(tree)

    assert back.errors == [] and back.missing == [] and dict(back.updated) == {"Component": 1}
    record.refresh_from_db()
    assert record.missing_since is None
    assert Service.objects.get(slug="web").dependencies.get().target.slug == "api-svc"


# --- 5. bad input -------------------------------------------------------------------------------------------------


def test_malformed_yaml_names_the_line_and_skips_that_file(tmp_path):
    base_tree(tmp_path)
    write(
        tmp_path,
        "broken/catalog-info.yaml",
        f"apiVersion: {V1}\nkind: Component\nmetadata:\n  name: broken: oops\nspec:\n  owner: alpha\n",
    )

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "broken/catalog-info.yaml",
        None,
        None,
        None,
    )
    assert "not valid YAML (line 4, column 15)" in problem.message
    assert "mapping values are not allowed" in problem.message
    assert_base_imported()
    assert_not_imported("broken")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"kind": "Template"}, "kind", "Unknown kind 'Template'"),
        ({"apiVersion": "backstage.io/v2"}, "apiVersion", "Unknown apiVersion 'backstage.io/v2'"),
        ({"spec": {"type": "service"}}, "spec.owner", "spec.owner is required."),
        ({"spec": {"owner": "alpha", "lifecycle": "bogus"}}, "spec.lifecycle", "Unknown lifecycle 'bogus'"),
        (
            {"metadata": {"name": "broken", "annotations": {"runway.dev/tier": "7"}}},
            "metadata.annotations.runway.dev/tier",
            "must be 1 (critical) to 4 (low).",
        ),
    ],
    ids=["unknown-kind", "unknown-api-version", "missing-owner", "bogus-lifecycle", "tier-7"],
)
def test_an_invalid_document_is_reported_with_its_field_and_not_imported(tmp_path, changes, field, message):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("good-one"), component("broken") | changes)

    report = import_tree(tmp_path)

    problem = only_problem(report)
    kind = changes.get("kind", "Component").lower()
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "broken/catalog-info.yaml",
        1,
        f"{kind}:broken",
        field,
    )
    assert message in problem.message
    assert Service.objects.filter(slug="good-one").exists()  # the valid document of the same file
    assert_base_imported()
    assert_not_imported("broken")
    assert_not_imported("broken", kind=changes.get("kind", "Component"))


def test_an_invalid_name_is_reported_and_not_imported(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("Bad Name!"))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.field) == ("broken/catalog-info.yaml", 0, "metadata.name")
    assert "lowercase letters, digits and hyphens" in problem.message
    assert_base_imported()
    assert not Service.objects.filter(name="Bad Name!").exists()
    assert not AuditEvent.objects.filter(object_repr="Bad Name!").exists()
    assert EntitySource.objects.count() == 9


@pytest.mark.parametrize("metadata", ["just-a-string", None, ["name", "broken"]])
def test_metadata_that_is_not_a_mapping_is_a_problem_not_a_crash(tmp_path, metadata):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", {"apiVersion": V1, "kind": "Component", "metadata": metadata})

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "broken/catalog-info.yaml",
        0,
        None,
        "metadata",
    )
    assert "metadata must be a mapping" in problem.message
    assert_base_imported()


def test_an_unknown_owner_is_reported_and_not_imported(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("broken", owner="group:nobody"))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "broken/catalog-info.yaml",
        0,
        "component:broken",
        "spec.owner",
    )
    assert problem.message == "group:nobody does not exist in the catalog or in this import."
    assert_base_imported()
    assert_not_imported("broken")


def test_a_dependency_on_a_component_that_does_not_exist_waits_unresolved(tmp_path):
    base_tree(tmp_path)
    write_documents(
        tmp_path, "leaning/catalog-info.yaml", component("leaning", dependsOn=["component:api-svc", "component:ghost"])
    )

    report = import_tree(tmp_path)

    assert report.errors == []
    (warning,) = report.warnings
    assert (warning.file, warning.document, warning.entity, warning.field) == (
        "leaning/catalog-info.yaml",
        0,
        "component:leaning",
        "spec.dependsOn",
    )
    assert (
        warning.message == "component:ghost is not in the catalog yet; the relation is kept and made when it arrives."
    )
    assert_base_imported()
    assert list(Dependency.objects.filter(source__slug="leaning").values_list("target__slug", flat=True)) == ["api-svc"]


def test_a_dependency_on_a_component_with_errors_waits_and_does_not_cascade(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("broken", lifecycle="bogus"))
    write_documents(tmp_path, "leaning/catalog-info.yaml", component("leaning", dependsOn=["component:broken"]))
    write_documents(tmp_path, "top/catalog-info.yaml", component("top", dependsOn=["leaning"]))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.entity, problem.field) == ("component:broken", "spec.lifecycle")
    assert [w.entity for w in report.warnings] == ["component:leaning"]
    assert_not_imported("broken")
    assert Service.objects.filter(slug__in=["leaning", "top"]).count() == 2
    assert Dependency.objects.filter(source__slug="top", target__slug="leaning").exists()


def test_a_descriptor_over_1_mb_is_refused(tmp_path):
    base_tree(tmp_path)
    text = yaml.safe_dump(component("huge")) + "# " + "x" * sync.MAX_FILE_BYTES + "\n"
    write(tmp_path, "huge/catalog-info.yaml", text)

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "huge/catalog-info.yaml",
        None,
        None,
        None,
    )
    assert "larger than 1 MB" in problem.message
    assert_base_imported()
    assert_not_imported("huge")


def test_links_leading_outside_the_tree_are_never_followed(tmp_path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    base_tree(tree)
    secret = component("exfiltrated-xyz", metadata={"description": "TOP-SECRET-CONTENT"})
    write_documents(outside, "catalog-info.yaml", secret)
    write(outside, "docs/runbook.md", "# TOP-SECRET-RUNBOOK\n")
    (tree / "linked.yaml").symlink_to(outside / "catalog-info.yaml")
    (tree / "linked-dir").symlink_to(outside, target_is_directory=True)
    (tree / "api-svc/docs/runbook-secret.md").symlink_to(outside / "docs/runbook.md")

    report = import_tree(tree)

    assert sorted((p.file, p.document, p.entity, p.field) for p in report.errors) == [
        ("api-svc/docs/runbook-secret.md", None, None, None),
        ("linked-dir", None, None, None),
        ("linked.yaml", None, None, None),
    ]
    messages = {p.file: p.message for p in report.errors}
    assert messages["linked-dir"] == "This folder is a link that leads outside the imported folder."
    assert messages["linked.yaml"] == "This file is a link that leads outside the imported folder."
    assert_base_imported()
    assert_not_imported("exfiltrated-xyz")
    assert not Service.objects.filter(description__contains="TOP-SECRET").exists()
    assert not Runbook.objects.filter(body__contains="TOP-SECRET").exists()
    assert not Runbook.objects.filter(slug="secret").exists()
    stored = json.dumps(CatalogSource.objects.get(name="test").last_report) + json.dumps(report.as_dict())
    assert "TOP-SECRET" not in stored and "exfiltrated" not in stored


def test_a_duplicate_entity_keeps_the_first_definition(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "twin/catalog-info.yaml", component("twin", metadata={"description": "first"}))
    write_documents(tmp_path, "zz-twin/catalog-info.yaml", component("twin", metadata={"description": "second"}))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "zz-twin/catalog-info.yaml",
        0,
        "component:twin",
        None,
    )
    assert problem.message == "component:twin is also defined in twin/catalog-info.yaml (document 0)."
    assert Service.objects.get(slug="twin").description == "first"
    assert EntitySource.objects.get(kind="Component", name="twin").path == "twin/catalog-info.yaml"
    assert AuditEvent.objects.filter(action="component.imported", object_repr="twin").count() == 1


def test_an_entity_owned_by_another_source_is_refused_and_left_unchanged(tmp_path):
    import_tree(base_tree(tmp_path / "a"), "a")
    events = AuditEvent.objects.count()
    web_before = Service.objects.values().get(slug="web")
    tree_b = tmp_path / "b"
    write_documents(tree_b, "web/catalog-info.yaml", component("web", metadata={"description": "Taken over."}))
    write_documents(tree_b, "new/catalog-info.yaml", component("newcomer"))

    report = import_tree(tree_b, "b")

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "web/catalog-info.yaml",
        0,
        "component:web",
        None,
    )
    assert "already defined by source 'a' (web/catalog-info.yaml)" in problem.message
    assert dict(report.created) == {"Component": 1} and report.missing == []
    assert Service.objects.values().get(slug="web") == web_before
    assert Service.objects.get(slug="web").tags.count() == 2
    record = EntitySource.objects.get(kind="Component", name="web")
    assert record.source.name == "a" and record.missing_since is None
    assert EntitySource.objects.get(kind="Component", name="newcomer").source.name == "b"
    assert AuditEvent.objects.count() == events + 1
    assert import_tree(tmp_path / "a", "a").unchanged == 9  # source a still owns it, unchanged


def test_broken_runbook_and_adr_are_reported_per_file_and_the_component_still_imports(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "api-svc/docs/runbook-deploy.md", "---\ntitle: [oops\n---\n# Deploy\n")
    write(tmp_path, "api-svc/docs/adr/0003-maybe.md", adr_text(3, "Maybe", "Perhaps"))

    report = import_tree(tmp_path)

    problems = {problem.file: problem for problem in report.errors}
    assert set(problems) == {"api-svc/docs/runbook-deploy.md", "api-svc/docs/adr/0003-maybe.md"}
    assert len(report.errors) == 2
    for problem in problems.values():
        assert (problem.document, problem.entity, problem.field) == (None, "component:api-svc", None)
    assert "Front matter is not valid YAML" in problems["api-svc/docs/runbook-deploy.md"].message
    assert "Unknown status 'perhaps'" in problems["api-svc/docs/adr/0003-maybe.md"].message
    assert_base_imported()
    assert list(Runbook.objects.filter(service__slug="api-svc").values_list("slug", flat=True)) == ["runbook"]
    assert list(ADR.objects.filter(service__slug="api-svc").values_list("number", flat=True)) == [1, 2]


def test_a_broken_runbook_is_reported_again_on_the_next_import(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "api-svc/docs/runbook-deploy.md", "---\ntitle: [oops\n---\n# Deploy\n")
    first = import_tree(tmp_path)

    second = import_tree(tmp_path)

    assert [p.file for p in first.errors] == ["api-svc/docs/runbook-deploy.md"]
    assert [p.file for p in second.errors] == ["api-svc/docs/runbook-deploy.md"]
    assert CatalogSource.objects.get(name="test").last_report["errors"][0]["file"] == "api-svc/docs/runbook-deploy.md"


def test_docs_in_a_folder_without_a_component_are_reported(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "orphan/docs/runbook.md", runbook_text(title="Orphan"))
    write_documents(tmp_path, "store/catalog-info.yaml", document("Resource", "store", {"owner": "group:alpha"}))
    write(tmp_path, "store/docs/adr/0001-buckets.md", adr_text(1, "Buckets", "Accepted"))

    report = import_tree(tmp_path)

    assert sorted((p.file, p.document, p.entity, p.field) for p in report.errors) == [
        ("orphan/docs/runbook.md", None, None, None),
        ("store/docs/adr/0001-buckets.md", None, None, None),
    ]
    assert all("No Component is described in this folder" in p.message for p in report.errors)
    assert Resource.objects.filter(slug="store").exists()
    assert not Runbook.objects.filter(title="Orphan").exists()
    assert not ADR.objects.filter(title="Buckets").exists()
    assert_base_imported()


# --- 6. archives --------------------------------------------------------------------------------------------------


def zip_bytes(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def tree_files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Archives unpack under tmp_path/work, so a path escaping it would land in tmp_path where we can see it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    return work


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_of_a_valid_tree_imports(tmp_path, private_tmp, kind):
    files = tree_files(base_tree(tmp_path / "tree"))
    if kind == "zip":
        data = zip_bytes({f"catalog/{name}": text for name, text in files.items()})
    else:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(tmp_path / "tree", arcname="catalog")
        data = buffer.getvalue()

    report = sync.catalog_import_archive(data=data, filename=f"catalog.{kind}", source_name="test")

    assert report.errors == [] and sum(report.created.values()) == 9
    assert_base_imported()
    assert EntitySource.objects.get(kind="Component", name="web").path == "catalog/web/catalog-info.yaml"
    assert CatalogSource.objects.get(name="test").location == f"catalog.{kind}"
    assert list(private_tmp.iterdir()) == []  # the unpacked copy is gone


def test_zip_entries_escaping_the_folder_are_refused_and_written_nowhere(tmp_path, private_tmp):
    files = tree_files(base_tree(tmp_path / "tree"))
    unique = uuid.uuid4().hex
    escape, absolute = f"evil-{unique}.yaml", f"/tmp/absolute-{unique}.yaml"
    evil = yaml.safe_dump(component("evil"))
    data = zip_bytes({**files, f"../{escape}": evil, f"docs/../../{escape}": evil, absolute: evil})

    report = sync.catalog_import_archive(data=data, filename="catalog.zip", source_name="test")

    assert sorted(p.file for p in report.errors) == sorted([f"../{escape}", f"docs/../../{escape}", absolute])
    assert all("points outside the archive's folder" in p.message for p in report.errors)
    assert_base_imported()
    assert_not_imported("evil")
    assert not Path(absolute).exists()
    assert not (tmp_path / escape).exists() and not (tmp_path.parent / escape).exists()
    assert not (Path(tempfile.gettempdir()) / escape).exists()
    assert [p for p in tmp_path.rglob("*") if p.name.startswith(("evil-", "absolute-"))] == []


def test_tar_links_are_skipped(tmp_path, private_tmp):
    base_tree(tmp_path / "tree")
    write_documents(tmp_path / "outside", "catalog-info.yaml", component("exfiltrated-xyz"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(tmp_path / "tree", arcname=".")
        link = tarfile.TarInfo("leak/catalog-info.yaml")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path / "outside/catalog-info.yaml")
        archive.addfile(link)
        hard = tarfile.TarInfo("hard/catalog-info.yaml")
        hard.type, hard.linkname = tarfile.LNKTYPE, "web/catalog-info.yaml"
        archive.addfile(hard)

    report = sync.catalog_import_archive(data=buffer.getvalue(), filename="catalog.tar", source_name="test")

    assert sorted(p.file for p in report.errors) == ["hard/catalog-info.yaml", "leak/catalog-info.yaml"]
    assert all(p.message == "Only regular files are read from archives; skipped." for p in report.errors)
    assert_base_imported()
    assert_not_imported("exfiltrated-xyz")


@pytest.mark.parametrize("filename", ["notes.txt", "catalog.zip", "catalog.tar.gz"])
def test_an_upload_that_is_not_an_archive_is_a_clear_value_error(private_tmp, filename):
    with pytest.raises(ValueError, match=r"Upload a \.zip, \.tar or \.tar\.gz archive"):
        sync.catalog_import_archive(data=b"just some text\n" * 100, filename=filename, source_name="test")
    assert not CatalogSource.objects.exists() and not EntitySource.objects.exists()


# --- 7. Markdown safety -------------------------------------------------------------------------------------------


class TagCollector(HTMLParser):
    """Every start tag of a page with its attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, dict(attrs)))


def test_imported_runbook_html_is_sanitised_on_its_page(tmp_path, client):
    base_tree(tmp_path)
    body = "# Dangerous\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n"
    write(tmp_path, "web/docs/runbook.md", body)
    import_tree(tmp_path)
    runbook = Runbook.objects.get(service__slug="web")
    assert "<script>alert(1)</script>" in runbook.body and "javascript:alert(1)" in runbook.body

    client.force_login(User.objects.create_user("viewer", password="x"))
    response = client.get(runbook.get_absolute_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "Dangerous" in html
    assert "<script>" not in html and "alert(1)</script>" not in html
    tags = TagCollector()
    tags.feed(html)
    assert [attrs.get("src") for tag, attrs in tags.seen if tag == "script"] == [  # the page's own scripts only
        "/static/vendor/htmx/htmx-2.0.11.min.js",
        "/static/js/runway.js",
    ]
    values = [value.lower() for _, attrs in tags.seen for value in attrs.values() if value]
    assert [value for value in values if "javascript:" in value.replace(" ", "")] == []


# --- 9. management commands ---------------------------------------------------------------------------------------


def test_catalog_sync_prints_problems_and_a_summary(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("broken", owner="group:nobody"))
    out = io.StringIO()

    call_command("catalog_sync", str(tmp_path), "--source", "cli", stdout=out)

    text = out.getvalue()
    assert f"Imported from {tmp_path}: created {{'Group': 2" in text
    assert "0 unchanged, 0 missing from the source" in text
    assert (
        "broken/catalog-info.yaml (document 0): component:broken spec.owner: "
        "group:nobody does not exist in the catalog or in this import." in text
    )
    assert "1 problem(s); the valid entities were imported." in text
    assert Service.objects.count() == 2
    assert CatalogSource.objects.get(name="cli").location == str(tmp_path)

    out = io.StringIO()
    call_command("catalog_sync", str(tmp_path), "--source", "cli", stdout=out)
    assert "created nothing, updated nothing, 9 unchanged" in out.getvalue()


def test_catalog_sync_refuses_a_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("catalog_sync", str(tmp_path / "nope"), stdout=io.StringIO())


def test_demo_load_imports_the_demo_with_passwords_admin_and_environments(client, settings, tmp_path):
    settings.GIT_ROOT = tmp_path / "git"  # the demo's stand-in repositories (see tests/deployments/test_demo.py)
    out = io.StringIO()
    call_command("demo_load", stdout=out, stderr=io.StringIO())

    assert "Demo organisation loaded from services/" in out.getvalue()
    assert "nightly-reports made from python-worker 1.0.0, an earlier release" in out.getvalue()
    assert Service.objects.count() == 44 and Team.objects.count() == 9  # 43 from services/, one scaffolded
    behind = Service.objects.get(slug="nightly-reports")
    assert (behind.owner.slug, behind.golden_path, behind.golden_path_version) == ("payments", "python-worker", "1.0.0")
    demo_users = User.objects.filter(username__in=EntitySource.objects.filter(kind="User").values("name"))
    assert demo_users.count() == 10
    assert all(user.check_password("runway-demo") for user in demo_users)
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert not User.objects.get(username="demo").is_staff
    assert list(Environment.objects.order_by("order").values_list("slug", "protected")) == [
        ("dev", False),
        ("staging", False),
        ("production", True),
    ]
    # Incidents: one declared for the rolled-back canary (its postmortem published, with action items), one opened
    # and mitigated through the Alertmanager webhook's path, each naming the deployment that caused it.
    from incidents.models import Incident, Postmortem

    incidents = {incident.source: incident for incident in Incident.objects.all()}
    assert set(incidents) == {"manual", "alertmanager"}
    assert incidents["manual"].deployment_links.get().deployment.state == "rolled_back"
    assert incidents["alertmanager"].status == "mitigated" and incidents["alertmanager"].deployment_links.exists()
    published = Postmortem.objects.get(state="published")
    assert published.incident == incidents["manual"] and published.actions.count() == 2
    assert client.login(username="demo", password="runway-demo")

    counts = (User.objects.count(), Environment.objects.count(), AuditEvent.objects.count(), Service.objects.count())
    out = io.StringIO()
    call_command("demo_load", stdout=out, stderr=io.StringIO())

    assert "created nothing, updated nothing, 84 unchanged" in out.getvalue()
    after = (User.objects.count(), Environment.objects.count(), AuditEvent.objects.count(), Service.objects.count())
    assert after == counts
    assert User.objects.get(username="demo").check_password("runway-demo")


def test_a_deeply_nested_descriptor_is_reported_and_the_rest_imports(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "deep/catalog-info.yaml", "apiVersion: " + "[" * 600 + "]" * 600 + "\n")  # 1.2 KB

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert problem.file == "deep/catalog-info.yaml"
    assert problem.message == (
        "This is not valid YAML (line 1, column 112): lists and mappings are nested more than 100 levels deep; "
        "flatten the document."
    )
    assert_base_imported()


def test_yaml_aliases_are_refused_before_anything_is_expanded(tmp_path):
    root = base_tree(tmp_path)
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    write(root, "bomb/catalog-info.yaml", "apiVersion: backstage.io/v1alpha1\nkind: Component\n" + laughs)
    report = import_tree(root)
    problem = only_problem(report)
    assert problem.file == "bomb/catalog-info.yaml" and "aliases" in problem.message
    assert_base_imported()


def test_other_markdown_in_docs_is_not_ours_and_is_ignored(tmp_path):
    root = base_tree(tmp_path)
    write(root, "api-svc/docs/index.md", "# TechDocs home\n")
    write(root, "api-svc/docs/adr/README.md", "# Our decisions\n")
    report = import_tree(root)
    assert report.errors == []
    assert Runbook.objects.filter(service__slug="api-svc").count() == 1


@pytest.mark.parametrize(
    ("before", "after"),
    [("production", "decommissioned"), ("production", "decommissioning"), ("decommissioning", "production")],
)
def test_an_import_cannot_retire_a_service_or_bring_one_back(tmp_path, before, after):
    tree = tmp_path / "services"
    shutil.copytree(settings.SERVICES_DIR, tree)
    import_tree(tree, "demo")
    Service.objects.filter(slug="payments-api").update(lifecycle=before)
    descriptor = tree / "payments-api/catalog-info.yaml"
    old = "Authorises and captures card payments for every order."
    text = descriptor.read_text().replace(old, "Takes card payments.")
    descriptor.write_text(text.replace("lifecycle: production", f"lifecycle: {after}", 1))
    other = tree / "accounts/catalog-info.yaml"
    other.write_text(other.read_text().replace("description: ", "description: Now with a longer story. ", 1))

    report = import_tree(tree, "demo")

    assert [(p.file, p.entity, p.field) for p in report.errors] == [
        ("payments-api/catalog-info.yaml", "component:payments-api", "spec.lifecycle")
    ]
    assert "goes through its decommission workflow" in report.errors[0].message
    payments_api = Service.objects.get(slug="payments-api")
    assert (payments_api.lifecycle, payments_api.description) == (before, old)  # nothing of it changed
    assert Service.objects.get(slug="accounts").description.startswith("Now with a longer story.")  # others did


def test_a_decommissioned_service_is_a_read_only_record_for_imports_too(tmp_path):
    tree = tmp_path / "services"
    shutil.copytree(settings.SERVICES_DIR, tree)
    import_tree(tree, "demo")
    Service.objects.filter(slug="payments-api").update(lifecycle="decommissioned")
    descriptor = tree / "payments-api/catalog-info.yaml"
    descriptor.write_text(descriptor.read_text().replace("card payments", "payments", 1))

    report = import_tree(tree, "demo")

    assert [p.entity for p in report.errors] == ["component:payments-api"]
    assert "read-only" in report.errors[0].message
    assert "card payments" in Service.objects.get(slug="payments-api").description


@pytest.mark.postgres_only  # SQLite's list counts exactly: it keeps no estimate to refresh
def test_an_import_that_grows_the_catalog_much_refreshes_its_statistics_and_a_small_one_does_not(tmp_path):
    """The list's counts past the exact limit are the planner's estimates: right after an import into an empty
    catalog they must already know the imported services, not wait for autovacuum."""

    def known() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'catalog_service'::regclass")
            return float(cursor.fetchone()[0])

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_service")  # whatever the tests before left: now an empty table, as analyzed
    assert known() == 0
    import_tree(base_tree(tmp_path))
    assert known() == Service.objects.count() == 2  # analyzed at once
    for _ in range(20):
        service_make()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_service")
    root = tmp_path / "one-more"
    write_documents(root, "x/catalog-info.yaml", component("extra", owner="group:alpha"))
    import_tree(root, "other")  # 1 added to a catalog of 22: not worth a sample
    assert Service.objects.filter(slug="extra").exists() and known() == 22
