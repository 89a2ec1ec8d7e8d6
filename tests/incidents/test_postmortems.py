"""Postmortems: made for SEV1/SEV2 as they are mitigated, the timeline pre-filled, blameless factors, the review
flow, published ones in search, lessons to ADRs and runbooks, and action items only their team closes."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from incidents import postmortems, services
from incidents.models import ActionItem, Postmortem
from portal import search
from portal.errors import Conflict
from techdocs.models import ADR, Runbook
from tests.incidents.conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def postmortem(world, shipped, incident):  # type: ignore[no-untyped-def]
    services.incident_link(incident=incident, deployment=shipped[1], relation="cause", user=world.owner)
    services.incident_update(incident=incident, user=world.owner, status="mitigated", at=T0 + timedelta(minutes=20))
    return Postmortem.objects.get(incident=incident)


def test_a_sev2_gets_a_draft_when_mitigated_with_its_timeline_filled_in(world, shipped, postmortem) -> None:
    assert postmortem.state == Postmortem.State.DRAFT
    lines = postmortem.timeline.splitlines()
    assert any(f"Deployment #{shipped[1].pk}: payments-api" in line for line in lines)
    assert any(line.endswith("Mitigated.") for line in lines) and "Incident starts (SEV2)." in postmortem.timeline
    assert "never a person" in postmortem.contributing_factors


def test_a_sev4_gets_none_unless_someone_starts_it(world) -> None:
    minor = services.incident_declare(title="Typo", severity="SEV4", services=[world.service], created_by=world.owner)
    services.incident_update(incident=minor, user=world.owner, status="resolved")
    assert not Postmortem.objects.filter(incident=minor).exists()
    assert postmortems.postmortem_start(incident=minor, user=world.owner).incident_id == minor.pk


def test_naming_a_person_as_a_cause_is_refused(world, postmortem) -> None:
    world.owner.first_name, world.owner.last_name = "Olivia", "Hart"
    world.owner.save()
    for text in ("- olivia deployed without checking", "- Olivia Hart pushed the change"):
        with pytest.raises(ValidationError) as refused:
            postmortems.postmortem_save(postmortem=postmortem, user=world.owner, contributing_factors=text)
        assert "names a person" in str(refused.value)
    saved = postmortems.postmortem_save(
        postmortem=postmortem, user=world.owner, contributing_factors="- The canary analysed 40 requests only"
    )
    assert saved.contributing_factors.startswith("- The canary")


def test_review_and_publish_then_it_is_frozen_and_found_by_search(world, postmortem) -> None:
    with pytest.raises(Conflict):
        postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="published")
    postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="in_review")
    with pytest.raises(ValidationError):  # no summary, impact or factors yet
        postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="published")
    assert not [g for g in search.search(query="saturated") if g.kind == "postmortems"]
    postmortems.postmortem_save(
        postmortem=postmortem,
        user=world.owner,
        summary="The ledger pool saturated.",
        impact="12 % of payments failed",
        contributing_factors="- Pool size fixed at 10",
    )
    postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="published")
    with pytest.raises(Conflict):
        postmortems.postmortem_save(postmortem=postmortem, user=world.owner, summary="changed")
    (group,) = [g for g in search.search(query="saturated ledger") if g.kind == "postmortems"]
    assert group.hits[0].url == postmortem.get_absolute_url()


def test_a_lesson_becomes_an_adr_and_a_runbook_section(world, postmortem) -> None:
    lesson = postmortems.lesson_add(postmortem=postmortem, user=world.owner, text="Size pools from load tests")
    postmortems.lesson_to_adr(lesson=lesson, user=world.owner, service=world.service)
    adr = ADR.objects.get(service=world.service)
    assert adr.title == "Size pools from load tests" and f"INC-{postmortem.incident_id}" in adr.context
    postmortems.lesson_to_runbook(lesson=lesson, user=world.owner, service=world.service)
    runbook = Runbook.objects.get(service=world.service)
    assert "## Lesson from INC-" in runbook.body
    with pytest.raises(Conflict):
        postmortems.lesson_to_adr(lesson=lesson, user=world.owner, service=world.service)


def test_only_the_owner_team_closes_an_action_item(client, world, postmortem) -> None:
    item = postmortems.action_add(
        postmortem=postmortem,
        user=world.owner,
        title="Alert on pool use",
        owner_team=world.other_team,
        due_date=date(2026, 1, 1),
    )
    for person in (world.owner, world.staff):  # the incident's owner and a platform admin are not the team
        with pytest.raises(PermissionDenied):
            postmortems.action_set_status(item=item, user=person, status="done")
    postmortems.action_set_status(item=item, user=world.outsider, status="done")
    assert ActionItem.objects.get(pk=item.pk).closed_by == world.outsider


def test_overdue_items_show_on_the_team_page(client, world, postmortem) -> None:
    postmortems.action_add(
        postmortem=postmortem,
        user=world.owner,
        title="Alert on pool use",
        owner_team=world.owner_team,
        due_date=date(2020, 1, 1),
    )
    client.force_login(world.outsider)
    page = client.get(reverse("teams:team-detail", args=[world.owner_team.slug]))
    assert b"Alert on pool use" in page.content and b"1 overdue" in page.content


ROLES = ["owner", "outsider", "staff", "anonymous"]
WRITE = {"owner": 302, "outsider": 403, "staff": 302, "anonymous": 302}


def _login(client, world, role):  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


@pytest.mark.parametrize("role", ROLES)
def test_postmortem_routes_permission_matrix(client, world, postmortem, role) -> None:
    _login(client, world, role)
    pk = postmortem.incident_id
    read = {"owner": 200, "outsider": 200, "staff": 200, "anonymous": 302}[role]
    assert client.get(reverse("incidents:postmortem", args=[pk])).status_code == read
    assert client.get(reverse("incidents:postmortems")).status_code == read
    edit = client.post(
        reverse("incidents:postmortem", args=[pk]),
        {"summary": f"by {role}", "impact": "", "timeline": "", "contributing_factors": "", "went_well": ""},
    )
    assert edit.status_code == WRITE[role]
    assert (Postmortem.objects.get(pk=postmortem.pk).summary == f"by {role}") is (
        WRITE[role] == 302 and role != "anonymous"
    )
    lesson = client.post(reverse("incidents:lesson-add", args=[pk]), {"text": f"lesson {role}"})
    assert lesson.status_code == WRITE[role]
    action = client.post(
        reverse("incidents:action-add", args=[pk]),
        {"title": f"do {role}", "owner_team": world.owner_team.slug, "due_date": "2030-01-01"},
    )
    assert action.status_code == WRITE[role]
    state = client.post(reverse("incidents:postmortem-state", args=[pk, "in_review"]))
    assert state.status_code == WRITE[role]
    allowed = WRITE[role] == 302 and role != "anonymous"
    assert postmortem.lessons.filter(text=f"lesson {role}").exists() is allowed
    assert postmortem.actions.filter(title=f"do {role}").exists() is allowed


@pytest.mark.parametrize("role", ROLES)
def test_lesson_to_documents_needs_the_service_owner(client, world, postmortem, role) -> None:
    lesson = postmortems.lesson_add(postmortem=postmortem, user=world.owner, text="Load-test pools")
    _login(client, world, role)
    url = reverse("incidents:lesson-document", args=[postmortem.incident_id, lesson.pk, "adr"])
    response = client.post(url, {"service": world.service.slug})
    assert response.status_code == WRITE[role]
    assert ADR.objects.exists() is (WRITE[role] == 302 and role != "anonymous")


@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("outsider", 403), ("staff", 403), ("anonymous", 302)])
def test_action_status_route(client, world, postmortem, role, expected) -> None:
    item = postmortems.action_add(
        postmortem=postmortem, user=world.owner, title="x", owner_team=world.owner_team, due_date=date(2030, 1, 1)
    )
    _login(client, world, role)
    response = client.post(
        reverse("incidents:action-status", args=[postmortem.incident_id, item.pk]), {"status": "done"}
    )
    assert response.status_code == expected
    assert (ActionItem.objects.get(pk=item.pk).status == "done") is (role == "owner")


def test_markdown_is_sanitised_on_the_page(client, world, postmortem) -> None:
    postmortems.postmortem_save(
        postmortem=postmortem,
        user=world.owner,
        summary="**bold**\n\n<script>alert(1)</script>",
        impact="x",
        contributing_factors="- pool",
    )
    postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="in_review")
    postmortems.postmortem_transition(postmortem=postmortem, user=world.owner, state="published")
    client.force_login(world.outsider)
    page = client.get(postmortem.get_absolute_url()).content.decode()
    at = page.find("<script>alert")
    assert at < 0, page[at - 300 : at + 100]
    assert "<strong>bold</strong>" in page
