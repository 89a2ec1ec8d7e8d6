"""Production flag changes go through the deploy policies (real CEL): a deny refuses with the policy's message, a
require_approval holds the change until eligible people approve it, and the decision is kept as evidence."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from deployments.models import Environment
from flags import changes, services
from flags.models import Flag, FlagChange, FlagSetting
from governance import services as governance
from governance import sync
from governance.models import Decision
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def envs(db):  # type: ignore[no-untyped-def]
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    return staging, production


@pytest.fixture
def flag(world, envs) -> Flag:  # type: ignore[no-untyped-def]
    return services.flag_create(actor=None, service=world.service, key="new-checkout", default_variant="off")


@pytest.fixture
def lead(world):  # type: ignore[no-untyped-def]
    return MembershipFactory(team=world.owner_team, user=UserFactory(username="lena"), role="lead").user


@pytest.fixture
def starter(db) -> None:  # type: ignore[no-untyped-def]
    report = sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"])
    assert not report.errors, report.errors


def api_as(user) -> APIClient:  # type: ignore[no-untyped-def]
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


def production_of(flag: Flag) -> FlagSetting:
    return FlagSetting.objects.get(flag=flag, environment__slug="production")


def test_a_deny_policy_refuses_a_production_flag_change_with_its_message(world, flag) -> None:
    governance.policy_save(
        user=world.staff,
        name="no-experiments-in-production",
        match="change.kind == 'flag' && change.environment.protected",
        rule="change.flag.kind != 'experiment' || !change.flag.enabled",
        message_expression="'No experiments in ' + change.environment.name + ': ' + change.flag.key + ' is one.'",
        action="deny",
    )
    services.flag_update(actor=None, flag=flag, kind="experiment")
    api = api_as(world.owner)
    response = api.patch(f"/api/v1/flags/{flag.pk}/settings/production/", {"enabled": True}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["No experiments in Production: new-checkout is one."]}
    assert not production_of(flag).enabled and Flag.objects.get(pk=flag.pk).version == 2
    decision = Decision.objects.get()
    assert decision.verdict == "deny" and decision.deployment is None and decision.environment_slug == "production"
    assert decision.facts["change"]["kind"] == "flag"
    assert decision.facts["change"]["flag"] | {"on_in": []} == decision.facts["change"]["flag"]
    assert (
        decision.facts["change"]["flag"]["enabled"] is True and decision.facts["change"]["flag"]["was_enabled"] is False
    )
    # Staging is not protected: not judged, no decision.
    assert api.patch(f"/api/v1/flags/{flag.pk}/settings/staging/", {"enabled": True}, format="json").status_code == 200
    assert Decision.objects.count() == 1


def test_the_starter_set_holds_a_tier_1_production_change_for_a_lead(world, flag, lead, starter) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    body = {"enabled": True, "rollout": {"on": 10, "off": 90}, "note": "first 10 %"}
    held = api_as(world.owner).patch(f"/api/v1/flags/{flag.pk}/settings/production/", body, format="json")
    assert held.status_code == 202, held.content
    change = held.json()
    assert change["status"] == "open" and change["requested_by"] == "olivia"
    assert change["proposed"] == {"enabled": True, "rollout": {"on": 10.0, "off": 90.0}}
    [requirement] = change["requirements"]
    assert (requirement["policy"], requirement["approvers"], requirement["by"]) == (
        "two-person-rule-for-tier-1",
        "owner_leads",
        [],
    )
    assert not production_of(flag).enabled  # nothing changed yet

    url = f"/api/v1/flag-changes/{change['id']}/approve/"
    assert api_as(world.owner).post(url).status_code == 403  # the requester
    assert api_as(world.outsider).post(url).status_code == 403
    assert api_as(world.staff).post(url).status_code == 403  # a platform admin is not a lead of payments
    approved = api_as(lead).post(url)
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "applied" and approved.json()["requirements"][0]["by"] == ["lena"]
    setting = production_of(flag)
    assert setting.enabled and setting.rollout == {"on": 10.0, "off": 90.0}
    latest = flag.versions.first()
    assert latest is not None and latest.author == world.owner and latest.note == "approved by lena: first 10 %"
    assert api_as(lead).post(url).status_code == 409  # answered already
    actions = list(AuditEvent.objects.filter(action__startswith="flag_change.").values_list("action", flat=True))
    assert sorted(actions) == ["flag_change.approved", "flag_change.requested"]


def test_a_rejected_or_expired_change_changes_nothing(world, flag, lead, starter) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    first = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    assert isinstance(first, FlagChange)
    reject = f"/api/v1/flag-changes/{first.pk}/reject/"
    assert "reason" in api_as(lead).post(reject, {"reason": ""}, format="json").json()
    rejected = api_as(lead).post(reject, {"reason": "Not during the sale."}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert rejected.json()["closed_reason"] == "Rejected by lena: Not during the sale."
    assert not production_of(flag).enabled

    second = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    assert isinstance(second, FlagChange)
    FlagChange.objects.filter(pk=second.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = api_as(lead).post(f"/api/v1/flag-changes/{second.pk}/approve/")
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    assert not production_of(flag).enabled
    assert FlagChange.objects.get(pk=second.pk).shown_status == "Expired"


def test_the_starter_flag_policy_wants_staging_first_and_the_kill_switch_is_never_held(world, flag, starter) -> None:
    from tests.factories import service_make

    tier2 = service_make(owner=world.owner_team, slug="reports", name="Reports", tier=2)
    other = services.flag_create(actor=None, service=tier2, key="weekly-digest")
    production = Environment.objects.get(slug="production")
    api = api_as(world.owner)
    refused = api.patch(f"/api/v1/flags/{other.pk}/settings/production/", {"enabled": True}, format="json")
    assert refused.status_code == 400
    assert refused.json()["non_field_errors"] == [
        "Turn weekly-digest on in staging first: it is off there, so nobody has seen it on before Production."
    ]
    assert api.patch(f"/api/v1/flags/{other.pk}/settings/staging/", {"enabled": True}, format="json").status_code == 200
    allowed = api.patch(f"/api/v1/flags/{other.pk}/settings/production/", {"enabled": True}, format="json")
    assert allowed.status_code == 200 and allowed.json()["settings"][1]["enabled"] is True
    assert api.post(f"/api/v1/flags/{other.pk}/kill/").status_code == 200
    assert not FlagSetting.objects.filter(flag=other, enabled=True).exists()
    assert Decision.objects.filter(environment_slug=production.slug).count() == 2  # the refusal and the allowance


def test_the_pages_hold_a_production_toggle_and_the_lead_approves_it(client, world, flag, lead, starter) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    client.force_login(world.owner)
    toggle = reverse("flags:toggle", args=[world.service.slug, flag.key, "production"])
    response = client.post(toggle, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"].endswith(f"/flags/{flag.key}/")
    assert not production_of(flag).enabled
    page = client.get(reverse("flags:flag-detail", args=[world.service.slug, flag.key])).content.decode()
    assert "Waiting for approval" in page and "Changes held by policy" in page
    assert "1 approval from a lead of the owning team: none yet" in page
    change = FlagChange.objects.get()
    assert reverse("flags:change-approve", args=[change.pk]) not in page  # the requester cannot answer

    client.force_login(lead)
    page = client.get(reverse("flags:flag-detail", args=[world.service.slug, flag.key])).content.decode()
    assert reverse("flags:change-approve", args=[change.pk]) in page
    response = client.post(reverse("flags:change-approve", args=[change.pk]), follow=True)
    assert "Approved by lena; applied." in response.content.decode()
    assert production_of(flag).enabled


@pytest.mark.parametrize(("role", "expected"), [("outsider", 403), ("staff", 403), ("owner", 403), ("anonymous", 302)])
def test_only_eligible_approvers_answer_on_the_pages(client, world, flag, lead, starter, role, expected) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    change = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    assert isinstance(change, FlagChange)
    if role != "anonymous":
        client.force_login(getattr(world, role))
    for name in ("flags:change-approve", "flags:change-reject"):
        response = client.post(reverse(name, args=[change.pk]), {"reason": "no"})
        assert response.status_code == expected
    assert FlagChange.objects.get(pk=change.pk).status == "open"


@pytest.mark.parametrize(("role", "expected"), [("outsider", 200), ("owner", 200), ("staff", 200), ("anonymous", 401)])
def test_everyone_signed_in_reads_held_changes(
    world, flag, starter, role, expected, django_assert_max_num_queries
) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    for rollout in ({"on": 10, "off": 90}, {"on": 20, "off": 80}, {"on": 50, "off": 50}):
        services.setting_change(
            actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True, rollout=rollout
        )
    api = api_as(getattr(world, role) if role != "anonymous" else None)
    with django_assert_max_num_queries(8):
        response = api.get("/api/v1/flag-changes/", {"status": "open"})
    assert response.status_code == expected
    if expected == 200:
        assert [row["proposed"]["rollout"]["on"] for row in response.json()["results"]] == [50.0, 20.0, 10.0]


def test_a_held_rollout_start_starts_when_a_lead_approves_it(world, flag, lead, starter, mocker) -> None:
    from flags.models import FlagRollout

    mocker.patch("flags.tasks.rollout_step.apply_async")
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    body = {"environment": "production", "variant": "on", "metrics_url": "http://127.0.0.1:9/metrics"}
    held = api_as(world.owner).post(f"/api/v1/flags/{flag.pk}/rollouts/", body, format="json")
    assert held.status_code == 202, held.content
    assert held.json()["proposed"]["rollout_start"]["steps"] == [1.0, 10.0, 50.0, 100.0]
    assert not FlagRollout.objects.exists()
    refused = api_as(world.owner).post(f"/api/v1/flags/{flag.pk}/rollouts/", body | {"metrics_url": "nope"})
    assert refused.status_code == 400 and "metrics_url" in refused.json()
    approved = api_as(lead).post(f"/api/v1/flag-changes/{held.json()['id']}/approve/")
    assert approved.status_code == 200 and approved.json()["status"] == "applied", approved.content
    rollout = FlagRollout.objects.get()
    assert (rollout.state, rollout.started_by, rollout.environment.slug) == ("running", world.owner, "production")


def test_the_decision_page_says_it_judged_a_flag_change(client, world, flag, starter) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    result = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    assert isinstance(result, FlagChange)  # held for a lead (tier 1), with its decision kept
    client.force_login(world.outsider)
    page = client.get(reverse("governance:decision-detail", args=[result.decision_id])).content.decode()
    assert "A change to the feature flag" in page and "dry run" not in page
    assert reverse("flags:flag-detail", args=[world.service.slug, flag.key]) in page


def test_the_flag_page_reads_in_bounded_queries(
    client, world, flag, lead, starter, mocker, django_assert_max_num_queries
) -> None:
    from flags import rollouts

    mocker.patch("flags.tasks.rollout_step.apply_async")
    staging = Environment.objects.get(slug="staging")
    services.setting_update(actor=None, flag=flag, environment=staging, enabled=True)
    url = reverse("flags:flag-detail", args=[world.service.slug, flag.key])
    client.force_login(lead)

    def queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", metrics_url="http://127.0.0.1:9/m"
    )
    services.setting_change(actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True)
    one = queries()
    for percent in (10, 20, 30):
        services.setting_change(
            actor=world.owner,
            flag=flag,
            environment=production_of(flag).environment,
            rollout={"on": percent, "off": 100 - percent},
        )
    rollouts.rollout_abort(rollout_id=flag.rollouts.get().pk, actor=world.owner)
    rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", metrics_url="http://127.0.0.1:9/m"
    )
    assert queries() == one  # more held changes and rollouts, not more queries
    with django_assert_max_num_queries(45):
        client.get(url)


def test_the_approvals_inbox_lists_held_flag_changes_for_their_approvers(client, world, flag, lead, starter) -> None:
    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    change = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    assert isinstance(change, FlagChange)
    count_url, inbox_url = reverse("governance:approval-count"), reverse("governance:approval-list")
    for user, shown in ((lead, True), (world.owner, False), (world.outsider, False)):
        client.force_login(user)
        count = client.get(count_url).content.decode()
        assert ('aria-label="1 waiting for you"' in count) is shown, user
        inbox = client.get(inbox_url).content.decode()
        assert ("Feature flag new-checkout of payments-api in Production" in inbox) is shown
    client.force_login(lead)
    inbox = client.get(inbox_url).content.decode()
    assert f"/flags/{flag.key}/#change-{change.pk}" in inbox and "1 approval from a lead of the owning team" in inbox
    changes.flag_change_approve(change_id=change.pk, user=lead)
    assert 'aria-label="1 waiting for you"' not in client.get(count_url).content.decode()


def test_the_beat_closes_held_changes_past_their_time(world, flag, lead, starter) -> None:
    from flags import tasks

    services.setting_update(actor=None, flag=flag, environment=Environment.objects.get(slug="staging"), enabled=True)
    late = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, enabled=True
    )
    fresh = services.setting_change(
        actor=world.owner, flag=flag, environment=production_of(flag).environment, rollout={"on": 5, "off": 95}
    )
    assert isinstance(late, FlagChange) and isinstance(fresh, FlagChange)
    FlagChange.objects.filter(pk=late.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.expire_changes() == 1
    assert tasks.expire_changes() == 0  # a second run finds nothing
    late.refresh_from_db()
    assert late.status == "expired" and late.closed_reason == "Expired with 0 approval(s); nothing changed."
    assert FlagChange.objects.get(pk=fresh.pk).status == "open" and not production_of(flag).enabled
    assert AuditEvent.objects.filter(action="flag_change.expired", object_id=str(late.pk)).exists()
