"""Break-glass: in a freeze, the starter policy refuses a production deploy; the owner asks for an emergency deploy
with a reason; one platform admin approves it; policies see `change.break_glass` and let it through. Flagged loudly
on the timeline, in the audit log and on the deployment, on the page and in the API."""

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from deployments import services as deployment_services
from deployments.models import Deployment, DeploymentEvent, State
from governance import approvals, sync
from governance.models import ApprovalRequest, Decision
from tests.deployments.support import drive, release_make, step, target_make
from tests.governance.support import freeze_in_force

pytestmark = pytest.mark.django_db


@pytest.fixture
def refused(world, staging, production) -> Deployment:  # type: ignore[no-untyped-def]
    """The starter policies, a freeze in force now, and a production canary of a release that passed staging,
    refused by the freeze."""
    sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"])
    freeze_in_force(user=world.staff, name="Year-end freeze")
    target_make(world.service, staging, canary_steps=[50])
    target_make(world.service, production, canary_steps=[50])
    release = release_make(world.service, "v2.0.1")

    def deploy(environment):  # type: ignore[no-untyped-def]
        return drive(
            deployment_services.deployment_request(
                service=world.service, environment=environment, user=world.owner, release=release
            )
        )

    assert deploy(staging).state == State.SUCCEEDED
    deployment = deploy(production)
    assert deployment.state == State.CANCELLED
    return deployment


def test_break_glass_through_a_freeze(world, refused) -> None:
    assert "Production is frozen (Year-end freeze)" in refused.failure_reason
    with pytest.raises(ValidationError):
        deployment_services.deployment_break_glass(deployment=refused, user=world.owner, reason="  ")
    with pytest.raises(PermissionDenied):
        deployment_services.deployment_break_glass(deployment=refused, user=world.outsider, reason="Outage.")
    emergency = deployment_services.deployment_break_glass(
        deployment=refused, user=world.owner, reason="INC-812: card payments fail; v2.0.1 fixes it."
    )
    assert emergency.state == State.AWAITING_APPROVAL and emergency.break_glass
    flag = emergency.events.get(step=State.AWAITING_APPROVAL, from_state=State.PENDING)
    assert flag.level == DeploymentEvent.Level.ERROR
    assert flag.message.startswith("BREAK-GLASS: olivia asks for an emergency deploy of v2.0.1 to Production")
    assert AuditEvent.objects.get(action="deployment.break_glass").after["reason"].startswith("INC-812")
    request = ApprovalRequest.objects.get(deployment=emergency)
    assert request.kind == "break_glass" and request.requirements[0]["approvers"] == "platform_admins"
    assert step(emergency).state == State.AWAITING_APPROVAL  # no worker moves it on its own

    with pytest.raises(PermissionDenied):  # the owner may not approve their own emergency
        approvals.approval_approve(request_id=request.pk, user=world.owner)
    approvals.approval_approve(request_id=request.pk, user=world.staff)
    emergency = drive(Deployment.objects.get(pk=emergency.pk))
    assert emergency.state == State.SUCCEEDED, emergency.failure_reason
    decision = Decision.objects.get(deployment=emergency)
    change = decision.facts["change"]
    assert change["break_glass"] is True and change["break_glass_reason"].startswith("INC-812")
    assert [(a["username"], a["platform_admin"]) for a in change["approvals"]] == [("stella", True)]
    outcomes = {r["policy"]: r["outcome"] for r in decision.results}
    assert outcomes["no-production-deploys-in-a-freeze"] == "pass"
    assert outcomes["two-person-rule-for-tier-1"] == "skip"  # the admin was the second person
    assert emergency.events.filter(message="Break-glass approved by stella; the deployment goes on.").exists()


def test_the_pages_and_the_api(client, api_client, world, refused) -> None:
    url = reverse("deployments:detail", args=[refused.pk])
    client.force_login(world.owner)
    page = client.get(url).content.decode()
    assert ">Break glass</button>" in page and 'hx-confirm="Break glass for v2.0.1 to Production?' in page
    client.force_login(world.outsider)
    assert ">Break glass</button>" not in client.get(url).content.decode()

    action = reverse("deployments:break-glass", args=[refused.pk])
    assert client.post(action, {"confirmed": "yes", "reason": "Outage."}).status_code == 403
    client.force_login(world.owner)
    asked = client.post(action, {"reason": "Outage."}).content.decode()  # not confirmed: asks first
    assert "Break glass for v2.0.1 to Production?" in asked and "Outage." in asked
    assert not Deployment.objects.filter(break_glass_reason__gt="").exists()
    response = client.post(action, {"confirmed": "yes", "reason": "INC-812 fix."})
    emergency = Deployment.objects.get(break_glass_reason="INC-812 fix.")
    assert response.status_code == 302 and response["Location"] == emergency.get_absolute_url()
    page = client.get(emergency.get_absolute_url()).content.decode()
    assert "Emergency deploy" in page and 'class="badge badge-break-glass"' in page
    client.force_login(world.staff)
    assert "Break-glass: your approval is asked" in client.get(emergency.get_absolute_url()).content.decode()

    deployment_services.deployment_abort(deployment=emergency, user=world.owner)
    api_client.force_authenticate(world.outsider)
    assert api_client.post(f"/api/v1/deployments/{refused.pk}/break-glass/", {"reason": "x"}).status_code == 403
    api_client.force_authenticate(world.owner)
    assert api_client.post(f"/api/v1/deployments/{refused.pk}/break-glass/", {}).status_code == 400
    response = api_client.post(f"/api/v1/deployments/{refused.pk}/break-glass/", {"reason": "Via the pipeline."})
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "awaiting_approval" and body["break_glass"] is True
    assert body["break_glass_reason"] == "Via the pipeline."


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 302), ("anonymous", 302)])
def test_break_glass_permission_matrix(client, world, refused, role, expected) -> None:
    if role != "anonymous":
        client.force_login(getattr(world, role))
    response = client.post(reverse("deployments:break-glass", args=[refused.pk]), {"confirmed": "yes", "reason": "x"})
    assert response.status_code == expected
    made = Deployment.objects.filter(break_glass_reason="x").exists()
    assert made is (role in ("owner", "staff"))
    if role == "anonymous":
        assert response["Location"].startswith("/accounts/login/")
