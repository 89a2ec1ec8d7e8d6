"""Every database constraint an imported entity (or doc) could break is that entity's reported problem: the rest of
the import goes on, from a folder and from an uploaded archive alike."""

import io
import zipfile
from pathlib import Path

import pytest
import yaml

from catalog import sync
from catalog.models import EntitySource, Service
from catalog.sync import Report
from teams.models import Team
from techdocs.models import ADR, Runbook
from tests.catalog.test_sync import (
    BASE_ENTITIES,
    adr_text,
    assert_not_imported,
    base_tree,
    component,
    document,
    import_tree,
    only_problem,
    runbook_text,
    tree_files,
    write,
    write_documents,
)
from tests.factories import TeamFactory

pytestmark = [pytest.mark.django_db]


def assert_base_imported() -> None:
    """The base tree's entities all imported (other teams may exist beside its two)."""
    assert {"alpha", "beta"} <= set(Team.objects.values_list("slug", flat=True))
    assert {"web", "api-svc"} <= set(Service.objects.values_list("slug", flat=True))
    assert set(EntitySource.objects.filter(source__name="test").values_list("name", flat=True)) >= BASE_ENTITIES


def _zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in tree_files(root).items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture(params=["folder", "archive"])
def run_import(request, tmp_path):  # type: ignore[no-untyped-def]
    """Import a tree from its folder, or zipped and uploaded."""

    def run(root: Path) -> Report:
        if request.param == "folder":
            return import_tree(root)
        return sync.catalog_import_archive(data=_zip(root), filename="catalog.zip", source_name="test")

    return run


def test_a_group_named_like_an_existing_team_is_refused_and_the_rest_imports(tmp_path, run_import):
    TeamFactory(slug="payments-ui", name="Payments")  # made in the UI
    base_tree(tmp_path)
    write_documents(
        tmp_path, "pay/catalog-info.yaml", document("Group", "payments", {"profile": {"displayName": "Payments"}})
    )

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.document, problem.entity, problem.field) == (
        "pay/catalog-info.yaml",
        0,
        "group:payments",
        "spec.profile.displayName",
    )
    assert "Payments" in problem.message and "payments-ui" in problem.message
    assert_base_imported()
    assert_not_imported("payments", kind="Group")
    assert Team.objects.get(slug="payments-ui").name == "Payments"


def test_two_groups_with_one_display_name_keep_the_first_and_refuse_what_depends_on_the_second(tmp_path, run_import):
    base_tree(tmp_path)
    write_documents(
        tmp_path,
        "org/more.yaml",
        document("Group", "gamma", {"profile": {"displayName": "Platform"}}),
        document("Group", "delta", {"profile": {"displayName": "Platform"}}),
    )
    write_documents(tmp_path, "owned/catalog-info.yaml", component("owned", owner="group:delta"))

    report = run_import(tmp_path)

    problems = {p.entity: p for p in report.errors}
    assert set(problems) == {"group:delta", "component:owned"}, report.errors
    assert "group:gamma" in problems["group:delta"].message
    assert problems["component:owned"].field == "spec.owner"
    assert Team.objects.get(slug="gamma").name == "Platform"
    assert_not_imported("delta", kind="Group")
    assert_not_imported("owned")
    assert_base_imported()


def test_renaming_a_group_to_a_name_another_team_has_is_refused_and_the_team_keeps_its_name(tmp_path):
    base_tree(tmp_path)
    import_tree(tmp_path)
    write_documents(
        tmp_path,
        "org/groups.yaml",
        document("Group", "alpha", {"type": "team", "profile": {"displayName": "Alpha"}, "members": ["ann"]}),
        document("Group", "beta", {"type": "team", "profile": {"displayName": "Alpha"}, "parent": "group:alpha"}),
    )

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert problem.entity == "group:beta" and problem.field == "spec.profile.displayName"
    assert dict(Team.objects.values_list("slug", "name")) == {"alpha": "Alpha", "beta": "Beta"}


def test_one_name_in_two_namespaces_is_refused_since_runway_names_are_global(tmp_path, run_import):
    base_tree(tmp_path)
    other = component("web")
    other["metadata"]["namespace"] = "other"
    write_documents(tmp_path, "zz-other/catalog-info.yaml", other)

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.entity, problem.field) == (
        "zz-other/catalog-info.yaml",
        "component:other/web",
        "metadata.namespace",
    )
    assert "component:web" in problem.message
    assert_base_imported()
    assert not EntitySource.objects.filter(namespace="other").exists()


def test_a_name_already_imported_in_another_namespace_by_another_source_is_refused(tmp_path):
    base_tree(tmp_path / "a")
    import_tree(tmp_path / "a", source="a")
    other = component("web", owner="group:alpha", metadata={"title": "Hijacked"})
    other["metadata"]["namespace"] = "other"
    write_documents(tmp_path / "b", "catalog-info.yaml", other)

    report = import_tree(tmp_path / "b", source="b")

    problem = only_problem(report)
    assert problem.entity == "component:other/web" and "source 'a'" in problem.message
    assert Service.objects.get(slug="web").name == "Web"


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ({"metadata": {"title": "Nul\0here"}}, "metadata.title"),
        ({"metadata": {"annotations": {"x.dev/y": "a\0b"}}}, "metadata.annotations.x.dev/y"),
        ({"spec": {"definition": "openapi\0"}}, "spec.definition"),
    ],
)
def test_a_nul_character_in_a_descriptor_is_that_entitys_problem(tmp_path, run_import, where, field):
    base_tree(tmp_path)
    bad = document("API", "nul-api", {"type": "openapi", "owner": "group:alpha"})
    for section, values in where.items():
        bad[section].update(values)
    write(tmp_path, "nul/catalog-info.yaml", yaml.safe_dump(bad))  # safe_dump writes NUL as "\0"

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert (problem.entity, problem.field) == ("api:nul-api", field)
    assert "NUL" in problem.message
    assert_base_imported()


def test_a_nul_character_in_a_runbook_is_that_files_problem(tmp_path, run_import):
    base_tree(tmp_path)
    write(tmp_path, "api-svc/docs/runbook-nul.md", "# Nul\n\nbad \0 byte\n")

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert problem.file == "api-svc/docs/runbook-nul.md" and "NUL" in problem.message
    assert_base_imported()
    assert not Runbook.objects.filter(slug="nul").exists()


def test_an_email_longer_than_the_column_is_that_users_problem(tmp_path, run_import):
    base_tree(tmp_path)
    email = "a" * 60 + "@" + ".".join(["b" * 60] * 4) + ".com"  # valid in form, but over 254 characters
    write_documents(tmp_path, "people.yaml", document("User", "long-mail", {"profile": {"email": email}}))

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert (problem.entity, problem.field) == ("user:long-mail", "spec.profile.email")
    assert_base_imported()


def test_two_adrs_with_one_number_and_two_runbooks_with_one_name_are_reported_per_file(tmp_path, run_import):
    base_tree(tmp_path)
    write(tmp_path, "api-svc/docs/adr/0002-also-two.md", adr_text(2, "Also two", "Accepted"))
    write(tmp_path, "api-svc/docs/ops/runbook.md", runbook_text(title="Ops"))
    write(tmp_path, f"api-svc/docs/runbook-{'x' * 120}.md", runbook_text(title="Long"))

    report = run_import(tmp_path)

    problems = {p.file: p for p in report.errors}
    assert set(problems) == {
        "api-svc/docs/adr/0002-use-cockroachdb.md",
        "api-svc/docs/ops/runbook.md",
        f"api-svc/docs/runbook-{'x' * 120}.md",
    }, report.errors
    assert "0002-also-two.md" in problems["api-svc/docs/adr/0002-use-cockroachdb.md"].message
    assert "api-svc/docs/runbook.md" in problems["api-svc/docs/ops/runbook.md"].message
    assert "100" in problems[f"api-svc/docs/runbook-{'x' * 120}.md"].message
    assert_base_imported()
    assert ADR.objects.get(service__slug="api-svc", number=2).title == "Also two"
    assert Runbook.objects.get(service__slug="api-svc", slug="runbook").title == "On-call"


def test_a_path_longer_than_the_column_is_that_files_problem(tmp_path):
    base_tree(tmp_path)
    deep = "/".join(["d" * 200] * 5) + "/catalog-info.yaml"
    write_documents(tmp_path, deep, component("deep"))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert problem.file == deep and "1000" in problem.message
    assert_base_imported()
    assert_not_imported("deep")


def test_a_runbook_deep_in_the_tree_keeps_its_version_note_within_its_column(tmp_path, run_import):
    base_tree(tmp_path)
    folder = "/".join(["f" * 90] * 4)  # a runbook path of ~400 characters, inside the 1000 a path may have
    write_documents(tmp_path, f"{folder}/catalog-info.yaml", component("deep-docs"))
    write(tmp_path, f"{folder}/docs/runbook.md", runbook_text())

    report = run_import(tmp_path)

    assert report.errors == []
    runbook = Runbook.objects.get(service__slug="deep-docs")
    assert runbook.source_path.endswith(f"{folder}/docs/runbook.md")
    assert runbook.versions.get().note.startswith("imported from ")


@pytest.mark.parametrize(
    ("reference", "field"),
    [("component:" + "g" * 120, "spec.dependsOn"), ("component:" + "n" * 70 + "/ghost", "spec.dependsOn")],
)
def test_a_reference_longer_than_a_name_can_be_is_that_entitys_problem(tmp_path, run_import, reference, field):
    base_tree(tmp_path)
    write_documents(tmp_path, "long/catalog-info.yaml", component("long-ref", dependsOn=[reference]))

    report = run_import(tmp_path)

    problem = only_problem(report)
    assert (problem.entity, problem.field) == ("component:long-ref", field)
    assert_not_imported("long-ref")


def test_groups_nested_in_a_loop_are_refused_and_the_rest_imports(tmp_path, run_import):
    base_tree(tmp_path)
    write_documents(
        tmp_path,
        "org/loop.yaml",
        document("Group", "ring-a", {"profile": {"displayName": "Ring A"}, "parent": "group:ring-b"}),
        document("Group", "ring-b", {"profile": {"displayName": "Ring B"}, "parent": "group:ring-a"}),
        document("Group", "selfish", {"profile": {"displayName": "Selfish"}, "parent": "group:selfish"}),
    )

    report = run_import(tmp_path)

    problems = {p.entity: p for p in report.errors}
    assert set(problems) == {"group:ring-a", "group:ring-b", "group:selfish"}, report.errors
    assert problems["group:ring-a"].message.startswith("group:ring-a → group:ring-b → group:ring-a: a team cannot")
    assert all(p.field == "spec.parent" for p in problems.values())
    assert not Team.objects.filter(slug__in=["ring-a", "ring-b", "selfish"]).exists()
    assert_base_imported()


def test_a_group_moved_under_its_own_sub_team_is_refused_and_keeps_its_place(tmp_path):
    base_tree(tmp_path)
    import_tree(tmp_path)  # beta is under alpha
    write_documents(
        tmp_path,
        "org/groups.yaml",
        document(
            "Group",
            "alpha",
            {"type": "team", "profile": {"displayName": "Alpha"}, "members": ["ann"], "parent": "group:beta"},
        ),
        document("Group", "beta", {"type": "team", "profile": {"displayName": "Beta"}, "parent": "group:alpha"}),
    )

    report = import_tree(tmp_path)

    assert {p.entity for p in report.errors} == {"group:alpha", "group:beta"}
    assert Team.objects.get(slug="beta").parent.slug == "alpha" and Team.objects.get(slug="alpha").parent is None
