"""Email reminders: before the due date, overdue, escalated to the platform admins; never to a deactivated user;
never twice for the same item and day, with two beat ticks and two real Celery workers sending at once."""

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import TestWorkController, start_worker
from django.core import mail
from django.db import connection
from django.utils import timezone

from portal.celery import app
from reviews import reminders, services, tasks
from reviews.models import Item, Reminder
from tests.factories import service_make

RESULT_TIMEOUT = 30


def _due_in(campaign, days: int) -> None:  # type: ignore[no-untyped-def]
    campaign.items.update(due_on=timezone.localdate() + timedelta(days=days))


def _to(message) -> str:  # type: ignore[no-untyped-def]
    assert len(message.to) == 1  # one address per email: nobody sees another's
    return message.to[0]


@pytest.mark.django_db
def test_a_reminder_before_the_due_date_goes_to_the_leads_once_a_day(campaign, leads, mailoutbox):
    _due_in(campaign, 2)  # within REVIEW_REMIND_DAYS_BEFORE (3)
    assert reminders.reminders_send() == {"items": 1, "emails": 1}
    assert reminders.reminders_send() == {"items": 0, "emails": 0}  # a second beat tick the same day
    assert [_to(m) for m in mailoutbox] == ["lena@example.com"]
    assert "Payments API" in mailoutbox[0].body and "due " in mailoutbox[0].body
    assert f"/reviews/items/{Item.objects.get(campaign=campaign).pk}/" in mailoutbox[0].body
    tomorrow = timezone.localdate() + timedelta(days=1)
    assert reminders.reminders_send(today=tomorrow)["emails"] == 1  # the next day, again
    assert Reminder.objects.filter(item__campaign=campaign).count() == 2


@pytest.mark.django_db
def test_nothing_is_sent_far_from_the_due_date_or_for_an_answered_item(campaign, leads, mailoutbox):
    _due_in(campaign, 10)
    assert reminders.reminders_send()["items"] == 0
    _due_in(campaign, 1)
    item = Item.objects.select_related("service", "campaign").get(campaign=campaign)
    services.item_answer(item=item, answered_by=leads.lead, answer=services.Answer())
    assert reminders.reminders_send()["items"] == 0
    assert mailoutbox == []


@pytest.mark.django_db
def test_overdue_then_escalated_to_the_admins_never_to_a_deactivated_user(campaign, leads, mailoutbox, settings):
    leads.staff.email = "stella@example.com"
    leads.staff.save()
    _due_in(campaign, -2)
    reminders.reminders_send()
    assert [_to(m) for m in mailoutbox] == ["lena@example.com"]
    assert "overdue since" in mailoutbox[0].body
    mailoutbox.clear()
    _due_in(campaign, -settings.REVIEWS["ESCALATE_AFTER_DAYS"])
    leads.lead.is_active = False  # also orphans Payments' services: that admin item is reminded too
    leads.lead.save()
    reminders.reminders_send(today=timezone.localdate() + timedelta(days=1))
    recipients = sorted(_to(m) for m in mailoutbox)
    assert recipients == ["stella@example.com"]  # lena is deactivated; the escalation reaches the admins
    assert "escalated to the platform admins" in mailoutbox[0].body
    assert Item.objects.get(campaign=campaign).escalated_at is not None


@pytest.mark.django_db
def test_another_teams_address_never_appears_in_a_letter(leads, mailoutbox):
    search_api = service_make(owner=leads.other_team, slug="search-api")
    campaign = services.campaign_open(
        opened_by=leads.staff, title="All", scope={}, due_on=timezone.localdate() + timedelta(days=1)
    )
    assert campaign.items.count() == 2
    reminders.reminders_send()
    letters = {_to(m): m.body for m in mailoutbox}
    assert set(letters) == {"lena@example.com", "sam@example.com"}
    assert search_api.name not in letters["lena@example.com"] and "sam@" not in letters["lena@example.com"]
    assert "Payments API" not in letters["sam@example.com"]


@pytest.fixture(scope="module")
def worker(django_db_blocker) -> Iterator[TestWorkController]:  # type: ignore[no-untyped-def]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60) as controller:
        yield controller


@pytest.mark.django_db(transaction=True)
def test_two_beat_ticks_on_two_workers_send_each_reminder_once(worker, leads, mailoutbox):
    for n in range(5):
        service_make(owner=leads.owner_team, slug=f"pay-{n}")
    services.campaign_open(
        opened_by=leads.staff, title="All", scope={}, due_on=timezone.localdate() + timedelta(days=1)
    )
    # Two beats tick twice each: two deliveries go through the broker to a real worker, and two run at the same
    # moment in threads with database connections of their own, as a second worker process would. (Two Celery
    # workers in one test process do not shut down reliably; the claim is the database's, whoever runs it.)
    results = [tasks.send_reminders.delay() for _ in range(2)]
    direct: list[dict] = []  # type: ignore[type-arg]
    start = threading.Barrier(2)

    def tick() -> None:
        try:
            start.wait(timeout=10)
            direct.append(tasks.send_reminders())
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=RESULT_TIMEOUT)
    outcomes = [result.get(timeout=RESULT_TIMEOUT) for result in results] + direct
    assert len(outcomes) == 4
    assert sum(outcome["items"] for outcome in outcomes) == 6  # every item claimed by exactly one delivery
    assert Reminder.objects.count() == 6
    lena_letters = [m for m in mail.outbox if _to(m) == "lena@example.com"]
    reminded = sum(m.body.count("/reviews/items/") for m in lena_letters)
    assert reminded == 6  # each of the six items once, however the deliveries split them
