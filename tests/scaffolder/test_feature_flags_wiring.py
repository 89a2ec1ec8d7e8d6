"""The golden paths' opt-in OpenFeature wiring: the wizard asks "Use feature flags from Runway (OpenFeature)?", and a
service made with it gets the OpenFeature SDK and its OFREP provider, pointed at this Runway, with the SDK key from
the environment; made without it, nothing of it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.urls import reverse

from tests.scaffolder.support import STDLIB
from tests.scaffolder.test_golden_paths import PATHS, answers, render
from tests.scaffolder.test_views import git_root  # noqa: F401 - the wizard's fixture

OPENFEATURE = ("openfeature-sdk==", "openfeature-provider-ofrep==")


def _requirements(out: Path) -> str:
    return (out / "requirements.txt").read_text()


@pytest.mark.parametrize("path", PATHS)
def test_without_the_answer_nothing_of_openfeature_is_made(path: str, tmp_path: Path) -> None:
    out = render(path, tmp_path / "out", answers(path, variant=0))  # the defaults: no feature flags
    assert not (out / "app" / "flags.py").exists() and not (out / "tests" / "test_flags.py").exists()
    assert not any(dependency in _requirements(out) for dependency in OPENFEATURE)
    assert "## Feature flags" not in (out / "README.md").read_text()
    assert yaml.safe_load((out / ".copier-answers.yml").read_text())["with_feature_flags"] is False


@pytest.mark.parametrize("path", PATHS)
def test_with_the_answer_the_service_evaluates_flags_at_runway(path: str, tmp_path: Path) -> None:
    data = answers(path, variant=0, with_feature_flags=True)
    out = render(path, tmp_path / "out", data)
    assert all(dependency in _requirements(out) for dependency in OPENFEATURE)
    flags = (out / "app" / "flags.py").read_text()
    assert 'RUNWAY_OFREP_URL = "https://runway.example.com"' in flags and "RUNWAY_FLAGS_SDK_KEY" in flags
    assert "pip install -r requirements.txt" in yaml.safe_load((out / "runway.yaml").read_text())["build"]
    if (out / "Dockerfile").exists():
        assert "pip install --no-cache-dir -r requirements.txt" in (out / "Dockerfile").read_text()
    readme = (out / "README.md").read_text()
    assert "## Feature flags" in readme and "https://runway.example.com" in readme
    # The generated project's own flag tests: no key → code defaults; a key → the OFREP request carries it.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django", "tests/test_flags.py"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr


@pytest.mark.django_db
def test_the_wizard_asks_and_the_preview_points_at_this_runway(client, world, git_root, settings) -> None:  # noqa: F811
    settings.PORTAL_URL = "https://runway.example.org"
    client.force_login(world.owner)
    step2 = reverse("scaffolder:step", args=[STDLIB, 2])
    step1 = reverse("scaffolder:step", args=[STDLIB, 1])
    client.post(step1, {"name": "ledger-api", "description": "Keeps the ledger of every payment we take."})
    assert "Use feature flags from Runway (OpenFeature)?" in client.get(step2).content.decode()
    client.post(step2, {"greeting": "Hello", "with_feature_flags": "on"})
    client.post(reverse("scaffolder:owner", args=[STDLIB]), {"owner": "payments"})
    preview = client.get(reverse("scaffolder:preview", args=[STDLIB])).content.decode()
    assert "app/flags.py" in preview and "https://runway.example.org" in preview
