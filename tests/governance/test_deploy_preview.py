"""The deploy form's live dry run: as the form changes, the owner sees what each policy will say, and nothing is
recorded until Deploy is pressed."""

import pytest

from deployments.models import Deployment, DeployTarget, Release, State
from governance.models import Decision
from tests.deployments.conftest import repo  # noqa: F401 (a real git repository for payments-api)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(world, staging, production, policy, repo):  # type: ignore[no-untyped-def]  # noqa: F811
    for environment in (staging, production):
        DeployTarget.objects.create(
            service=world.service, environment=environment, runtime="simulated", strategy="canary"
        )
    policy(
        "staging-first", "'staging' in change.succeeded_in", match="change.environment.protected",
        message_expression="'Release ' + change.version + ' has not succeeded in staging yet.'",
    )  # fmt: skip
    policy("no-rolling", "change.strategy != 'rolling'", action="warn", message="Rolling deploys are discouraged.")
    return repo


def preview(client, world, production, **form):  # type: ignore[no-untyped-def]
    return client.post(
        f"/governance/deploy-preview/{world.service.slug}/",
        {"environment": production.pk, "ref": "v1.0.0", "strategy": "", **form},
        HTTP_HX_REQUEST="true",
    )


def test_the_preview_says_what_each_policy_will_say_and_records_nothing(
    client, world, staging, production, ready
) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    text = preview(client, world, production).content.decode()
    assert "denied" in text and "Release v1.0.0 has not succeeded in staging yet." in text
    assert "v1.0.0 to Production (canary)" in text  # the target's strategy when the form leaves it to the environment
    assert not Decision.objects.exists() and not Release.objects.exists()  # a preview changes nothing

    release = Release.objects.create(service=world.service, version="v1.0.0", commit_sha=ready.first)
    Deployment.objects.create(
        release=release, service=world.service, environment=staging, strategy="canary", runtime="simulated",
        state=State.SUCCEEDED,
    )  # fmt: skip
    text = preview(client, world, production, strategy="rolling").content.decode()
    assert "allowed" in text and "with 1 warning" in text and "Rolling deploys are discouraged." in text
    assert not Decision.objects.exists()


def test_the_preview_explains_what_is_missing(client, world, production, ready) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    assert "Choose a commit or tag" in preview(client, world, production, ref="").content.decode()
    assert "No commit, tag or branch called v9.9.9" in preview(client, world, production, ref="v9.9.9").content.decode()
    assert "Choose an environment" in preview(client, world, production, environment="999999").content.decode()
    assert "not a tag, branch or commit name" in preview(client, world, production, ref="--x").content.decode()
    assert "Null characters are not allowed" in preview(client, world, production, ref="v1\x00").content.decode()


def test_the_deploy_form_asks_for_the_preview_as_it_changes(client, world, staging, production, ready) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    page = client.get(f"/deployments/new/{world.service.slug}/").content.decode()
    assert f'hx-post="/governance/deploy-preview/{world.service.slug}/"' in page
    assert 'hx-trigger="load, change from:#deploy-form' in page


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("outsider", 403), ("staff", 200), ("anonymous", 302)])
def test_permission_matrix_for_the_preview(client, world, production, ready, role, expected) -> None:  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))
    assert preview(client, world, production).status_code == expected
    assert client.get(f"/governance/deploy-preview/{world.service.slug}/").status_code in (302, 405)
