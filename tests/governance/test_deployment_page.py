"""A deployment's page shows what each deploy policy said at its policy step, and links to the decision."""

import re

import pytest
from pytest_django.asserts import assertInHTML

from deployments import services as deployment_services
from deployments.models import Deployment, State
from governance.models import Decision
from tests.deployments.support import drive, release_make, scripted, target_make

pytestmark = pytest.mark.django_db


def deploy(world, environment, release) -> Deployment:  # type: ignore[no-untyped-def]
    return deployment_services.deployment_request(
        service=world.service, environment=environment, user=world.owner, release=release
    )


def section(page: str, heading: str) -> str:
    """The card whose heading has id `heading`."""
    found = re.search(rf'<section class="card" aria-labelledby="{heading}">.*?</section>', page, re.S)
    assert found, f"no section {heading}"
    return found.group(0)


def timeline_entry(page: str, step: str) -> str:
    found = re.search(rf'<li class="level-\w+">(?:(?!</li>).)*badge-dep-{step}".*?</li>', page, re.S)
    assert found, f"no timeline entry for {step}"
    return found.group(0)


def row(name: str, action: str, outcome: str, message: str) -> str:
    badges = {"deny": "badge-verdict-fail", "warn": "badge-verdict-inconclusive"}
    outcomes = {"held": "badge-verdict-pass", "failed": "badge-verdict-fail"}
    outcome_badge = (
        f'<span class="badge {outcomes[outcome]}">{outcome}</span>'
        if outcome in outcomes
        else '<span class="badge" title="Its match is false for this change">skipped</span>'
    )
    return (
        f'<tr><td><a href="/governance/policies/{name}/">{name}</a></td><td>v1</td>'
        f'<td><span class="badge {badges[action]}">{action}</span></td><td>{outcome_badge}</td><td>{message}</td></tr>'
    )


def test_the_deployment_page_lists_each_policy_verdict_and_links_to_the_decision(
    client, world, production, policy
) -> None:  # type: ignore[no-untyped-def]
    policy("needs-canary", "change.strategy == 'canary'", message="Use a canary in production.")
    policy("golden-path", "false", action="warn", message="payments-api is behind its golden path.")
    policy("staging-only", "true", match="change.environment.slug == 'staging'")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.SUCCEEDED
    decision = Decision.objects.get(deployment=deployment)

    client.force_login(world.outsider)  # anyone signed in reads a deployment and its decision
    page = client.get(deployment.get_absolute_url()).content.decode()

    card = section(page, "policy-heading")
    assertInHTML(f'<a href="{decision.get_absolute_url()}">Decision #{decision.pk}</a>', card)
    assertInHTML(row("needs-canary", "deny", "held", ""), card)
    assertInHTML(row("golden-path", "warn", "failed", "payments-api is behind its golden path."), card)
    assertInHTML(row("staging-only", "deny", "skipped", ""), card)
    # The policy step's timeline entry points at the decision that let it through.
    assert decision.get_absolute_url() in timeline_entry(page, "rolling_out")


def test_a_refused_deployment_shows_the_policy_that_refused_it(client, world, production, policy) -> None:  # type: ignore[no-untyped-def]
    policy("frozen", "false", message="Production is frozen.")
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(deploy(world, production, release_make(world.service)))
    assert deployment.state == State.CANCELLED
    decision = deployment.policy_decision

    client.force_login(world.owner)
    page = client.get(deployment.get_absolute_url()).content.decode()
    card = section(page, "policy-heading")
    assert '<span class="danger">Denied</span> at the policy step' in card
    assertInHTML(row("frozen", "deny", "failed", "Production is frozen."), card)
    assert decision.get_absolute_url() in timeline_entry(page, "cancelled")
    assert 'class="stopped"' not in page  # refused before its plan began: no plan step is marked as stopped


def test_a_deployment_before_its_policy_step_has_no_decision_card(client, world, production) -> None:  # type: ignore[no-untyped-def]
    target_make(world.service, production, runtime="scripted", canary_steps=[50])
    deployment = deploy(world, production, release_make(world.service))
    client.force_login(world.owner)
    page = client.get(deployment.get_absolute_url()).content.decode()
    assert 'id="policy-heading"' not in page
