"""Initiatives: progress per team and burn-up from the scores, reminders once per team and day (any number of
processes, never to deactivated users), the end report, pages and API with their permission matrix."""

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from scorecards import selectors, services, tasks
from scorecards.models import Initiative, InitiativeReminder
from teams.models import Membership
from techdocs.models import ADR, Runbook
from tests.factories import MembershipFactory, UserFactory, service_make


def production(owner, **fields):  # type: ignore[no-untyped-def]
    return service_make(owner=owner, lifecycle=Service.Lifecycle.PRODUCTION, **fields)


@pytest.fixture
def campaign(world, scorecard):  # type: ignore[no-untyped-def]
    """Payments: one service at Silver, one at Bronze; Search: one at no level. Target: Silver by next week."""
    silver = production(world.owner_team, slug="ledger", name="Ledger")
    Runbook.objects.create(service=silver, slug="restart", title="Restart")
    ADR.objects.create(service=silver, number=1, title="Use Postgres")
    bronze = production(world.owner_team, slug="payouts", name="Payouts")
    Runbook.objects.create(service=bronze, slug="restart", title="Restart")
    production(world.other_team, slug="search-api", name="Search API")
    services.scores_compute()
    lead = MembershipFactory(team=world.owner_team, user=UserFactory(username="lena", email="lena@example.com"),
                             role=Membership.Role.LEAD).user  # fmt: skip
    MembershipFactory(team=world.other_team, user=UserFactory(username="sam", email="sam@example.com"),
                      role=Membership.Role.MAINTAINER)  # fmt: skip
    initiative = services.initiative_create(
        user=world.staff, name="silver", title="Production services at Silver", scorecard=scorecard,
        target_rank=2, deadline=services.org_day(timezone.now()) + timedelta(days=3),
    )  # fmt: skip
    return initiative, lead


@pytest.mark.django_db
def test_progress_per_team_and_what_is_missing(world, campaign) -> None:  # type: ignore[no-untyped-def]
    initiative, _lead = campaign
    progress = selectors.initiative_progress(initiative=initiative)
    assert (progress.total, progress.met) == (3, 1)
    assert [(row.team_slug, row.met, row.total) for row in progress.teams] == [("search", 0, 1), ("payments", 1, 2)]
    missing = {row.service_slug: row.failing for row in progress.missing}
    assert missing == {"payouts": ["adr"], "search-api": ["runbook", "adr"]}  # Gold's rule is not the target's


@pytest.mark.django_db
def test_a_target_of_rules_and_a_scope(world, scorecard, campaign) -> None:  # type: ignore[no-untyped-def]
    rules = services.initiative_create(
        user=world.staff, name="runbooks", title="Runbooks for Payments", scorecard=scorecard, rule_keys=["runbook"],
        scope={"owner": "payments"}, deadline=services.org_day(timezone.now()),
    )  # fmt: skip
    progress = selectors.initiative_progress(initiative=rules)
    assert (progress.total, progress.met) == (2, 2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target_rank": 0}, "target_rank"),
        ({"target_rank": 2, "rule_keys": ["adr"]}, "target_rank"),
        ({"target_rank": 9}, "target_rank"),
        ({"target_rank": 0, "rule_keys": ["nope"]}, "rule_keys"),
        ({"scope": {"tier": 7}}, "scope"),
        ({"deadline": timezone.now().date() - timedelta(days=2)}, "deadline"),
    ],
)
def test_bad_initiatives_say_what_to_fix(world, scorecard, fields, field) -> None:  # type: ignore[no-untyped-def]
    arguments = {"user": world.staff, "name": "x", "title": "X", "scorecard": scorecard, "target_rank": 1,
                 "deadline": timezone.now().date() + timedelta(days=5), **fields}  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        services.initiative_create(**arguments)
    assert field in caught.value.message_dict


@pytest.mark.django_db
def test_reminders_go_once_per_team_and_day_to_active_leads_and_maintainers(world, campaign) -> None:  # type: ignore[no-untyped-def]
    initiative, lead = campaign
    retired = MembershipFactory(team=world.owner_team, user=UserFactory(username="gone", email="gone@example.com",
                                is_active=False), role=Membership.Role.LEAD).user  # fmt: skip
    world.owner.email = "olivia@example.com"  # a member, not a lead: not reminded
    world.owner.save()
    assert services.initiative_reminders_send() == 2  # Payments and Search, each once
    assert services.initiative_reminders_send() == 0  # a second tick the same day
    tasks.initiatives_tick()  # and beat's task
    assert len(mail.outbox) == 2
    sent = {tuple(message.to): message for message in mail.outbox}
    assert set(sent) == {("lena@example.com",), ("sam@example.com",)}
    assert all(retired.email not in message.to and "olivia@example.com" not in message.to for message in mail.outbox)
    body = sent[("lena@example.com",)].body
    assert "Payouts (payouts), now at Bronze" in body and "An ADR: f" in body and "Ledger" not in body
    assert "ends in 3 days" in body
    tomorrow = services.org_day(timezone.now()) + timedelta(days=1)
    assert services.initiative_reminders_send(today=tomorrow) == 2  # a new day, a new reminder
    assert InitiativeReminder.objects.filter(initiative=initiative).count() == 4


@pytest.mark.django_db
def test_no_reminder_before_the_window(world, campaign, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SCORECARDS = {**settings.SCORECARDS, "REMIND_DAYS_BEFORE": 1}
    assert services.initiative_reminders_send() == 0 and mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_two_processes_ticking_at_once_send_each_reminder_once(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    payouts = production(world.owner_team, slug="payouts", name="Payouts")
    services.scores_compute(service_ids=[payouts.pk])
    MembershipFactory(team=world.owner_team, user=UserFactory(username="lena", email="lena@example.com"),
                      role=Membership.Role.LEAD)  # fmt: skip
    services.initiative_create(user=world.staff, name="silver", title="Silver", scorecard=scorecard, target_rank=2,
                               deadline=services.org_day(timezone.now()))  # fmt: skip
    barrier = threading.Barrier(2)
    results: list[int] = []

    def tick() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.initiative_reminders_send())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert len(mail.outbox) == 1 and InitiativeReminder.objects.count() == 1


@pytest.mark.django_db
def test_an_initiative_ends_after_its_deadline_with_a_report_of_who_made_it(world, campaign) -> None:  # type: ignore[no-untyped-def]
    initiative, _lead = campaign
    assert services.initiatives_due_end() == 0  # not yet
    after = initiative.deadline + timedelta(days=1)
    assert services.initiatives_due_end(today=after) == 1
    initiative.refresh_from_db()
    assert initiative.ended_at is not None
    assert (initiative.report["met"], initiative.report["total"]) == (1, 3)
    assert {row["service"] for row in initiative.report["missed"]} == {"payouts", "search-api"}
    assert services.initiatives_due_end(today=after) == 0  # ending twice changes nothing
    assert services.initiative_reminders_send(today=initiative.deadline) == 0  # an ended initiative reminds nobody


@pytest.mark.django_db
def test_the_burnup_counts_services_there_day_by_day(world, campaign) -> None:  # type: ignore[no-untyped-def]
    initiative, _lead = campaign
    yesterday = timezone.now() - timedelta(days=1)
    services.scores_compute(at=yesterday)
    payouts = Service.objects.get(slug="payouts")
    ADR.objects.create(service=payouts, number=1, title="Use Kafka")
    services.scores_compute()
    series, total = selectors.initiative_burnup(initiative=initiative, today=services.org_day(timezone.now()))
    assert total == 3 and [value for _day, value in series] == [1, 2]


ROLES = ["member", "outsider", "staff", "anonymous"]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_permission_matrix(client, api_client, world, campaign, role) -> None:  # type: ignore[no-untyped-def]
    people = {"member": world.owner, "outsider": world.outsider, "staff": world.staff}
    if role != "anonymous":
        client.force_login(people[role])
        api_client.force_authenticate(people[role])
    read = 302 if role == "anonymous" else 200
    admin = {"member": 403, "outsider": 403, "staff": 200, "anonymous": 302}[role]
    assert client.get(reverse("scorecards:initiative-list")).status_code == read
    page = client.get(reverse("scorecards:initiative-detail", args=["silver"]))
    assert page.status_code == read
    if read == 200:
        assert "1 of 3 there" in page.content.decode() and "Payouts" in page.content.decode()
    assert client.get(reverse("scorecards:initiative-new")).status_code == admin
    assert client.get(reverse("scorecards:initiative-end", args=["silver"])).status_code == admin  # the confirm page
    form = {"name": "by-form", "title": "By form", "scorecard": "basics", "target_rank": "1",
            "deadline": (timezone.now().date() + timedelta(days=9)).isoformat()}  # fmt: skip
    response = client.post(reverse("scorecards:initiative-new"), form)
    assert response.status_code == {**{"member": 403, "outsider": 403, "anonymous": 302}, "staff": 302}[role]
    assert Initiative.objects.filter(name="by-form").exists() is (role == "staff")

    body = {"name": "by-api", "title": "By API", "scorecard": "basics", "rule_keys": ["adr"],
            "deadline": (timezone.now().date() + timedelta(days=9)).isoformat()}  # fmt: skip
    response = api_client.post("/api/v1/initiatives/", body, format="json")
    assert response.status_code == {"member": 403, "outsider": 403, "staff": 201, "anonymous": 401}[role]
    listed = api_client.get("/api/v1/initiatives/silver/")
    assert listed.status_code == (401 if role == "anonymous" else 200)
    if role != "anonymous":
        assert listed.json()["progress"]["met"] == 1 and listed.json()["target"] == "Silver on Basics"
    response = api_client.post("/api/v1/initiatives/silver/end/")
    assert response.status_code == {"member": 403, "outsider": 403, "staff": 200, "anonymous": 401}[role]
    assert Initiative.objects.get(name="silver").ended_at is not None if role == "staff" else True
    response = client.post(reverse("scorecards:initiative-end", args=["silver"]), {"confirmed": "yes"})
    assert response.status_code == {**{"member": 403, "outsider": 403, "anonymous": 302}, "staff": 302}[role]
    assert (Initiative.objects.get(name="silver").ended_at is not None) is (role == "staff")


@pytest.mark.django_db
def test_the_api_refuses_bad_initiatives_with_field_errors(api_client, world, campaign) -> None:  # type: ignore[no-untyped-def]
    api_client.force_authenticate(world.staff)
    body = {"name": "silver", "title": "Again", "scorecard": "basics", "target_rank": 1, "rule_keys": ["adr"],
            "deadline": "2000-01-01", "scope": {"colour": "red"}}  # fmt: skip
    response = api_client.post("/api/v1/initiatives/", body, format="json")
    assert response.status_code == 400
    assert {"target_rank", "deadline", "scope"} <= set(response.json())
    body = {"name": "silver", "title": "Again", "scorecard": "basics", "target_rank": 1, "deadline": "2099-01-01"}
    response = api_client.post("/api/v1/initiatives/", body, format="json")
    assert response.status_code == 400 and "name" in response.json()
