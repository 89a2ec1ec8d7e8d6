"""Golden paths (golden_paths/<name>/): the wizard's description of each, and what copier renders from it.

Each path is rendered the way Runway's scaffolder does (copier, unsafe=False, answers passed as data), then the
generated repository is checked with Runway's own descriptor, runbook and ADR parsers, and its own test suite is
run in a clean environment. No database needed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from catalog.descriptors import document_parse
from techdocs.files import adr_parse, runbook_parse

pytestmark = pytest.mark.smoke

GOLDEN_PATHS = Path(__file__).resolve().parents[2] / "golden_paths"
PATHS = sorted(path.name for path in GOLDEN_PATHS.iterdir() if path.is_dir() and not path.name.startswith((".", "_")))

RUNWAY_ANSWERS = ("owner", "system", "golden_path", "golden_path_version", "author", "today", "runway_url")
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
COPIER_TYPES = {"string": "str", "integer": "int", "boolean": "bool"}
TEMPLATE_KEYS = {"name", "title", "description", "owner", "version", "tags", "parameters", "steps"}
REQUIRED_FILES = (
    "README.md",
    "catalog-info.yaml",
    "runway.yaml",
    "requirements.txt",
    ".github/workflows/ci.yml",
    ".copier-answers.yml",
    "docs/runbook.md",
    "docs/adr/0001-record-architecture-decisions.md",
)
RUNBOOK_SECTIONS = ("What it does", "Alerts", "Dashboards", "First checks", "How to deploy and roll back", "Escalation")
# Copier features that run code or load extensions: refused with unsafe=False, so a golden path must not use them.
UNSAFE_KEYS = {"_tasks", "_migrations", "_jinja_extensions", "_external_data"}
# Text answers Runway passes through as typed by a user: valid for the schema, awkward for YAML and Python.
SAMPLES = {
    "name": "orders-api",
    "description": "Takes orders from the shop: checks stock # and hands them to fulfilment.",
    "greeting": 'Bonjour "à tous" 👋',
}


def template_yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load((GOLDEN_PATHS / path / "template.yaml").read_text())


def copier_yml(path: str) -> dict[str, Any]:
    return yaml.safe_load((GOLDEN_PATHS / path / "copier.yml").read_text())


def answers(path: str, *, variant: int, **overrides: Any) -> dict[str, Any]:
    """Valid answers: variant 0 takes the defaults; variant 1 the other enum value, the other boolean, the limits."""
    meta = template_yaml(path)
    data: dict[str, Any] = {}
    for key, prop in meta["parameters"]["properties"].items():
        if prop["type"] == "boolean":
            data[key] = bool(prop.get("default", False)) ^ (variant == 1)
        elif "enum" in prop:
            data[key] = prop["enum"][-1] if variant == 1 else prop.get("default", prop["enum"][0])
        elif prop["type"] == "integer":
            data[key] = prop["minimum"] if variant == 1 else prop.get("default", prop["minimum"])
        elif variant == 0 and "default" in prop:
            data[key] = prop["default"]
        else:
            data[key] = SAMPLES.get(key, "x" * prop.get("minLength", 1))
    data |= {
        "owner": "payments",
        "system": "" if variant == 0 else "payments-platform",
        "golden_path": meta["name"],
        "golden_path_version": meta["version"],
        "author": "dana",
        "today": "2026-11-26",
        "runway_url": "https://runway.example.com",
    }
    return data | overrides


def render(path: str, out: Path, data: dict[str, Any]) -> Path:
    # settings=Settings(): ignore any copier settings file of the user running the tests (defaults, trust).
    copier.run_copy(
        str(GOLDEN_PATHS / path),
        str(out),
        data=data,
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref=None,
        settings=copier.Settings(),
    )
    return out


def run_generated_tests(out: Path, home: Path) -> None:
    """The generated project's own tests, as its CI would run them, in an environment without Runway's."""
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"generated tests failed in {out}:\n{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout


def ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.exists() else shutil.which("ruff")


def lint_generated(out: Path) -> None:
    """The generated CI runs `ruff check` and `ruff format --check`: a fresh repository must pass them."""
    binary = ruff()
    if binary is None:
        return
    for command in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([binary, *command], cwd=out, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"ruff {command[0]} in {out}:\n{result.stdout}\n{result.stderr}"


# --- the wizard's description ----------------------------------------------------------------------------------


def test_there_are_golden_paths():
    assert {"python-http-service", "python-worker", "stdlib-http-service"} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS)
def test_template_yaml_is_consistent(path):
    meta = template_yaml(path)

    assert set(meta) == TEMPLATE_KEYS
    assert meta["name"] == path and SLUG.match(path)
    assert SEMVER.match(str(meta["version"])), meta["version"]
    assert SLUG.match(meta["owner"])
    assert meta["title"].strip() and meta["description"].strip()
    assert meta["tags"] and all(SLUG.match(tag) for tag in meta["tags"])
    params = meta["parameters"]
    assert params["type"] == "object"
    properties = params["properties"]
    assert {"name", "description"} <= set(params["required"]) <= set(properties)
    assert not set(properties) & set(RUNWAY_ANSWERS), "Runway adds these answers itself"
    for key, prop in properties.items():
        assert prop["type"] in COPIER_TYPES, key
        assert prop.get("title"), key
        if "default" in prop:
            assert_valid(prop, prop["default"], key)

    fields = [field for step in meta["steps"] for field in step["fields"]]
    assert all(step["title"].strip() for step in meta["steps"])
    assert sorted(fields) == sorted(properties), "every property appears in exactly one step"


def assert_valid(prop: dict[str, Any], value: Any, key: str) -> None:
    """The JSON Schema subset the wizard uses, enough to check defaults and sample answers."""
    expected = {"string": str, "integer": int, "boolean": bool}[prop["type"]]
    assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), key
    if "enum" in prop:
        assert value in prop["enum"], key
    if isinstance(value, str):
        assert prop.get("minLength", 0) <= len(value) <= prop.get("maxLength", 10**6), key
        assert "pattern" not in prop or re.fullmatch(prop["pattern"], value), key
    if expected is int:
        assert prop.get("minimum", value) <= value <= prop.get("maximum", value), key


@pytest.mark.parametrize("path", PATHS)
def test_copier_yml_asks_every_parameter_and_runway_answer(path):
    meta, config = template_yaml(path), copier_yml(path)

    assert config["_subdirectory"] == "template"
    assert config["_templates_suffix"] == ".jinja"
    assert config["_answers_file"] == ".copier-answers.yml"
    assert not UNSAFE_KEYS & set(config), "Runway renders with unsafe=False"
    questions = {key: value for key, value in config.items() if not key.startswith("_")}
    properties = meta["parameters"]["properties"]
    assert set(questions) == set(properties) | set(RUNWAY_ANSWERS)
    for key, question in questions.items():
        assert "validator" not in question, f"{key}: Runway validates answers, not copier"
        expected = COPIER_TYPES[properties[key]["type"]] if key in properties else "str"
        assert question["type"] == expected, key
        if key in properties and "default" in properties[key]:
            assert question["default"] == properties[key]["default"], key
    assert questions["golden_path"]["default"] == meta["name"]
    assert questions["golden_path_version"]["default"] == str(meta["version"])
    assert (GOLDEN_PATHS / path / "template" / "{{ _copier_conf.answers_file }}.jinja").is_file()


@pytest.mark.parametrize("path", PATHS)
def test_answers_only_reach_templates_through_safe_filters(path):
    """Files that use answers end with .jinja; in YAML an answer is always quoted by a JSON filter; no template
    evaluates an answer again (include, import, eval-like tricks)."""
    names = set(template_yaml(path)["parameters"]["properties"]) | set(RUNWAY_ANSWERS)
    uses_answer = re.compile(r"\{\{-?\s*\(?\s*(" + "|".join(sorted(names)) + r")\b")
    for file in (GOLDEN_PATHS / path / "template").rglob("*"):
        if not file.is_file():
            continue
        text = file.read_text(encoding="utf-8")
        relative = file.relative_to(GOLDEN_PATHS / path)
        if not file.name.endswith(".jinja"):
            assert not uses_answer.search(text), f"{relative} uses answers: name it {file.name}.jinja"
            continue
        assert not re.search(r"\{%-?\s*(include|import|from|extends)\b", text), relative
        assert "|safe" not in text.replace(" ", ""), relative
        if re.search(r"\.ya?ml\.jinja$", file.name) and "_copier_answers" not in text:
            for expression in re.findall(r"\{\{(.*?)\}\}", text):
                assert re.search(r"\|\s*(to_json|tojson|int)\b", expression), f"{relative}: quote {{{{{expression}}}}}"


# --- rendering ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [0, 1], ids=["defaults-no-system", "alternatives-with-system"])
@pytest.mark.parametrize("path", PATHS)
def test_renders_a_complete_repository_whose_tests_pass(path, variant, tmp_path):
    data = answers(path, variant=variant)
    properties = template_yaml(path)["parameters"]["properties"]
    for key, prop in properties.items():
        assert_valid(prop, data[key], key)

    out = render(path, tmp_path / "out", data)

    for required in REQUIRED_FILES:
        assert (out / required).is_file(), required
    assert sorted(p.name for p in (out / "docs" / "adr").glob("*.md"))[1].startswith("0002-")
    assert list((out / "tests").glob("test_*.py"))
    assert not list(out.rglob("*.jinja")), "every template was rendered"
    check_catalog_info(out, data)
    check_runbook(out, data)
    check_adrs(out, data)
    check_runway_yaml(out, path, data)
    check_ci(out)
    recorded = yaml.safe_load((out / ".copier-answers.yml").read_text())
    assert recorded["_src_path"] == str(GOLDEN_PATHS / path)
    assert {key: recorded[key] for key in data} == data
    lint_generated(out)
    run_generated_tests(out, tmp_path / "home")


def check_catalog_info(out: Path, data: dict[str, Any]) -> None:
    documents = list(yaml.safe_load_all((out / "catalog-info.yaml").read_text()))
    component = documents[0]
    assert component["apiVersion"] == "backstage.io/v1alpha1"
    assert component["kind"] == "Component"
    metadata, spec = component["metadata"], component["spec"]
    assert metadata["name"] == data["name"]
    assert metadata["description"] == data["description"]
    assert metadata["tags"]
    assert metadata["annotations"]["runway.dev/language"] == "Python"
    assert metadata["annotations"]["runway.dev/golden-path"] == f"{data['golden_path']}@{data['golden_path_version']}"
    assert spec["type"] == "service"
    assert spec["lifecycle"] == "experimental"
    assert spec["owner"] == f"group:{data['owner']}"
    if data["system"]:
        assert spec["system"] == data["system"]
    else:
        assert "system" not in spec
    # Runway's own import reads every document without complaint.
    for index, document in enumerate(documents):
        entity = document_parse(document, path="catalog-info.yaml", index=index)
        assert entity.refs["owner"][0].name == data["owner"]
    if data.get("with_database"):
        assert [doc["kind"] for doc in documents] == ["Component", "Resource"]
        assert spec["dependsOn"] == [f"resource:{data['name']}-db"]


def check_runbook(out: Path, data: dict[str, Any]) -> None:
    text = (out / "docs" / "runbook.md").read_text()
    assert text.startswith("---\n")
    front_matter = yaml.safe_load(text.split("---\n")[1])
    assert set(front_matter) == {"title", "reviewed_at", "reviewed_by", "review_interval_days"}
    runbook = runbook_parse(filename="runbook.md", text=text)
    assert runbook.title == f"{data['name']} runbook"
    assert runbook.reviewed_by == data["author"]
    assert runbook.reviewed_at.date() == dt.date.fromisoformat(data["today"])
    assert runbook.review_interval_days == 90
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings == list(RUNBOOK_SECTIONS)
    assert "{{" not in text.replace(data["description"], "") and "{%" not in text.replace(data["description"], "")


def check_adrs(out: Path, data: dict[str, Any]) -> None:
    files = sorted((out / "docs" / "adr").glob("*.md"))
    assert len(files) >= 2
    for number, file in enumerate(files, start=1):
        text = file.read_text()
        assert "## Status" in text and "## Context" in text and "## Decision" in text and "## Consequences" in text
        assert f"Date: {data['today']}" in text
        adr = adr_parse(filename=file.name, text=text)
        assert (adr.number, adr.status, adr.date) == (number, "accepted", dt.date.fromisoformat(data["today"]))
        assert adr.deciders == data["author"]
        assert text.startswith(f"# {number}. {adr.title}\n")
    assert files[0].read_text().startswith("# 1. Record architecture decisions\n")


def check_runway_yaml(out: Path, path: str, data: dict[str, Any]) -> None:
    manifest = yaml.safe_load((out / "runway.yaml").read_text())
    assert set(manifest) == {"build", "start", "port_env", "health", "metrics"}
    assert isinstance(manifest["build"], str)
    assert manifest["start"].startswith("python -m ")
    assert (manifest["port_env"], manifest["health"], manifest["metrics"]) == ("PORT", "/healthz", "/metrics")
    if path == "stdlib-http-service":  # nothing to build, unless feature flags bring the OpenFeature SDK
        build = "python -m pip install -r requirements.txt" if data["with_feature_flags"] else ""
        assert (manifest["build"], manifest["start"]) == (build, "python -m app")


def check_ci(out: Path) -> None:
    workflow = yaml.safe_load((out / ".github" / "workflows" / "ci.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "") for step in steps]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert any(action.startswith("actions/setup-python@") for action in uses)
    assert "pip install -r requirements.txt" in runs
    assert "pytest" in runs


# --- hostile answers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_name_pattern_refuses_template_code_and_paths(path):
    prop = template_yaml(path)["parameters"]["properties"]["name"]
    # fullmatch, as JSON Schema (ECMA-262) means it: with re.search, Python's `$` also matches before a final
    # newline, so "orders\n" would pass (jsonschema's `pattern` check has exactly that behaviour).
    pattern = re.compile(prop["pattern"])
    refused = ["{{ 7*7 }}", "{{7*7}}", "{% raw %}", "../../etc", "orders/api", "Orders-API", "orders_api", "ab"]
    for bad in [*refused, "x" * 41, "-orders", "orders-", "orders\n", "orders api"]:
        ok = pattern.fullmatch(bad) and prop["minLength"] <= len(bad) <= prop["maxLength"]
        assert not ok, bad
    for good in ("orders-api", "ledger", "payments-api-2", "a" * 40):
        assert pattern.fullmatch(good), good


@pytest.mark.parametrize("path", PATHS)
def test_template_code_in_answers_is_rendered_literally(path, tmp_path):
    """Copier renders each template once, with answers as plain values: `{{ 7*7 }}` in an answer stays text."""
    description = "{{ 7*7 }} {% raw %}"
    data = answers(path, variant=0, description=description)
    if "greeting" in data:
        data["greeting"] = "{{ 7*7 }} {% raw %}"

    out = render(path, tmp_path / "out", data)

    readme = (out / "README.md").read_text()
    catalog_text = (out / "catalog-info.yaml").read_text()
    assert description in readme
    assert "49" not in readme and "49" not in catalog_text
    assert yaml.safe_load_all(catalog_text).__next__()["metadata"]["description"] == description
    assert description in (out / "docs" / "runbook.md").read_text()
    if "greeting" in data:  # the one text answer that reaches Python code: it must still import and pass
        assert json.loads((out / "app" / "service.json").read_text())["greeting"] == data["greeting"]
        run_generated_tests(out, tmp_path / "home")


@pytest.mark.parametrize("path", PATHS)
def test_quotes_colons_hashes_and_emoji_survive_yaml(path, tmp_path):
    description = 'Takes "orders": fast \\ safe # not a comment, it\'s {{ ok }} 👋 – ünïcode'
    data = answers(path, variant=1, description=description)

    out = render(path, tmp_path / "out", data)

    catalog = next(yaml.safe_load_all((out / "catalog-info.yaml").read_text()))
    assert catalog["metadata"]["description"] == description
    assert yaml.safe_load((out / ".copier-answers.yml").read_text())["description"] == description
    assert description in (out / "README.md").read_text()


@pytest.mark.parametrize("name", ["orders-api\n", "orders\r-api", "orders\u2028api", "ord\x7fers"])
def test_line_breaks_and_controls_are_refused_in_single_line_answers(name):
    """jsonschema's `pattern` searches, so `$` would accept a trailing newline; the registry checks the whole value."""
    from scaffolder import registry

    path = registry.golden_path_get("stdlib-http-service")
    errors = path.validate({"name": name, "description": "A perfectly fine description."})
    assert list(errors) == ["name"]
