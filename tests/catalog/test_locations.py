"""`kind: Location` files: their targets are followed inside the imported tree (never out of it, remote URLs only
from allowed hosts), cycles are reported, and each target's problems are reported on that target."""

import http.server
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from catalog import sync
from catalog.models import EntitySource, Service
from teams.models import Team
from tests.catalog.test_sync import component, document, import_tree, only_problem, tree_files, write, write_documents

pytestmark = [pytest.mark.django_db]
V1 = "backstage.io/v1alpha1"


def location(name: str, *targets: str, **spec: object) -> dict:
    return document("Location", name, {"targets": list(targets), **spec})


def org(root: Path) -> None:
    write_documents(root, ".backstage/org.yaml", document("Group", "alpha", {"profile": {"displayName": "Alpha"}}))


def test_targets_in_hidden_folders_or_with_other_names_are_read(tmp_path):
    org(tmp_path)
    write(tmp_path, "svc/catalog-info.json", yaml.safe_dump(component("svc")))  # JSON is YAML, name is not *.yaml
    write_documents(tmp_path, "catalog-info.yaml", location("root", "./.backstage/org.yaml", "svc/catalog-info.json"))

    report = import_tree(tmp_path)

    assert report.errors == [] and report.warnings == []
    assert Service.objects.get(slug="svc").owner == Team.objects.get(slug="alpha")
    assert EntitySource.objects.get(name="alpha").path == ".backstage/org.yaml"
    assert not EntitySource.objects.filter(kind="Location").exists()


def test_targets_the_walk_reads_anyway_are_read_once(tmp_path):
    org(tmp_path)
    write_documents(tmp_path, "svc/catalog-info.yaml", component("svc"))
    write_documents(
        tmp_path,
        "catalog-info.yaml",
        location("root", "./.backstage/org.yaml", "./svc/catalog-info.yaml"),
        location("again", "svc/../svc/catalog-info.yaml"),
    )

    report = import_tree(tmp_path)

    assert report.errors == []
    assert Service.objects.filter(slug="svc").exists()


def test_a_single_target_and_a_nested_location_are_followed_relative_to_their_file(tmp_path):
    org(tmp_path)
    write_documents(tmp_path, ".catalog/teams/svc.yml.txt", component("svc"))
    write_documents(tmp_path, ".catalog/teams/all.yaml", location("teams", "svc.yml.txt"))
    write_documents(
        tmp_path,
        "catalog-info.yaml",
        document("Location", "root", {"target": "./.catalog/teams/all.yaml"}),
        location("org", ".backstage/org.yaml"),
    )

    report = import_tree(tmp_path)

    assert report.errors == []
    assert EntitySource.objects.get(name="svc").path == ".catalog/teams/svc.yml.txt"


def test_targets_leaving_the_tree_are_refused_one_by_one(tmp_path):
    tree = tmp_path / "tree"
    org(tree)
    write_documents(tmp_path, "outside.yaml", component("outside"))
    os.symlink(tmp_path / "outside.yaml", tree / "link.yaml.txt")
    write_documents(
        tree,
        "sub/catalog-info.yaml",
        location(
            "root", "../../outside.yaml", str(tmp_path / "outside.yaml"), "../link.yaml.txt", "../.backstage/org.yaml"
        ),
    )

    report = import_tree(tree)

    problems = {p.field: p for p in report.errors}
    assert set(problems) == {"spec.targets[0]", "spec.targets[1]", "spec.targets[2]"}, report.errors
    assert all(p.file == "sub/catalog-info.yaml" and p.entity == "location:root" for p in problems.values())
    assert "leads outside the imported folder" in problems["spec.targets[0]"].message
    assert "relative" in problems["spec.targets[1]"].message
    assert "leads outside the imported folder" in problems["spec.targets[2]"].message
    assert not Service.objects.filter(slug="outside").exists()
    assert Team.objects.filter(slug="alpha").exists()


def test_a_missing_target_is_a_problem_unless_optional_and_patterns_and_folders_are_refused(tmp_path):
    org(tmp_path)
    (tmp_path / "folder").mkdir()
    write_documents(
        tmp_path,
        "catalog-info.yaml",
        location("root", "./.backstage/org.yaml", "missing.yaml", "./**/catalog-info.yaml", "folder"),
        location("maybe", "perhaps.yaml", presence="optional"),
    )

    report = import_tree(tmp_path)

    problems = {p.field: p.message for p in report.errors if p.entity == "location:root"}
    assert set(problems) == {"spec.targets[1]", "spec.targets[2]", "spec.targets[3]"}, report.errors
    assert "does not exist" in problems["spec.targets[1]"]
    assert "patterns" in problems["spec.targets[2]"]
    assert "folder" in problems["spec.targets[3]"]
    (warning,) = report.warnings
    assert (warning.entity, warning.field) == ("location:maybe", "spec.targets[0]") and "optional" in warning.message
    assert len(report.errors) == 3


def test_a_cycle_of_locations_is_reported_and_everything_imports_once(tmp_path):
    org(tmp_path)
    write_documents(tmp_path, ".a/a.yaml", location("a", "../.b/b.yaml"), component("one"))
    write_documents(tmp_path, ".b/b.yaml", location("b", "../.a/a.yaml"), component("two"))
    write_documents(tmp_path, "catalog-info.yaml", location("root", ".a/a.yaml", ".backstage/org.yaml"))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert (problem.file, problem.entity, problem.field) == (".b/b.yaml", "location:b", "spec.targets[0]")
    assert "cycle" in problem.message and ".a/a.yaml" in problem.message
    assert set(Service.objects.values_list("slug", flat=True)) == {"one", "two"}


def test_a_location_pointing_at_itself_is_a_cycle(tmp_path):
    org(tmp_path)
    write_documents(tmp_path, "catalog-info.yaml", location("root", "./catalog-info.yaml", ".backstage/org.yaml"))

    report = import_tree(tmp_path)

    assert "cycle" in only_problem(report).message
    assert Team.objects.filter(slug="alpha").exists()


def test_an_unchanged_location_keeps_its_targets_entities(tmp_path):
    org(tmp_path)
    write_documents(tmp_path, ".hidden/svc.yaml", component("svc"))
    write_documents(tmp_path, "catalog-info.yaml", location("root", ".backstage/org.yaml", ".hidden/svc.yaml"))
    import_tree(tmp_path)

    report = import_tree(tmp_path)

    assert report.errors == [] and report.missing == []
    assert report.unchanged == 2


def test_a_location_in_an_uploaded_archive_is_followed(tmp_path):
    org(tmp_path / "tree")
    write_documents(tmp_path / "tree", ".hidden/svc.yaml", component("svc"))
    write_documents(tmp_path / "tree", "catalog-info.yaml", location("root", ".backstage/org.yaml", ".hidden/svc.yaml"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in tree_files(tmp_path / "tree").items():
            archive.writestr(f"catalog/{name}", text)

    report = sync.catalog_import_archive(data=buffer.getvalue(), filename="c.zip", source_name="test")

    assert report.errors == []
    assert EntitySource.objects.get(name="svc").path == "catalog/.hidden/svc.yaml"


# --- remote targets -------------------------------------------------------------------------------------------------


@pytest.fixture
def remote() -> Iterator[dict[str, bytes]]:
    """A local HTTP server answering the paths in the returned dict."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    files["port"] = str(server.server_address[1]).encode()
    yield files
    server.shutdown()
    server.server_close()


def test_a_remote_target_is_refused_unless_its_host_is_allowed(tmp_path, settings, remote):
    settings.CATALOG_LOCATION_ALLOWED_HOSTS = []
    port = remote["port"].decode()
    remote["/org.yaml"] = yaml.safe_dump(document("Group", "alpha", {"profile": {"displayName": "Alpha"}})).encode()
    write_documents(tmp_path, "catalog-info.yaml", location("root", f"http://127.0.0.1:{port}/org.yaml"))

    report = import_tree(tmp_path)

    problem = only_problem(report)
    assert problem.field == "spec.targets[0]" and "CATALOG_LOCATION_ALLOWED_HOSTS" in problem.message
    assert not Team.objects.exists()


def test_a_remote_target_on_an_allowed_host_is_fetched_with_its_own_relative_targets(tmp_path, settings, remote):
    settings.CATALOG_LOCATION_ALLOWED_HOSTS = ["127.0.0.1"]
    base = f"http://127.0.0.1:{remote['port'].decode()}"
    remote["/org/all.yaml"] = yaml.safe_dump_all(
        [document("Group", "alpha", {"profile": {"displayName": "Alpha"}}), location("more", "svc.yaml", "big.yaml")]
    ).encode()
    remote["/org/svc.yaml"] = yaml.safe_dump(component("svc")).encode()
    remote["/org/big.yaml"] = b"#" * (sync.MAX_FILE_BYTES + 10)
    write_documents(tmp_path, "catalog-info.yaml", location("root", f"{base}/org/all.yaml", f"{base}/nothing.yaml"))

    report = import_tree(tmp_path)

    problems = {(p.file, p.field): p.message for p in report.errors}
    assert set(problems) == {(f"{base}/org/all.yaml", "spec.targets[1]"), ("catalog-info.yaml", "spec.targets[1]")}
    assert "larger than 1 MB" in problems[(f"{base}/org/all.yaml", "spec.targets[1]")]
    assert "404" in problems[("catalog-info.yaml", "spec.targets[1]")]
    assert EntitySource.objects.get(name="svc").path == f"{base}/org/svc.yaml"
    assert Service.objects.get(slug="svc").owner.slug == "alpha"
