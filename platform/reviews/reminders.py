"""Email reminders about review items: a few days before the due date, every day once overdue, and to the platform
admins once an item is long overdue. A reminder is claimed by inserting its (item, day) row: the unique constraint
lets exactly one of any number of beat ticks or workers send it. A letter the mail server refuses is logged and not
retried that day (retrying would send the others' letters twice); the next day's reminder follows as usual."""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from reviews.models import Campaign, Item, Reminder
from reviews.permissions import ANSWERING_ROLES
from teams.models import Membership

log = logging.getLogger(__name__)


@dataclass
class Letter:
    """Everything one person is reminded of today, sent as one email."""

    user: User
    lines: list[str] = field(default_factory=list)


def _kind(item: Item, today: date) -> str:
    if item.due_on >= today:
        return Reminder.Kind.DUE_SOON
    if (today - item.due_on).days >= settings.REVIEWS["ESCALATE_AFTER_DAYS"]:
        return Reminder.Kind.ESCALATION
    return Reminder.Kind.OVERDUE


def _claim(candidates: list[tuple[int, str]], today: date) -> set[int]:
    """Insert a reminder row per (item, kind) unless one exists for that item today; the item ids this call inserted.
    One statement (ON CONFLICT DO NOTHING RETURNING, PostgreSQL and SQLite ≥ 3.35), committed at once."""
    claimed: set[int] = set()
    table = Reminder._meta.db_table
    now = timezone.now()
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        values = ", ".join(["(%s, %s, %s, 0, %s)"] * len(chunk))
        params: list[Any] = []
        for item_id, kind in chunk:
            params += [item_id, today, kind, now]
        sql = (
            f"INSERT INTO {table} (item_id, day, kind, recipients, created_at) VALUES {values} "  # noqa: S608 - names are ours
            "ON CONFLICT (item_id, day) DO NOTHING RETURNING item_id"
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            claimed.update(row[0] for row in cursor.fetchall())
    return claimed


def _assignees(team_ids: set[int]) -> dict[int, list[User]]:
    """Active leads and maintainers with an email address, per team."""
    people: dict[int, list[User]] = defaultdict(list)
    memberships = Membership.objects.filter(
        team_id__in=team_ids, role__in=ANSWERING_ROLES, user__is_active=True
    ).select_related("user")
    for membership in memberships.exclude(user__email=""):
        people[membership.team_id].append(membership.user)
    return people


def _admins() -> list[User]:
    return list(User.objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk"))


def reminders_send(*, today: date | None = None) -> dict[str, int]:
    """Send today's reminders: each item once per day at most, whoever else is sending. Returns counts."""
    today = today or timezone.localdate()
    before = settings.REVIEWS["REMIND_DAYS_BEFORE"]
    due = (
        Item.objects.filter(
            status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN, due_on__lte=today + timedelta(days=before)
        )
        .exclude(reminders__day=today)
        .select_related("service", "service__owner", "campaign")
        .order_by("pk")
    )
    items = {item.pk: item for item in due}
    claimed = _claim([(item.pk, _kind(item, today)) for item in items.values()], today)
    if not claimed:
        return {"items": 0, "emails": 0}
    mine = [items[pk] for pk in sorted(claimed)]
    assignees = _assignees({item.service.owner_id for item in mine})
    admins = _admins()
    letters: dict[int, Letter] = {}
    reached: dict[int, set[int]] = defaultdict(set)
    for item in mine:
        kind = _kind(item, today)
        to_team = item.audience == Item.Audience.TEAM
        people = list(assignees.get(item.service.owner_id, [])) if to_team else []
        if kind == Reminder.Kind.ESCALATION or not to_team or not people:
            people += admins  # long overdue, addressed to the admins, or nobody on the team can answer
        url = f"{settings.PORTAL_URL}{item.get_absolute_url()}"
        if kind == Reminder.Kind.DUE_SOON:
            state = f"due {item.due_on:%d %b %Y}"
        elif kind == Reminder.Kind.OVERDUE:
            state = f"overdue since {item.due_on:%d %b %Y}"
        else:
            state = f"overdue since {item.due_on:%d %b %Y}, escalated to the platform admins"
        for person in people:
            letter = letters.setdefault(person.pk, Letter(user=person))
            letter.lines.append(
                f"- {item.service.name} ({item.service.owner}) in {item.campaign.title}: {state}\n  {url}"
            )
            reached[item.pk].add(person.pk)
    sent = 0
    for letter in letters.values():
        body = (
            f"Hello {letter.user.get_short_name() or letter.user.get_username()},\n\n"
            "These ownership reviews are waiting for an answer in Runway:\n\n"
            + "\n".join(letter.lines)
            + "\n\nAnswering takes a minute: confirm the owner, correct what is wrong, or hand the service over.\n"
        )
        try:
            send_mail(
                subject=f"[Runway] {len(letter.lines)} ownership review{'s' if len(letter.lines) != 1 else ''} waiting",
                message=body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[letter.user.email],  # one address per email: nobody sees another's address
            )
            sent += 1
        except Exception:  # noqa: BLE001 - a mail server down must not lose the other letters
            log.exception("review reminder to user %s not sent", letter.user.pk)
    with transaction.atomic():
        for item in mine:
            Reminder.objects.filter(item=item, day=today).update(recipients=len(reached[item.pk]))
        escalated = [item.pk for item in mine if _kind(item, today) == Reminder.Kind.ESCALATION]
        Item.objects.filter(pk__in=escalated, escalated_at__isnull=True).update(escalated_at=timezone.now())
    return {"items": len(mine), "emails": sent}
