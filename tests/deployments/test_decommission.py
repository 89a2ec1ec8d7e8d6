"""Decommissioning: the request and its checks, approval, each step run as a worker runs it, failure and resume."""

import subprocess
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from catalog import services as catalog_services
from catalog.models import Dependency, Service
from catalog.permissions import user_can
from deployments import decommission as retire
from deployments.models import (
    Decommission,
    DecommissionState,
    Deployment,
    Environment,
    Placement,
    State,
)
from deployments.services import deployment_request
from portal.errors import Conflict
from scaffolder import publishers
from scaffolder.models import GoldenPathUpdate
from teams.models import Membership
from tests.deployments.support import drive, release_make, scripted, target_make
from tests.factories import MembershipFactory, UserFactory, service_make

pytestmark = pytest.mark.django_db
REASON = "Replaced by payments-v2; no traffic since March."


@pytest.fixture
def lead(world):  # type: ignore[no-untyped-def]
    return MembershipFactory(team=world.owner_team, user=UserFactory(username="liam"), role=Membership.Role.LEAD).user


@pytest.fixture
def production(db) -> Environment:  # type: ignore[no-untyped-def]
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


@pytest.fixture
def running(world, staging, production):  # type: ignore[no-untyped-def]
    """payments-api deployed to staging and production on the scripted runtime."""
    with scripted() as runtime:
        for environment in (staging, production):
            target_make(world.service, environment, runtime="scripted", strategy="rolling", replicas=1)
            deployment = deployment_request(
                service=world.service,
                environment=environment,
                user=world.owner,
                release=release_make(world.service, f"1.0.{environment.order}"),
            )
            assert drive(deployment).state == State.SUCCEEDED
        runtime.calls.clear()
        yield runtime


def request(world, **fields) -> Decommission:  # type: ignore[no-untyped-def]
    arguments = {"service": world.service, "user": world.owner, "reason": REASON, "planned_for": timezone.localdate()}
    return retire.decommission_request(**{**arguments, **fields})


def run(decommission: Decommission, *, limit: int = 20) -> Decommission:
    """Run its steps now, as workers would, until it needs a person or ends."""
    for _ in range(limit):
        # Skip retry back-offs, but not a wait for the planned date.
        soon = timezone.now() + timedelta(seconds=60)
        Decommission.objects.filter(pk=decommission.pk).update(lease_until=None)
        Decommission.objects.filter(pk=decommission.pk, next_run_at__lte=soon).update(next_run_at=None)
        decommission.refresh_from_db()
        if decommission.state not in retire.STEPS or (decommission.next_run_at or soon) > soon:
            return decommission
        retire.run_step(decommission.pk, decommission.version)
    raise AssertionError(f"decommission stuck in {decommission.state}")


def test_the_whole_workflow_retires_the_service_and_keeps_its_record(world, lead, running, repo) -> None:
    decommission = request(world)
    assert decommission.state == DecommissionState.REQUESTED
    assert Service.objects.get(pk=world.service.pk).lifecycle == Service.Lifecycle.EXPERIMENTAL  # nothing yet

    update = GoldenPathUpdate.objects.create(  # an update from the golden path, left open for review
        service=world.service, golden_path="stdlib-http-service", from_version="1.0.0", to_version="1.1.0",
        branch="runway/golden-path-1.1.0", status=GoldenPathUpdate.Status.READY, requested_by=world.owner,
    )  # fmt: skip

    retire.decommission_approve(decommission=decommission, user=lead)
    assert Service.objects.get(pk=world.service.pk).lifecycle == Service.Lifecycle.DECOMMISSIONING
    done = run(decommission)

    assert done.state == DecommissionState.DONE and done.finished_at is not None
    service = Service.objects.get(pk=world.service.pk)
    assert service.lifecycle == Service.Lifecycle.DECOMMISSIONED
    assert sorted(running.calls) == ["stop_all:payments-api:production", "stop_all:payments-api:staging"]
    assert not Placement.objects.filter(service=service).exists()
    assert publishers.local_archived(name="payments-api")
    update.refresh_from_db()
    assert update.status == GoldenPathUpdate.Status.DISCARDED  # it could never be merged into an archive
    assert not user_can(world.owner, "catalog.deploy_service", service)
    assert not user_can(world.owner, "catalog.change_service", service)
    # The history stays: deployments, releases, and a timeline of every step.
    assert Deployment.objects.filter(service=service).count() == 2
    steps = list(done.events.exclude(from_state="").values_list("step", flat=True))
    assert steps == ["approved", "stopping", "archiving", "revoking", "done"]
    audited = AuditEvent.objects.filter(object_type="deployments.decommission", object_id=str(done.pk))
    assert sorted(audited.values_list("action", flat=True)) == sorted(
        ["decommission.requested", *(f"decommission.{step}" for step in steps)]
    )
    revoked = done.events.get(step="revoking", from_state="").data["revoked"]
    assert "team:payments: deploy_service" in revoked


def test_an_archived_repository_refuses_pushes_but_can_be_cloned(world, lead, running, repo, tmp_path) -> None:
    run(retire.decommission_approve(decommission=request(world), user=lead))
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.bare), str(clone)], check=True, capture_output=True)
    (clone / "late.txt").write_text("one more change\n")
    env = {"GIT_AUTHOR_NAME": "x", "GIT_AUTHOR_EMAIL": "x@x", "GIT_COMMITTER_NAME": "x", "GIT_COMMITTER_EMAIL": "x@x"}
    subprocess.run(["git", "add", "."], cwd=clone, check=True)
    subprocess.run(["git", "commit", "-qm", "late"], cwd=clone, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    pushed = subprocess.run(["git", "push", "origin", "HEAD:main"], cwd=clone, capture_output=True, text=True)
    assert pushed.returncode != 0
    assert "archived" in pushed.stderr


def test_dependents_block_the_request_and_are_named(world) -> None:
    for slug in ("checkout-web", "refunds"):
        Dependency.objects.create(source=service_make(owner=world.other_team, slug=slug), target=world.service)
    gone = service_make(owner=world.other_team, slug="old-billing", lifecycle=Service.Lifecycle.DECOMMISSIONED)
    Dependency.objects.create(source=gone, target=world.service)  # retired dependents do not count

    with pytest.raises(ValidationError) as blocked:
        request(world)

    (problem,) = blocked.value.message_dict["service"]
    assert "2 services still depend on it: checkout-web, refunds" in problem
    assert not Decommission.objects.exists()


def test_a_deployment_in_flight_blocks_the_request(world, staging) -> None:
    target_make(world.service, staging)
    deployment = deployment_request(
        service=world.service, environment=staging, user=world.owner, release=release_make(world.service)
    )
    with pytest.raises(ValidationError, match=f"#{deployment.pk}"):
        request(world)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"reason": "  old  "}, "reason", "at least 10 characters"),
        ({"planned_for": timezone.localdate() - timedelta(days=1)}, "planned_for", "cannot be in the past"),
    ],
)
def test_bad_requests_say_what_to_fix(world, fields, field, words) -> None:
    with pytest.raises(ValidationError) as bad:
        request(world, **fields)
    assert words in " ".join(bad.value.message_dict[field])
    assert not Decommission.objects.exists()


def test_only_owners_may_ask_and_one_request_at_a_time(world) -> None:
    with pytest.raises(PermissionDenied):
        request(world, user=world.outsider)
    first = request(world)
    with pytest.raises(Conflict, match=f"#{first.pk}"):
        request(world, user=world.staff)


def test_who_may_approve(world, lead) -> None:
    decommission = request(world)
    for person in (world.owner, world.outsider):  # the requester, and someone from another team
        with pytest.raises(PermissionDenied):
            retire.decommission_approve(decommission=decommission, user=person)
    assert Decommission.objects.get(pk=decommission.pk).state == DecommissionState.REQUESTED

    own = retire.decommission_request(
        service=service_make(owner=world.owner_team), user=lead, reason=REASON, planned_for=timezone.localdate()
    )
    with pytest.raises(PermissionDenied, match="another lead"):
        retire.decommission_approve(decommission=own, user=lead)
    assert retire.decommission_approve(decommission=own, user=world.staff).state == DecommissionState.APPROVED


def test_approval_runs_the_checks_again(world, lead) -> None:
    decommission = request(world)
    Dependency.objects.create(source=service_make(owner=world.other_team, slug="newcomer"), target=world.service)
    with pytest.raises(ValidationError, match="newcomer"):
        retire.decommission_approve(decommission=decommission, user=lead)
    decommission.refresh_from_db()
    assert decommission.state == DecommissionState.REQUESTED
    assert "newcomer" in decommission.events.last().message


def test_no_deploys_while_a_decommission_is_open(world, staging) -> None:
    target_make(world.service, staging)
    decommission = request(world)
    with pytest.raises(ValidationError, match=f"being decommissioned \\(#{decommission.pk}\\)"):
        deployment_request(
            service=world.service, environment=staging, user=world.owner, release=release_make(world.service)
        )


def test_cancel_before_anything_is_stopped_restores_the_service(world, lead, running) -> None:
    decommission = retire.decommission_approve(
        decommission=request(world, planned_for=timezone.localdate() + timedelta(days=7)), user=lead
    )
    assert run(decommission).state == DecommissionState.APPROVED  # waits for its date
    assert running.calls == []

    cancelled = retire.decommission_cancel(decommission=decommission, user=world.owner)

    assert cancelled.state == DecommissionState.CANCELLED
    assert Service.objects.get(pk=world.service.pk).lifecycle == Service.Lifecycle.EXPERIMENTAL
    assert user_can(world.owner, "catalog.deploy_service", world.service)
    assert request(world).state == DecommissionState.REQUESTED  # a closed one does not block a new request


def test_a_failed_stop_resumes_where_it_stopped(world, lead, running) -> None:
    decommission = retire.decommission_approve(decommission=request(world), user=lead)
    # production is stopped first (environments go in name order), then staging's supervisor never answers.
    stop_all = running.stop_all

    def staging_unreachable(*, service: str, environment: str) -> None:
        if environment == "staging":
            raise RuntimeError("supervisord on staging did not answer")
        stop_all(service=service, environment=environment)

    running.stop_all = staging_unreachable  # type: ignore[method-assign]
    failed = run(decommission)

    assert failed.state == DecommissionState.FAILED
    assert failed.failed_step == DecommissionState.STOPPING
    assert "RuntimeError" in failed.failure_reason
    assert failed.progress["stopped"] == ["production"]
    with pytest.raises(Conflict, match="can no longer be cancelled"):
        retire.decommission_cancel(decommission=failed, user=world.owner)

    assert running.calls == ["stop_all:payments-api:production"]  # once, not on every retry
    running.stop_all = stop_all  # type: ignore[method-assign]
    running.calls.clear()
    retire.decommission_resume(decommission=failed, user=world.owner)
    done = run(failed)

    assert done.state == DecommissionState.DONE
    assert running.calls == ["stop_all:payments-api:staging"]  # production was not asked again


def test_the_api_requests_approves_and_lists(world, lead, running, api_client) -> None:
    url = reverse("api:decommission-list")
    api_client.force_authenticate(world.outsider)
    body = {"service": "payments-api", "reason": REASON, "planned_for": timezone.localdate().isoformat()}
    assert api_client.post(url, body, format="json").status_code == 403

    Dependency.objects.create(source=service_make(owner=world.other_team, slug="checkout-web"), target=world.service)
    api_client.force_authenticate(world.owner)
    blocked = api_client.post(url, body, format="json")
    assert blocked.status_code == 400 and "checkout-web" in blocked.json()["service"][0]
    Dependency.objects.all().delete()

    created = api_client.post(url, body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert api_client.post(url, body, format="json").status_code == 409
    assert api_client.post(reverse("api:decommission-approve", args=[pk])).status_code == 403  # own request

    api_client.force_authenticate(lead)
    approved = api_client.post(reverse("api:decommission-approve", args=[pk]))
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    run(Decommission.objects.get(pk=pk))
    detail = api_client.get(reverse("api:decommission-detail", args=[pk])).json()
    assert detail["state"] == "done"
    assert [event["step"] for event in detail["events"] if event["from_state"]][-1] == "done"


def test_a_retired_service_is_a_read_only_record(world, lead, running, client) -> None:
    run(retire.decommission_approve(decommission=request(world), user=lead))
    service = Service.objects.get(pk=world.service.pk)
    with pytest.raises(ValidationError, match="read-only"):
        catalog_services.service_update(service=service, updated_by=world.staff, description="changed")

    client.force_login(world.staff)
    page = client.get(service.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert "Decommissioned" in html
    assert reverse("deployments:deploy", args=[service.slug]) not in html


def test_the_lifecycle_cannot_be_edited_into_retirement(world) -> None:
    with pytest.raises(ValidationError) as refused:
        catalog_services.service_update(
            service=world.service, updated_by=world.owner, lifecycle=Service.Lifecycle.DECOMMISSIONED
        )
    assert "decommission workflow" in refused.value.message_dict["lifecycle"][0]


def test_the_pages_walk_an_owner_and_a_lead_through_it(world, lead, running, client) -> None:
    new = reverse("deployments:decommission-new", args=["payments-api"])
    client.force_login(world.outsider)
    assert client.get(new).status_code == 403

    Dependency.objects.create(source=service_make(owner=world.other_team, slug="checkout-web"), target=world.service)
    client.force_login(world.owner)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert new in page  # the owner sees the way in
    blocked = client.get(new).content.decode()
    assert "checkout-web" in blocked and "disabled" in blocked
    refused = client.post(new, {"reason": REASON, "planned_for": timezone.localdate().isoformat()})
    assert refused.status_code == 400 and "checkout-web" in refused.content.decode()
    Dependency.objects.all().delete()

    asked = client.post(new, {"reason": REASON, "planned_for": timezone.localdate().isoformat()})
    decommission = Decommission.objects.get()
    assert asked.status_code == 302 and asked["Location"] == decommission.get_absolute_url()
    approve = reverse("deployments:decommission-control", args=[decommission.pk, "approve"])
    assert approve not in client.get(decommission.get_absolute_url()).content.decode()  # not for the requester

    client.force_login(lead)
    page = client.get(decommission.get_absolute_url()).content.decode()
    assert approve in page and 'hx-confirm="Approve decommissioning payments-api? It is stopped in every' in page
    asked = client.post(approve)  # not confirmed (no JavaScript, so no dialog): a page asks first
    assert asked.status_code == 200 and 'name="confirmed" value="yes"' in asked.content.decode()
    assert Decommission.objects.get().state == DecommissionState.REQUESTED
    client.post(approve, {"confirmed": "yes"})
    assert run(decommission).state == DecommissionState.DONE
    with_timeline = client.get(decommission.get_absolute_url()).content.decode()
    assert "Stopped in production, staging" in with_timeline and "permissions revoked" in with_timeline
    listing = client.get(reverse("deployments:decommissions")).content.decode()
    assert decommission.get_absolute_url() in listing
    record = client.get(world.service.get_absolute_url()).content.decode()
    assert "Stopped in every environment when it was decommissioned" in record
    assert "not deployed" not in record and reverse("deployments:deploy", args=["payments-api"]) not in record


def test_the_decommission_page_reads_in_few_queries(
    world, lead, running, client, django_assert_max_num_queries
) -> None:
    decommission = run(retire.decommission_approve(decommission=request(world), user=lead))
    client.force_login(lead)
    with django_assert_max_num_queries(12):
        assert client.get(decommission.get_absolute_url()).status_code == 200


def test_each_step_reports_what_it_did_under_its_own_badge(world, lead, running, repo, client) -> None:
    """The timeline once put "Stopped in …" under "Archiving the repository", one step late."""
    done = run(retire.decommission_approve(decommission=request(world), user=lead))

    said = [(event.step, event.message) for event in done.events.all()]
    assert ("approved", "Checks passed again.") in said
    assert ("stopping", "Stopped in production, staging.") in said
    assert any(step == "archiving" and message.startswith("Repository archived") for step, message in said)
    assert any(step == "revoking" and "permissions revoked" in message for step, message in said)

    client.force_login(lead)
    page = client.get(done.get_absolute_url()).content.decode()
    timeline = page[page.index('id="timeline-heading"') :]
    badges = {label: timeline.index(f">{label}</span>") for label in (
        "Approved", "Stopping environments", "Archiving the repository", "Revoking permissions", "Decommissioned"
    )}  # fmt: skip
    assert list(badges.values()) == sorted(badges.values())  # in the order of the workflow
    for text, badge, following in (
        ("Checks passed again.", "Approved", "Stopping environments"),
        ("Stopped in production, staging.", "Stopping environments", "Archiving the repository"),
        ("Repository archived", "Archiving the repository", "Revoking permissions"),
        ("permissions revoked", "Revoking permissions", "Decommissioned"),
    ):
        assert badges[badge] < timeline.index(text) < badges[following], text


def test_the_approval_names_what_the_approver_is(world, lead, client) -> None:
    """A platform admin who approves is named as an admin, not as "a lead of Payments"."""
    by_admin = retire.decommission_approve(decommission=request(world), user=world.staff)
    client.force_login(world.owner)
    page = client.get(by_admin.get_absolute_url()).content.decode()
    assert "Approved by stella, a platform admin" in page
    assert "lead of Payments — stella" not in page

    retire.decommission_cancel(decommission=by_admin, user=world.owner)
    by_lead = retire.decommission_approve(decommission=request(world), user=lead)
    page = client.get(by_lead.get_absolute_url()).content.decode()
    assert "Approved by liam, a lead of Payments" in page


def test_a_pending_approval_says_who_may_give_it(world, client) -> None:
    client.force_login(world.owner)
    page = client.get(request(world).get_absolute_url()).content.decode()
    assert "Approval by a lead of Payments or a platform admin" in page


def test_only_approvers_get_the_approval_confirmation(world, client) -> None:
    decommission = request(world)
    client.force_login(world.outsider)
    approve = reverse("deployments:decommission-control", args=[decommission.pk, "approve"])
    assert client.post(approve).status_code == 403


def test_finished_decommissions_are_paged(world, client, django_assert_max_num_queries) -> None:
    """The list showed the latest 25 finished ones and no way to older ones."""
    for n in range(30):
        service = service_make(owner=world.owner_team, slug=f"old-{n}")
        Decommission.objects.create(
            service=service, reason=REASON, planned_for=timezone.localdate(), requested_by=world.owner,
            state=DecommissionState.CANCELLED, finished_at=timezone.now() - timedelta(minutes=n),
        )  # fmt: skip
    client.force_login(world.outsider)
    with django_assert_max_num_queries(8):
        first = client.get(reverse("deployments:decommissions")).content.decode()
    second = client.get(reverse("deployments:decommissions"), {"page": 2}).content.decode()
    assert "Page 1 of 2" in first and ">old-0<" in first and ">old-29<" not in first
    assert ">old-29<" in second and ">old-0<" not in second


def test_stopping_pauses_the_services_health_checks_which_could_only_fail(world, lead, running, staging, production):
    from monitoring.models import HealthCheck

    probing = HealthCheck.objects.create(service=world.service, environment=staging, url="http://a.example/healthz")
    HealthCheck.objects.create(service=world.service, environment=production, url="http://b.example/", enabled=False)
    other = service_make(owner=world.owner_team, slug="ledger")
    elsewhere = HealthCheck.objects.create(service=other, environment=staging, url="http://c.example/healthz")
    decommission = request(world)
    retire.decommission_approve(decommission=decommission, user=lead)
    done = run(decommission)

    assert done.state == DecommissionState.DONE
    assert not HealthCheck.objects.filter(service=world.service, enabled=True).exists()
    assert HealthCheck.objects.get(pk=elsewhere.pk).enabled  # another service's checks are not touched
    stopped = done.events.get(message__startswith="Stopped in")
    assert stopped.message == "Stopped in production, staging. 1 health check paused: nothing runs to probe."
    paused = AuditEvent.objects.get(action="health_check.updated")
    assert paused.object_id == str(probing.pk) and paused.actor_repr == "runway"
    assert (paused.before["enabled"], paused.after["enabled"]) == (True, False)
