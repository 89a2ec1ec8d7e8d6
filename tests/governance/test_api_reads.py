"""GET /api/v1/policies/ and /api/v1/decisions/: the rules and their judgements, read-only, for signed-in users."""

import pytest

from governance import services
from tests.deployments.support import drive, release_make, scripted, target_make

pytestmark = pytest.mark.django_db


def test_policies_are_listed_with_the_version_in_force(api_client, world, policy) -> None:  # type: ignore[no-untyped-def]
    policy("canary-only", "change.strategy == 'canary'", message="first")
    policy("canary-only", "change.strategy == 'canary'", message="second", action="warn")
    api_client.force_authenticate(world.outsider)
    [item] = api_client.get("/api/v1/policies/").json()["results"]
    assert item["name"] == "canary-only" and item["missing_since"] is None
    assert (item["current"]["number"], item["current"]["action"], item["current"]["author"]) == (2, "warn", "stella")
    assert api_client.get("/api/v1/policies/canary-only/").json()["current"]["message"] == "second"
    assert api_client.get("/api/v1/policies/nope/").status_code == 404


def test_policies_cannot_be_written_through_the_api(api_client, world, policy) -> None:  # type: ignore[no-untyped-def]
    policy("canary-only", "change.strategy == 'canary'")
    for user in (world.owner, world.staff):
        api_client.force_authenticate(user)
        assert api_client.post("/api/v1/policies/", {"name": "x"}).status_code == 405
        assert api_client.patch("/api/v1/policies/canary-only/", {"enabled": False}).status_code == 405
        assert api_client.delete("/api/v1/policies/canary-only/").status_code == 405


def test_decisions_are_listed_and_filtered_and_the_detail_has_the_facts(api_client, world, production, policy) -> None:  # type: ignore[no-untyped-def]
    from deployments import services as deployment_services

    policy("canary-only", "change.strategy == 'canary'", message="Canary only.")
    target_make(world.service, production, runtime="scripted", strategy="rolling")
    with scripted():
        deployment = drive(
            deployment_services.deployment_request(
                service=world.service, environment=production, user=world.owner, release=release_make(world.service)
            )
        )
    dry = services.policy_check(
        service="payments-api", environment="production", version="v2", user=world.owner, strategy="canary"
    )
    api_client.force_authenticate(world.outsider)
    listed = api_client.get("/api/v1/decisions/").json()["results"]
    assert [item["id"] for item in listed] == [dry.pk, deployment.policy_decision.pk]
    assert "facts" not in listed[0] and listed[1]["verdict"] == "deny" and listed[1]["deployment"] == deployment.pk
    assert listed[1]["results"][0]["message"] == "Canary only."
    by_deployment = api_client.get("/api/v1/decisions/", {"deployment": deployment.pk}).json()["results"]
    assert [item["id"] for item in by_deployment] == [deployment.policy_decision.pk]
    dry_runs = api_client.get("/api/v1/decisions/", {"dry_run": "true"}).json()["results"]
    assert [item["id"] for item in dry_runs] == [dry.pk]
    detail = api_client.get(f"/api/v1/decisions/{dry.pk}/").json()
    assert detail["facts"]["change"]["version"] == "v2" and detail["deployment"] is None
    assert api_client.get("/api/v1/decisions/", {"verdict": "maybe"}).status_code == 400
    assert api_client.get("/api/v1/decisions/", {"deployment": "9" * 30}).status_code == 400


def test_anonymous_callers_are_refused(api_client, world) -> None:  # type: ignore[no-untyped-def]
    assert api_client.get("/api/v1/policies/").status_code == 401
    assert api_client.get("/api/v1/decisions/").status_code == 401
