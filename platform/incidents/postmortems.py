"""Writes for blameless postmortems: start one (its timeline pre-filled from the incident and the deployments around
it), edit it, move it draft → in review → published, record lessons and turn one into an ADR or a runbook change
(through techdocs' services), and track action items that only their owner team closes.

Blameless: contributing factors are conditions and systems; a text that names a person involved in the incident
(their username or full name) is refused with a message saying so.
"""

import re
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from deployments.models import Deployment
from incidents.models import ActionItem, Incident, Lesson, Postmortem
from portal.errors import Conflict
from teams.models import Membership, Team

FIELDS = ["summary", "impact", "timeline", "contributing_factors", "went_well"]
TRANSITIONS = {
    Postmortem.State.DRAFT: [Postmortem.State.IN_REVIEW],
    Postmortem.State.IN_REVIEW: [Postmortem.State.DRAFT, Postmortem.State.PUBLISHED],
    Postmortem.State.PUBLISHED: [],
}
CONTRIBUTING_TEMPLATE = (
    "<!-- Blameless: name conditions, systems and gaps, never a person as a cause. "
    "Ask 'what made this possible?', not 'who did it?'. -->\n- "
)


def postmortem_required(incident: Incident) -> bool:
    return incident.severity in settings.INCIDENTS["POSTMORTEM_SEVERITIES"]


def _service_id(incident: Incident) -> int | None:
    return min((s.pk for s in incident.services.all()), default=None)


def _timeline(incident: Incident) -> str:
    """The incident's timeline and the production deployments of its services from two hours before its start to an
    hour after its mitigation, in time order, as a Markdown list (UTC)."""
    start = incident.started_at - timedelta(hours=2)
    end = (incident.mitigated_at or incident.resolved_at or timezone.now()) + timedelta(hours=1)
    entries: list[tuple[Any, str]] = [(incident.started_at, f"Incident starts ({incident.severity}).")]
    for update in incident.updates.order_by("created_at", "pk"):
        status = f" [{update.get_status_display()}]" if update.status else ""
        entries.append((update.created_at, f"{update.author_repr}{status}: {update.message}"))
    deployments = (
        Deployment.objects.filter(
            service__in=incident.services.all(), environment__protected=True, created_at__gte=start, created_at__lte=end
        )
        .select_related("service", "release", "environment")
        .order_by("created_at")[:50]
    )
    for deployment in deployments:
        began = deployment.started_at or deployment.created_at
        entries.append(
            (
                began,
                f"Deployment #{deployment.pk}: {deployment.service.slug} {deployment.release.version} to "
                f"{deployment.environment.slug}, {deployment.get_state_display().lower()}.",
            )
        )
    for reached, label in ((incident.mitigated_at, "Mitigated."), (incident.resolved_at, "Resolved.")):
        if reached:
            entries.append((reached, label))
    entries.sort(key=lambda entry: entry[0])
    return "\n".join(f"- {moment:%Y-%m-%d %H:%M} UTC — {text}" for moment, text in entries)


@transaction.atomic
def postmortem_start(*, incident: Incident, user: User | None) -> Postmortem:
    """The incident's postmortem, made as a draft with its timeline filled in if it has none yet."""
    existing = Postmortem.objects.filter(incident=incident).first()
    if existing is not None:
        return existing
    postmortem = Postmortem.objects.create(
        incident=incident,
        author=user,
        summary=incident.summary,
        timeline=_timeline(incident),
        contributing_factors=CONTRIBUTING_TEMPLATE,
    )
    audit.event_record(actor=user, action="postmortem.started", target=postmortem, service_id=_service_id(incident))
    return postmortem


def _people(incident: Incident) -> set[str]:
    """The names of people involved, as they could be written: usernames and full names."""
    users = User.objects.filter(
        pk__in=[
            *[pk for pk in (incident.commander_id, incident.created_by_id) if pk],
            *incident.updates.exclude(author=None).values_list("author_id", flat=True),
            *Deployment.objects.filter(incident_links__incident=incident)
            .exclude(requested_by=None)
            .values_list("requested_by_id", flat=True),
            *Membership.objects.filter(team__services__in=incident.services.all()).values_list("user_id", flat=True),
        ]
    )
    names = set()
    for user in users:
        if len(user.username) >= 3:
            names.add(user.username)
        if user.get_full_name().strip() and " " in user.get_full_name().strip():
            names.add(user.get_full_name().strip())
    return names


def blame_check(*, incident: Incident, text: str) -> None:
    """Refuse contributing factors that name a person involved: causes are conditions, not people."""
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    for name in sorted(_people(incident)):
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text, flags=re.I):
            raise ValidationError(
                {
                    "contributing_factors": [
                        f"A contributing factor names a person ({name}). Blameless postmortems name conditions and "
                        "systems: what made the mistake possible, and what would have caught it."
                    ]
                }
            )


def _editable(postmortem: Postmortem) -> None:
    if postmortem.state == Postmortem.State.PUBLISHED:
        raise Conflict("This postmortem is published; it no longer changes.")


@transaction.atomic
def postmortem_save(*, postmortem: Postmortem, user: User, **fields: str) -> Postmortem:
    locked = Postmortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    _editable(locked)
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed here."] for name in sorted(unknown)})
    from techdocs.markdown import LimitError, limits_check

    for name, value in fields.items():
        try:
            limits_check(text=value)
        except LimitError as error:
            raise ValidationError({name: [str(error)]}) from None
        setattr(locked, name, value)
    if "contributing_factors" in fields:
        blame_check(incident=locked.incident, text=locked.contributing_factors)
    locked.full_clean(exclude=["incident", "author"])
    locked.save()
    audit.event_record(
        actor=user,
        action="postmortem.edited",
        target=locked,
        after={"fields": sorted(fields)},
        service_id=_service_id(locked.incident),
    )
    return locked


@transaction.atomic
def postmortem_transition(*, postmortem: Postmortem, user: User, state: str) -> Postmortem:
    """Draft → in review → published (or back to draft from review). Publishing needs a summary, the impact and the
    contributing factors, and freezes the document."""
    locked = Postmortem.objects.select_for_update().select_related("incident").get(pk=postmortem.pk)
    if state not in TRANSITIONS[Postmortem.State(locked.state)]:
        raise Conflict(
            f"A postmortem {locked.get_state_display().lower()} cannot become "
            f"{dict(Postmortem.State.choices).get(state, state).lower()}."
        )
    if state == Postmortem.State.PUBLISHED:
        factors = re.sub(r"<!--.*?-->", "", locked.contributing_factors, flags=re.S).strip(" -\n")
        missing = [
            label
            for label, value in (
                ("summary", locked.summary),
                ("impact", locked.impact),
                ("contributing factors", factors),
            )
            if not value.strip()
        ]
        if missing:
            raise ValidationError({"state": [f"Write the {', '.join(missing)} before publishing."]})
        blame_check(incident=locked.incident, text=locked.contributing_factors)
        locked.published_at = timezone.now()
    before = locked.state
    locked.state = state
    locked.save(update_fields=["state", "published_at", "updated_at"])
    audit.event_record(
        actor=user,
        action=f"postmortem.{state}",
        target=locked,
        before={"state": before},
        after={"state": state},
        service_id=_service_id(locked.incident),
    )
    return locked


@transaction.atomic
def lesson_add(*, postmortem: Postmortem, user: User, text: str) -> Lesson:
    _editable(postmortem)
    lesson = Lesson(postmortem=postmortem, text=text.strip())
    lesson.full_clean(exclude=["postmortem"])
    lesson.save()
    audit.event_record(actor=user, action="postmortem.lesson_added", target=postmortem, after={"lesson": text[:200]})
    return lesson


def _lesson_body(lesson: Lesson) -> str:
    incident = lesson.postmortem.incident
    return f"From the postmortem of INC-{incident.pk} ({incident.title}): {lesson.text}"


@transaction.atomic
def lesson_to_adr(*, lesson: Lesson, user: User, service: Service) -> Lesson:
    """A proposed ADR on the service, whose context is the lesson and the incident it came from."""
    from techdocs import services as techdocs

    if lesson.adr_id:
        raise Conflict("This lesson already became an ADR.")
    adr = techdocs.adr_create(
        created_by=user,
        service=service,
        title=lesson.text[:200],
        context=_lesson_body(lesson),
        decision="To be decided: what the team will do differently.",
    )
    lesson.adr = adr
    lesson.save(update_fields=["adr"])
    return lesson


@transaction.atomic
def lesson_to_runbook(*, lesson: Lesson, user: User, service: Service) -> Lesson:
    """Add the lesson to the service's first runbook as a new version (or start a runbook with it)."""
    from techdocs import services as techdocs
    from techdocs.models import Runbook

    if lesson.runbook_id:
        raise Conflict("This lesson is in a runbook already.")
    section = f"\n\n## Lesson from INC-{lesson.postmortem.incident_id}\n\n{_lesson_body(lesson)}\n"
    runbook = Runbook.objects.filter(service=service).order_by("pk").first()
    if runbook is None:
        runbook = techdocs.runbook_create(
            service=service, title=f"{service.name} operations", body=section.strip(), created_by=user
        )
    else:
        runbook = techdocs.runbook_update(
            runbook=runbook,
            updated_by=user,
            title=runbook.title,
            body=runbook.body + section,
            note=f"Lesson from INC-{lesson.postmortem.incident_id}",
        )
    lesson.runbook = runbook
    lesson.save(update_fields=["runbook"])
    return lesson


@transaction.atomic
def action_add(*, postmortem: Postmortem, user: User, title: str, owner_team: Team, due_date: date) -> ActionItem:
    item = ActionItem(postmortem=postmortem, title=title.strip(), owner_team=owner_team, due_date=due_date)
    item.full_clean(exclude=["postmortem", "owner_team"])
    item.save()
    audit.event_record(
        actor=user,
        action="postmortem.action_added",
        target=postmortem,
        after={"action": title[:200], "team": owner_team.slug, "due": due_date.isoformat()},
    )
    return item


def action_can_close(user: Any, item: ActionItem) -> bool:
    """Only the owner team's members: the team that owns the work says when it is done."""
    return bool(user.is_authenticated and Membership.objects.filter(team_id=item.owner_team_id, user=user).exists())


@transaction.atomic
def action_set_status(*, item: ActionItem, user: User, status: str) -> ActionItem:
    if not action_can_close(user, item):
        raise PermissionDenied(f"Only members of {item.owner_team.name} close or reopen this action item.")
    if status not in ActionItem.Status.values:
        raise ValidationError({"status": ["Choose open or done."]})
    item = ActionItem.objects.select_for_update().get(pk=item.pk)
    item.status = status
    item.closed_by = user if status == ActionItem.Status.DONE else None
    item.closed_at = timezone.now() if status == ActionItem.Status.DONE else None
    item.save(update_fields=["status", "closed_by", "closed_at"])
    audit.event_record(actor=user, action=f"action_item.{status}", target=item, after={"status": status})
    return item
