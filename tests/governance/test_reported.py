"""Deploys reported through the deploy events API are judged by the deploy policies: recorded as compliant or not,
never refused, and the answer says which."""

import pytest
from rest_framework.test import APIClient

from accounts import services as account_services
from deployments.models import Deployment, Placement, State
from governance.models import Decision

pytestmark = pytest.mark.django_db
EVENTS = "/api/v1/deploy-events/"


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    _, secret = account_services.token_create(user=user, name="ci", lifetime_days=30)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


def report(api: APIClient, environment: str, **fields: str) -> dict:
    body = {
        "service": "payments-api",
        "environment": environment,
        "version": "2.0.0",
        "commit_sha": "c" * 40,
        "status": "succeeded",
        "started_at": "2026-11-27T09:00:00Z",
        "finished_at": "2026-11-27T09:04:00Z",
        **fields,
    }
    response = api.post(EVENTS, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def staging_first(policy):  # type: ignore[no-untyped-def]
    return policy(
        "staging-before-production",
        "'staging' in change.succeeded_in",
        match="change.environment.slug == 'production'",
        message_expression="'Release ' + change.version + ' has not succeeded in staging yet.'",
    )


def test_a_reported_deploy_that_breaks_a_policy_is_recorded_as_not_compliant(
    client, world, staging, production, staging_first
) -> None:  # type: ignore[no-untyped-def]
    answer = report(client_for(world.owner), "production")

    deployment = Deployment.objects.get(pk=answer["id"])
    assert deployment.state == State.EXTERNAL  # recorded, not refused
    assert Placement.objects.get(service=world.service, environment=production).release == deployment.release
    decision = Decision.objects.get(deployment=deployment)
    assert decision.verdict == "deny"
    assert answer["compliance"] == {
        "compliant": False,
        "decision": decision.pk,
        "url": decision.get_absolute_url(),
        "messages": ["Release 2.0.0 has not succeeded in staging yet."],
    }
    # Judged as of when the pipeline deployed, not when it reported.
    assert decision.facts["now"]["timestamp"] == "2026-11-27T09:00:00Z"
    assert decision.facts["change"]["requester"]["username"] == world.owner.username
    entry = deployment.events.get(data__decision=decision.pk)
    assert entry.level == "warning"
    assert entry.message == (
        "Not compliant with the deploy policies (recorded, not refused): "
        "Release 2.0.0 has not succeeded in staging yet."
    )
    # The decision's page says what it judged: a report, compliant or not, rather than a policy step.
    client.force_login(world.outsider)
    page = client.get(decision.get_absolute_url())
    assert page.status_code == 200, page.content
    text = page.content.decode()
    assert f"Decision #{decision.pk}: not compliant" in text and "The policy step of" not in text
    # So does the deployment's page, with the verdicts and the decision linked from the timeline.
    text = client.get(deployment.get_absolute_url()).content.decode()
    assert '<span class="danger">Not compliant</span>: judged when its CD system reported it' in text
    assert "at the policy step" not in text
    assert f'href="{decision.get_absolute_url()}">Decision #{decision.pk}</a></li>' in text


def test_a_release_reported_in_staging_first_is_compliant_in_production(
    world, staging, production, staging_first
) -> None:  # type: ignore[no-untyped-def]
    api = client_for(world.owner)
    assert report(api, "staging")["compliance"]["compliant"] is True  # the policy does not apply to staging
    answer = report(api, "production", started_at="2026-11-27T10:00:00Z", finished_at="2026-11-27T10:04:00Z")

    assert answer["compliance"]["compliant"] is True and answer["compliance"]["messages"] == []
    decision = Decision.objects.get(pk=answer["compliance"]["decision"])
    assert decision.facts["change"]["succeeded_in"] == {"staging": "2026-11-27T09:04:00Z"}
    entry = Deployment.objects.get(pk=answer["id"]).events.get(data__decision=decision.pk)
    assert entry.level == "info" and entry.message == "Compliant with the deploy policies."


def test_a_failed_reported_deploy_does_not_count_as_having_succeeded_in_staging(
    world, staging, production, staging_first
) -> None:  # type: ignore[no-untyped-def]
    api = client_for(world.owner)
    report(api, "staging", status="failed")
    answer = report(api, "production", started_at="2026-11-27T10:00:00Z", finished_at="2026-11-27T10:04:00Z")
    assert answer["compliance"]["compliant"] is False


def test_the_schema_documents_the_compliance_of_a_report(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    created = schema["paths"][EVENTS]["post"]["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][created.rsplit("/", 1)[1]]
    assert "compliance" in component["properties"] and "compliance" in component["required"]
    reference = component["properties"]["compliance"]["allOf"][0]["$ref"]
    compliance = schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert set(compliance["properties"]) == {"compliant", "decision", "url", "messages"}
    assert compliance["properties"]["decision"].get("nullable") is True


def test_a_report_the_policies_cannot_judge_is_kept_unjudged(world, production, staging_first, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from governance import facts

    def broken(**_: object) -> None:
        raise RuntimeError("the fact document could not be built")

    monkeypatch.setattr(facts, "facts_build_with", broken)  # a fault in governance must not lose the report
    answer = report(client_for(world.owner), "production")

    assert answer["compliance"] == {"compliant": None, "decision": None, "url": None, "messages": []}
    deployment = Deployment.objects.get(pk=answer["id"])
    assert deployment.state == State.EXTERNAL and not Decision.objects.exists()
    assert deployment.events.filter(
        level="warning", message="The deploy policies could not judge this report; it is recorded unjudged."
    ).exists()


def test_a_report_is_judged_with_the_strategy_it_names_or_its_deploy_target_uses(world, production, policy) -> None:  # type: ignore[no-untyped-def]
    """A reported deploy is not assumed to be rolling: policies on the strategy would mark every report of a canary as
    not compliant."""
    from tests.deployments.support import target_make

    policy("canary-in-production", "change.strategy != 'rolling'", message="Not rolling in production.")
    api = client_for(world.owner)
    assert report(api, "production")["compliance"]["compliant"] is False  # no target, no strategy named: rolling

    named = report(api, "production", version="2.0.1", commit_sha="d" * 40, strategy="canary")
    assert named["strategy"] == "canary" and named["compliance"]["compliant"] is True

    target_make(world.service, production, strategy="blue_green")
    from_target = report(api, "production", version="2.0.2", commit_sha="e" * 40)
    assert from_target["strategy"] == "blue_green" and from_target["compliance"]["compliant"] is True


def test_a_report_naming_an_unknown_strategy_is_refused(world, production) -> None:  # type: ignore[no-untyped-def]
    body = {"service": "payments-api", "environment": "production", "version": "1", "commit_sha": "a" * 40}
    response = client_for(world.owner).post(EVENTS, {**body, "status": "succeeded", "strategy": "yolo"}, format="json")
    assert response.status_code == 400 and "strategy" in response.json()
    assert not Deployment.objects.exists()
