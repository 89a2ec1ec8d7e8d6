"""The deployments API: who may deploy, what bad requests get back, 409 on a second deployment, reported deploys."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import services as account_services
from deployments.models import Deployment, Placement, Release, State
from tests.deployments.support import release_make

pytestmark = pytest.mark.django_db
DEPLOYMENTS = "/api/v1/deployments/"


def client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    _, secret = account_services.token_create(user=user, name="ci", lifetime_days=30)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


@pytest.mark.parametrize(("role", "expected"), [("owner", 201), ("staff", 201), ("outsider", 403)])
def test_who_may_deploy(world, repo, target, role, expected) -> None:
    response = client_for(getattr(world, role)).post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "ref": "v1.0.0"}, format="json"
    )
    assert response.status_code == expected, response.content
    if expected == 201:
        assert response.json()["release"]["version"] == "v1.0.0"
        assert response.json()["release"]["commit_sha"] == repo.first
        assert response.json()["state"] == "pending"
    else:
        assert "Only Payments" in response.json()["detail"]
        assert Deployment.objects.count() == 0 and Release.objects.count() == 0


def test_anonymous_gets_401(world, target) -> None:
    assert APIClient().post(DEPLOYMENTS, {}, format="json").status_code in (401, 403)
    assert APIClient().get(DEPLOYMENTS).status_code in (401, 403)


def test_a_commit_sha_deploys_as_its_short_version(world, repo, target) -> None:
    response = client_for(world.owner).post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "ref": repo.second}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["release"]["version"] == repo.second[:12]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"environment": "staging", "ref": "v1.0.0", "service": "nope"}, "service", "No service called nope"),
        ({"service": "payments-api", "environment": "moon", "ref": "v1.0.0"}, "environment", "No environment"),
        ({"service": "payments-api", "environment": "staging", "ref": "v9.9.9"}, "ref", "No commit, tag or branch"),
        ({"service": "payments-api", "environment": "staging", "ref": "--upload-pack=x"}, "ref", "is not a tag"),
        ({"service": "payments-api", "environment": "staging", "ref": "main..v1"}, "ref", "is not a tag"),
        ({"service": "payments-api", "environment": "staging"}, "ref", "Give a tag"),
        ({"service": "payments-api", "environment": "staging", "ref": "v1.0.0", "strategy": "yolo"}, "strategy", ""),
    ],
)
def test_bad_requests_get_field_errors_and_change_nothing(world, repo, target, body, field, text) -> None:
    response = client_for(world.owner).post(DEPLOYMENTS, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json() and text in str(response.json()[field])
    assert Deployment.objects.count() == 0


def test_an_environment_the_service_may_not_use_is_refused(world, repo, target) -> None:
    from deployments.models import Environment

    Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    response = client_for(world.owner).post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "production", "ref": "v1.0.0"}, format="json"
    )
    assert response.status_code == 400
    assert "not set up to deploy to Production" in str(response.json()["environment"])


def test_second_deployment_gets_409_naming_the_first(world, repo, target) -> None:
    api = client_for(world.owner)
    first = api.post(DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "ref": "v1.0.0"}, format="json")
    second = api.post(DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "ref": "main"}, format="json")
    assert second.status_code == 409
    assert f"deployment #{first.json()['id']}" in second.json()["detail"]
    assert second.json()["existing"] == f"/deployments/{first.json()['id']}/"
    assert Deployment.objects.count() == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_start_exactly_one(world, repo, target) -> None:
    """Eight requests at once on separate connections: the partial unique index lets exactly one through."""
    release_make(world.service, "v1.0.0", repo.first)
    barrier, codes = threading.Barrier(8), []

    def request() -> None:
        try:
            api = APIClient()
            api.force_authenticate(world.owner)
            barrier.wait()
            body = {"service": "payments-api", "environment": "staging", "release": "v1.0.0"}
            response = api.post(DEPLOYMENTS, body, format="json")
            codes.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(code for code, _ in codes) == [201] + [409] * 7
    winner = next(body for code, body in codes if code == 201)
    assert all(f"deployment #{winner['id']}" in body["detail"] for code, body in codes if code == 409)
    assert Deployment.objects.filter(state__in=[State.PENDING]).count() == 1


def test_controls_need_deploy_permission(world, target) -> None:
    deployment = client_for(world.owner).post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "release": "x"}, format="json"
    )
    assert deployment.status_code == 400  # unknown release
    release_make(world.service, "1.0.0")
    created = client_for(world.owner).post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "release": "1.0.0"}, format="json"
    )
    pk = created.json()["id"]
    refused = client_for(world.outsider).post(f"{DEPLOYMENTS}{pk}/abort/")
    assert refused.status_code == 403
    assert Deployment.objects.get(pk=pk).state == State.PENDING
    done = client_for(world.owner).post(f"{DEPLOYMENTS}{pk}/abort/")
    assert done.status_code == 200 and done.json()["state"] == "cancelled"
    again = client_for(world.owner).post(f"{DEPLOYMENTS}{pk}/abort/")
    assert again.status_code == 409 and "nothing to abort" in again.json()["detail"]


def test_detail_has_the_timeline(world, target, django_assert_max_num_queries) -> None:
    release_make(world.service, "1.0.0")
    api = client_for(world.owner)
    pk = api.post(
        DEPLOYMENTS, {"service": "payments-api", "environment": "staging", "release": "1.0.0"}, format="json"
    ).json()["id"]
    with django_assert_max_num_queries(8):
        body = api.get(f"{DEPLOYMENTS}{pk}/").json()
    assert body["events"][0]["message"].startswith("Deploy 1.0.0 to Staging with canary")


def test_list_query_count_does_not_grow(world, target, staging, django_assert_max_num_queries) -> None:
    api = client_for(world.owner)
    for n in range(12):
        release = release_make(world.service, f"1.{n}.0")
        Deployment.objects.create(
            release=release, service=world.service, environment=staging, strategy="canary", runtime="simulated",
            state=State.CANCELLED, requested_by=world.owner,
        )  # fmt: skip
    with django_assert_max_num_queries(8):
        body = api.get(DEPLOYMENTS, {"service": "payments-api"}).json()
    assert body["count"] == 12


def test_reported_deploys_enter_history_and_placement(world, staging) -> None:
    api = client_for(world.owner)
    sha = "a" * 40
    body = {
        "service": "payments-api",
        "environment": "staging",
        "version": "2026.11.27-1",
        "commit_sha": sha,
        "status": "succeeded",
        "committed_at": "2026-11-27T08:00:00Z",
        "started_at": "2026-11-27T09:00:00Z",
        "finished_at": "2026-11-27T09:04:00Z",
    }
    response = api.post("/api/v1/deploy-events/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "external"
    placement = Placement.objects.get(service=world.service, environment=staging)
    assert placement.release.version == "2026.11.27-1"
    assert api.get("/api/v1/placements/", {"service": "payments-api"}).json()["results"][0]["commit_sha"] == sha
    # The same version can never be moved to another commit.
    moved = api.post("/api/v1/deploy-events/", {**body, "commit_sha": "b" * 40}, format="json")
    assert moved.status_code == 400 and "is commit aaaaaaaaaa" in str(moved.json()["commit_sha"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"commit_sha": "xyz"}, "commit_sha"),
        ({"status": "maybe"}, "status"),
        ({"finished_at": "2026-11-27T08:00:00Z"}, "finished_at"),
        ({"environment": "moon"}, "environment"),
    ],
)
def test_bad_deploy_events_are_refused(world, staging, change, field) -> None:
    body = {
        "service": "payments-api",
        "environment": "staging",
        "version": "1.0.0",
        "commit_sha": "a" * 40,
        "status": "succeeded",
        "started_at": "2026-11-27T09:00:00Z",
        "finished_at": "2026-11-27T09:04:00Z",
        **change,
    }
    response = client_for(world.owner).post("/api/v1/deploy-events/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert Deployment.objects.count() == 0


def test_outsiders_cannot_report_deploys(world, staging) -> None:
    body = {"service": "payments-api", "environment": "staging", "version": "1", "commit_sha": "a" * 40}
    response = client_for(world.outsider).post("/api/v1/deploy-events/", {**body, "status": "succeeded"}, format="json")
    assert response.status_code == 403 and Deployment.objects.count() == 0
