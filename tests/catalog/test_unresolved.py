"""Relations to entities not (yet) in the catalog: the entity imports, the relation waits as unresolved (a warning in
the report, a note on the service page) and is made when its target arrives, in a later import or later in the same
one. An owner that does not exist is still refused."""

import io
import zipfile

import pytest
import yaml
from django.urls import reverse

from audit.models import AuditEvent
from catalog import sync
from catalog.models import Api, Dependency, EntitySource, Resource, Service, UnresolvedRelation
from tests.catalog.test_sync import (
    assert_base_imported,
    assert_not_imported,
    base_tree,
    component,
    document,
    import_tree,
    only_problem,
    tree_files,
    write_documents,
)

pytestmark = [pytest.mark.django_db]

DANGLING = {
    "dependsOn": ["component:ghost", "resource:ghost-db", "component:api-svc"],
    "providesApis": ["api:ghost-api"],
    "consumesApis": ["api:api-v1", "api:ghost-feed"],
    "system": "ghost-sys",
}


def dangling_tree(root):  # type: ignore[no-untyped-def]
    base_tree(root)
    write_documents(
        root,
        "lonely/catalog-info.yaml",
        component("lonely", metadata={"annotations": {"runway.dev/dependency-kinds": "ghost=build"}}, **DANGLING),
        document("API", "lonely-api", {"type": "openapi", "owner": "group:alpha", "system": "ghost-sys"}),
        document("Resource", "lonely-db", {"type": "database", "owner": "group:alpha", "system": "ghost-sys"}),
    )
    return root


def ghosts_tree(root):  # type: ignore[no-untyped-def]
    write_documents(
        root,
        "ghosts.yaml",
        document("System", "ghost-sys", {"owner": "group:alpha"}),
        component("ghost"),
        document("Resource", "ghost-db", {"type": "database", "owner": "group:alpha"}),
        document("API", "ghost-api", {"type": "openapi", "owner": "group:alpha"}),
        document("API", "ghost-feed", {"type": "asyncapi", "owner": "group:alpha"}),
    )
    return root


def pending() -> set[tuple[str, str, str]]:
    return {
        (u.entity.name, u.relation, u.target_ref)
        for u in UnresolvedRelation.objects.select_related("entity").order_by("pk")
    }


EXPECTED = {
    ("lonely", "dependsOn", "component:ghost"),
    ("lonely", "dependsOn", "resource:ghost-db"),
    ("lonely", "providesApis", "api:ghost-api"),
    ("lonely", "consumesApis", "api:ghost-feed"),
    ("lonely", "system", "system:ghost-sys"),
    ("lonely-api", "system", "system:ghost-sys"),
    ("lonely-db", "system", "system:ghost-sys"),
}


def test_relations_to_missing_entities_are_kept_unresolved_and_the_entity_imports(tmp_path):
    report = import_tree(dangling_tree(tmp_path))

    assert report.errors == []
    lonely = Service.objects.get(slug="lonely")
    assert lonely.system is None
    assert list(lonely.dependencies.values_list("target__slug", flat=True)) == ["api-svc"]
    assert list(lonely.consumed_apis.values_list("slug", flat=True)) == ["api-v1"]
    assert not lonely.provided_apis.exists() and not lonely.resources.exists()
    assert pending() == EXPECTED
    warnings = {(w.entity, w.field, w.message) for w in report.warnings}
    assert (
        "component:lonely",
        "spec.dependsOn",
        "component:ghost is not in the catalog yet; the relation is kept and made when it arrives.",
    ) in warnings
    assert len(report.warnings) == len(EXPECTED)
    assert all(w.file == "lonely/catalog-info.yaml" for w in report.warnings)
    assert report.as_dict()["warnings"][0]["file"] == "lonely/catalog-info.yaml"


def test_a_later_import_brings_the_targets_and_the_relations_are_made(tmp_path, django_assert_max_num_queries):
    import_tree(dangling_tree(tmp_path / "a"), source="a")

    report = import_tree(ghosts_tree(tmp_path / "b"), source="b")

    assert report.errors == [] and report.warnings == []
    lonely = Service.objects.get(slug="lonely")
    assert lonely.system.slug == "ghost-sys"
    assert set(lonely.dependencies.values_list("target__slug", "kind")) == {("api-svc", "runtime"), ("ghost", "build")}
    assert list(lonely.resources.values_list("slug", flat=True)) == ["ghost-db"]
    assert list(lonely.provided_apis.values_list("slug", flat=True)) == ["ghost-api"]
    assert set(lonely.consumed_apis.values_list("slug", flat=True)) == {"api-v1", "ghost-feed"}
    assert Api.objects.get(slug="lonely-api").system.slug == "ghost-sys"
    assert Resource.objects.get(slug="lonely-db").system.slug == "ghost-sys"
    assert pending() == set()
    event = AuditEvent.objects.get(action="component.relations_resolved", service_id=lonely.pk)
    assert "dependsOn component:ghost" in event.after["relations"] and event.after["source"] == "b"
    # The first source, unchanged, writes nothing and has nothing left to warn about.
    with django_assert_max_num_queries(21):  # 21: with the query for services needing a new document
        again = import_tree(tmp_path / "a", source="a")
    assert again.warnings == [] and again.errors == [] and sum(again.updated.values()) == 0


def test_an_unchanged_file_still_reports_its_unresolved_relations(tmp_path):
    import_tree(dangling_tree(tmp_path))

    report = import_tree(tmp_path)

    assert report.unchanged > 0 and sum(report.updated.values()) == 0
    assert len(report.warnings) == len(EXPECTED)


def test_the_target_arriving_in_the_same_source_resolves_a_relation_of_an_unchanged_file(tmp_path):
    import_tree(dangling_tree(tmp_path))
    ghosts_tree(tmp_path)

    report = import_tree(tmp_path)

    assert report.errors == [] and report.warnings == []
    assert Service.objects.get(slug="lonely").system.slug == "ghost-sys"
    assert pending() == set()


def test_a_relation_to_a_component_with_errors_waits_instead_of_refusing_its_dependents(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "broken/catalog-info.yaml", component("broken", owner="group:nobody"))
    write_documents(tmp_path, "leaning/catalog-info.yaml", component("leaning", dependsOn=["component:broken"]))
    write_documents(tmp_path, "top/catalog-info.yaml", component("top", dependsOn=["leaning"]))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.entity, problem.field) == ("component:broken", "spec.owner")
    assert_not_imported("broken")
    assert list(Service.objects.get(slug="top").dependencies.values_list("target__slug", flat=True)) == ["leaning"]
    assert pending() == {("leaning", "dependsOn", "component:broken")}
    assert_base_imported()


def test_an_unknown_owner_is_still_refused(tmp_path):
    base_tree(tmp_path)
    write_documents(tmp_path, "x/catalog-info.yaml", component("x", owner="group:nobody", dependsOn=["ghost"]))

    report = import_tree(tmp_path)

    assert only_problem(report).field == "spec.owner"
    assert_not_imported("x")
    assert not UnresolvedRelation.objects.exists()


def test_a_changed_descriptor_replaces_its_unresolved_relations(tmp_path):
    import_tree(dangling_tree(tmp_path))
    write_documents(tmp_path, "lonely/catalog-info.yaml", component("lonely", dependsOn=["component:other-ghost"]))

    import_tree(tmp_path)

    # The API and resource left the file: flagged as missing, they wait for nothing.
    assert pending() == {("lonely", "dependsOn", "component:other-ghost")}
    assert EntitySource.objects.get(name="lonely-api").missing_since is not None


def test_the_service_page_lists_its_unresolved_relations(client, world, tmp_path):
    import_tree(dangling_tree(tmp_path))
    client.force_login(world.outsider)

    page = client.get(reverse("catalog:service-detail", kwargs={"slug": "lonely"})).content.decode()

    assert "Waiting for" in page
    for target in ("component:ghost", "resource:ghost-db", "api:ghost-api", "api:ghost-feed", "system:ghost-sys"):
        assert target in page
    other = client.get(reverse("catalog:service-detail", kwargs={"slug": "web"})).content.decode()
    assert "Waiting for" not in other


def test_an_uploaded_archive_reports_unresolved_relations_as_warnings(client, world, tmp_path, settings):
    settings.VAR_DIR = tmp_path / "var"
    from catalog import imports, tasks

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in tree_files(dangling_tree(tmp_path / "tree")).items():
            archive.writestr(name, text)
    run = imports.import_request(
        data=buffer.getvalue(), filename="catalog.zip", source_name="up", requested_by=world.staff
    )

    tasks.run_import(run.pk)

    run.refresh_from_db()
    assert run.report["errors"] == [] and len(run.report["warnings"]) == len(EXPECTED)
    client.force_login(world.staff)
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Unresolved relations" in page and "component:ghost is not in the catalog yet" in page


def test_a_dependency_kind_is_kept_while_it_waits(tmp_path):
    import_tree(dangling_tree(tmp_path))
    assert UnresolvedRelation.objects.get(target_name="ghost", target_kind="component").dependency_kind == "build"
    assert sync.Report(source="x").as_dict()["warnings"] == []
    assert not Dependency.objects.filter(source__slug="lonely", target__slug="ghost").exists()


def test_the_export_keeps_the_relations_still_waiting_so_it_imports_back_the_same(tmp_path):
    from catalog.export import catalog_export

    import_tree(dangling_tree(tmp_path))

    files = catalog_export(services=Service.objects.filter(slug="lonely"))

    documents = {d["metadata"]["name"]: d for d in yaml.safe_load_all(files["lonely/catalog-info.yaml"])}
    spec = documents["lonely"]["spec"]
    assert spec["system"] == "system:ghost-sys"
    assert spec["dependsOn"] == ["component:api-svc", "component:ghost", "resource:ghost-db"]
    assert spec["providesApis"] == ["api:ghost-api"]
    assert spec["consumesApis"] == ["api:api-v1", "api:ghost-feed"]
    assert documents["lonely"]["metadata"]["annotations"]["runway.dev/dependency-kinds"] == "ghost=build"
