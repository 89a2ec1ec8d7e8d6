"""The approvals inbox, the approve/reject controls and the approvals API: the permission matrix for every new route
(requester, another team, platform admin, a lead of the owning team, anonymous), confirmations, the navigation count."""

import pytest
from django.urls import reverse

from deployments import services as deployment_services
from deployments.models import Deployment, State
from governance.models import ApprovalRequest
from teams.models import Membership
from tests.deployments.support import release_make, step, target_make
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["owner", "outsider", "staff", "lead", "anonymous"]


@pytest.fixture
def waiting(world, production, policy):  # type: ignore[no-untyped-def]
    """A production deployment by the owner, waiting for one lead of payments; `world.lead` is that lead."""
    world.lead = MembershipFactory(
        team=world.owner_team, user=UserFactory(username="lena"), role=Membership.Role.LEAD
    ).user
    policy("leads", "false", action="require_approval", approvers="owner_leads", message="A lead of payments approves.")
    target_make(world.service, production, canary_steps=[50])
    deployment = deployment_services.deployment_request(
        service=world.service, environment=production, user=world.owner, release=release_make(world.service)
    )
    for _ in range(3):
        deployment = step(deployment)
    assert deployment.state == State.AWAITING_APPROVAL
    return ApprovalRequest.objects.get(deployment=deployment)


def login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


def state(request: ApprovalRequest) -> str:
    return Deployment.objects.get(pk=request.deployment_id).state


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", 200), ("outsider", 200), ("staff", 200), ("lead", 200), ("anonymous", 302)]
)
def test_the_inbox(client, world, waiting, role, expected, django_assert_max_num_queries) -> None:
    login(client, world, role)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("governance:approval-list"))
    assert response.status_code == expected
    if role == "anonymous":
        assert response["Location"].startswith("/accounts/login/")
        return
    page = response.content.decode()
    answer = reverse("governance:approval-answer", args=[waiting.pk, "approve"])
    assert (answer in page) is (role == "lead")
    assert 'hx-get="/governance/approvals/count/"' in page  # the navigation fetches its count
    count = client.get(reverse("governance:approval-count")).content.decode()
    assert ('<span class="nav-count" aria-label="1 waiting for you">1</span>' in count) is (role == "lead")
    if role == "owner":
        assert "Your deployments waiting for others" in page and "payments-api" in page


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 403), ("lead", 302), ("anonymous", 302)]
)
@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_answering(client, world, waiting, role, expected, verdict) -> None:
    login(client, world, role)
    url = reverse("governance:approval-answer", args=[waiting.pk, verdict])
    response = client.post(url, {"confirmed": "yes", "reason": "Not during the sale."})
    assert response.status_code == expected
    if role == "lead":
        assert response["Location"] == f"/deployments/{waiting.deployment_id}/"
        assert state(waiting) == (State.POLICY_CHECK if verdict == "approve" else State.CANCELLED)
    else:
        assert state(waiting) == State.AWAITING_APPROVAL
        if role == "anonymous":
            assert response["Location"].startswith("/accounts/login/")


def test_an_unconfirmed_answer_asks_first(client, world, waiting) -> None:
    client.force_login(world.lead)
    url = reverse("governance:approval-answer", args=[waiting.pk, "reject"])
    page = client.post(url, {"reason": "Wait for INC-7."}).content.decode()
    assert "Reject deployment #" in page and 'name="confirmed" value="yes"' in page and "Wait for INC-7." in page
    assert state(waiting) == State.AWAITING_APPROVAL
    client.force_login(world.outsider)
    assert client.post(url, {"reason": "x"}).status_code == 403


def test_rejecting_without_a_reason_says_so_and_htmx_gets_a_redirect(client, world, waiting) -> None:
    client.force_login(world.lead)
    url = reverse("governance:approval-answer", args=[waiting.pk, "reject"])
    response = client.post(url, {"confirmed": "yes", "reason": " ", "next": "inbox"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("governance:approval-list")
    assert state(waiting) == State.AWAITING_APPROVAL
    page = client.get(reverse("governance:approval-list")).content.decode()
    assert "Say why you reject it" in page
    assert client.post(reverse("governance:approval-answer", args=[waiting.pk, "maybe"])).status_code == 404
    assert client.post(reverse("governance:approval-answer", args=[waiting.pk + 99, "approve"])).status_code == 404


def test_the_deployment_page_shows_the_request_and_the_controls_to_those_who_may_answer(client, world, waiting) -> None:
    url = reverse("deployments:detail", args=[waiting.deployment_id])
    client.force_login(world.owner)
    page = client.get(url).content.decode()
    assert "Awaiting approval" in page and "1 approval from a lead of the owning team" in page
    assert "Your approval is asked" not in page and ">Pause<" not in page and ">Cancel<" in page
    client.force_login(world.lead)
    page = client.get(url).content.decode()
    assert "Your approval is asked" in page and "A lead of payments approves." in page
    assert 'hx-confirm="Approve deployment #' in page and 'hx-confirm="Reject deployment #' in page


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", 200), ("outsider", 200), ("staff", 200), ("lead", 200), ("anonymous", 401)]
)
def test_api_read(api_client, world, waiting, role, expected, django_assert_max_num_queries) -> None:
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    with django_assert_max_num_queries(12):
        response = api_client.get("/api/v1/approvals/", {"waiting_for_me": "true"})
    assert response.status_code == expected
    if expected == 200:
        ids = [row["id"] for row in response.json()["results"]]
        assert ids == ([waiting.pk] if role == "lead" else [])
        detail = api_client.get(f"/api/v1/approvals/{waiting.pk}/").json()
        assert detail["status"] == "open" and detail["requirements"][0]["approvers"] == "owner_leads"
        assert detail["requirements"][0]["by"] == [] and detail["requested_by"] == "olivia"


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 403), ("lead", 200), ("anonymous", 401)]
)
def test_api_approve(api_client, world, waiting, role, expected) -> None:
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    response = api_client.post(f"/api/v1/approvals/{waiting.pk}/approve/")
    assert response.status_code == expected
    if expected == 200:
        body = response.json()
        assert body["status"] == "approved" and body["answers"][0]["username"] == "lena"
        assert body["requirements"][0]["by"] == ["lena"] and body["requirements"][0]["met"] is True
        again = api_client.post(f"/api/v1/approvals/{waiting.pk}/approve/")
        assert again.status_code == 409
    assert state(waiting) == (State.POLICY_CHECK if expected == 200 else State.AWAITING_APPROVAL)


@pytest.mark.parametrize(
    ("role", "expected"), [("owner", 403), ("outsider", 403), ("staff", 403), ("lead", 200), ("anonymous", 401)]
)
def test_api_reject(api_client, world, waiting, role, expected) -> None:
    if role != "anonymous":
        api_client.force_authenticate(getattr(world, role))
    assert api_client.post(f"/api/v1/approvals/{waiting.pk}/reject/", {}, format="json").status_code in (400, 401)
    response = api_client.post(f"/api/v1/approvals/{waiting.pk}/reject/", {"reason": "No."}, format="json")
    assert response.status_code == expected
    assert state(waiting) == (State.CANCELLED if expected == 200 else State.AWAITING_APPROVAL)
