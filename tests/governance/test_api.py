"""POST /api/v1/policy-checks/: a dry run of the deploy policies for a pipeline that deploys outside Runway."""

import pytest

from deployments.models import Deployment, State
from governance.models import Decision
from tests.deployments.support import release_make, target_make

pytestmark = pytest.mark.django_db

URL = "/api/v1/policy-checks/"


@pytest.fixture
def policies(policy):  # type: ignore[no-untyped-def]
    policy(
        "staging-first",
        "'staging' in change.succeeded_in",
        match="change.environment.protected",
        message_expression="change.version + ' has not succeeded in staging.'",
    )
    policy("canary-tier-1", "change.strategy != 'rolling'", match="service.tier == 1", message="Roll out slowly.")
    policy("docs", "service.runbooks > 0", action="warn", message="No runbook.")


def test_a_dry_run_says_what_each_policy_would_say_and_links_no_deployment(
    api_client, world, production, policies
) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    response = api_client.post(
        URL,
        {"service": "payments-api", "environment": "production", "version": "v2", "strategy": "rolling"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["allowed"] is False and body["verdict"] == "deny"
    results = {result["policy"]: (result["outcome"], result["message"]) for result in body["results"]}
    assert results == {
        "canary-tier-1": ("fail", "Roll out slowly."),
        "docs": ("fail", "No runbook."),
        "staging-first": ("fail", "v2 has not succeeded in staging."),
    }
    assert body["facts"]["change"]["requester"]["username"] == "olivia"
    decision = Decision.objects.get(pk=body["decision"])
    assert decision.deployment is None and decision.service_slug == "payments-api"
    assert not Deployment.objects.exists()


def test_the_release_commit_and_the_targets_strategy_are_found_when_not_given(
    api_client, world, staging, production, policies
) -> None:  # type: ignore[no-untyped-def]
    release = release_make(world.service, "v3")
    target_make(world.service, production, strategy="canary")
    Deployment.objects.create(
        release=release, service=world.service, environment=staging, strategy="rolling", runtime="simulated",
        state=State.SUCCEEDED,
    )  # fmt: skip
    api_client.force_authenticate(world.outsider)  # any signed-in user may ask
    response = api_client.post(URL, {"service": "payments-api", "environment": "production", "version": "v3"})
    body = response.json()
    assert response.status_code == 200 and body["allowed"] is True, body
    assert body["facts"]["change"]["commit"] == release.commit_sha and body["facts"]["change"]["strategy"] == "canary"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"service": "nope", "environment": "production", "version": "v1", "strategy": "canary"}, 404, None),
        ({"service": "payments-api", "environment": "mars", "version": "v1", "strategy": "canary"}, 400, "environment"),
        ({"service": "payments-api", "environment": "production", "version": "v1"}, 400, "strategy"),
        ({"service": "payments-api", "environment": "production", "version": "v 1\x00"}, 400, "version"),
        (
            {"service": "payments-api", "environment": "production", "version": "v1", "commit_sha": "abc"},
            400,
            "commit_sha",
        ),
        (
            {"service": "payments-api", "environment": "production", "version": "v1", "strategy": "yolo"},
            400,
            "strategy",
        ),
    ],
)
def test_bad_input_is_a_clear_error(api_client, world, production, body, status, field) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    response = api_client.post(URL, body, format="json")
    assert response.status_code == status, response.json()
    if field:
        assert field in response.json()
    assert not Decision.objects.exists()


def test_a_strategy_is_required_without_a_deploy_target_and_the_error_says_why(api_client, world, production) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    response = api_client.post(URL, {"service": "payments-api", "environment": "production", "version": "v1"})
    assert response.json()["strategy"] == [
        "payments-api has no deploy target in production, so name the strategy the pipeline uses: one of rolling, "
        "blue_green, canary."
    ]


def test_anonymous_callers_are_refused(api_client, world, production) -> None:  # type: ignore[no-untyped-def]
    response = api_client.post(URL, {"service": "payments-api", "environment": "production", "version": "v1"})
    assert response.status_code == 401


def test_the_dry_run_is_in_the_schema(api_client, world) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/policy-checks/"]["post"]
    assert {"200", "400", "404"} <= set(operation["responses"])
    assert "outcome" in schema["components"]["schemas"]["PolicyResult"]["properties"]


def test_a_dry_run_takes_a_bounded_number_of_queries(
    api_client, world, production, policies, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.owner)
    body = {"service": "payments-api", "environment": "production", "version": "v1", "strategy": "canary"}
    # The fact document, with the service, its environment, deploy target and release; the enabled policies (none
    # when a shared cache holds them); the decision.
    with django_assert_max_num_queries(3):
        assert api_client.post(URL, body, format="json").status_code == 200


def test_with_a_token_the_policies_generation_comes_with_the_tokens_round_trip(  # type: ignore[no-untyped-def]
    world, production, policies, policy, settings, django_assert_num_queries, mocker
) -> None:
    """On Redis the enabled policies' generation is read in the token's round trip, so an unchanged policy set costs
    no query; a policy saved in between is judged by the very next check. Without Redis (the embedded default) the
    token and the policies are read from the database on every request."""
    from rest_framework.test import APIClient

    from accounts import services as account_services

    _, secret = account_services.token_create(user=world.owner, name="ci", lifetime_days=1)
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    body = {"service": "payments-api", "environment": "production", "version": "v1", "strategy": "canary"}
    assert client.post(URL, body, format="json").status_code == 200  # reads the token and the policies once
    from governance import selectors

    own_read = mocker.spy(selectors, "_policies_generation")
    # The fact document with the service and the rest, the decision (and without Redis: the token, the policies).
    with django_assert_num_queries(2 if settings.API_TOKEN_CACHE else 4):
        first = client.post(URL, body, format="json").json()
    assert own_read.call_count == (0 if settings.API_TOKEN_CACHE else 1)  # no round trip of its own on Redis
    policy("runbooks-first", "service.runbooks > 0", message="Write a runbook first.")
    second = client.post(URL, body, format="json").json()
    judged_first = {result["policy"] for result in first["results"]}
    assert {result["policy"] for result in second["results"]} == judged_first | {"runbooks-first"}
    assert second["allowed"] is False and "Write a runbook first." in {r["message"] for r in second["results"]}


def test_the_answer_is_what_the_serializers_declared_fields_give_and_what_is_kept(world, production, policies) -> None:  # type: ignore[no-untyped-def]
    """PolicyCheckSerializer writes its output out (building a ModelSerializer's fields per request cost more than the
    rest of the response): it must stay what its declared fields, which the schema shows, would give."""
    from rest_framework import serializers

    from governance import services
    from governance.api.serializers import PolicyCheckSerializer

    fresh = services.policy_check(
        service="payments-api", environment="production", version="v1", user=world.owner, strategy="canary"
    )
    stored = Decision.objects.get(pk=fresh.pk)  # written by one INSERT of its own: what was answered is what is kept
    assert PolicyCheckSerializer(stored).data == PolicyCheckSerializer(fresh).data
    assert stored.deployment is None and stored.requested_by == world.owner and stored.verdict == "deny"
    for decision in (fresh, stored):
        serializer = PolicyCheckSerializer(decision)
        by_fields = serializers.ModelSerializer.to_representation(serializer, decision)
        assert serializer.data == by_fields and list(serializer.data) == list(by_fields)
        assert [type(value) for value in serializer.data.values()] == [type(value) for value in by_fields.values()]
