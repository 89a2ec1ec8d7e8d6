"""Writes for runbooks and ADRs. Every runbook edit keeps a version; every change writes an audit event."""

import datetime as dt
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from audit import services as audit
from catalog.models import Service, System
from techdocs import markdown, selectors
from techdocs.models import ADR, Runbook, RunbookVersion

ADR_FIELDS = ["number", "title", "status", "date", "deciders", "context", "decision", "consequences", "body"]


def _actor_name(user: User | None) -> str:
    return user.get_username() if user is not None else "system"


def _markdown_check(**texts: str) -> None:
    """Refuse Markdown the pages would not render (techdocs.markdown.limits_check), naming the field and the limit."""
    errors = {}
    for field, text in texts.items():
        try:
            markdown.limits_check(text=text)
        except markdown.LimitError as error:
            errors["non_field_errors" if field == "whole" else field] = [str(error)]
    if errors:
        raise ValidationError(errors)


def _adr_markdown_check(adr: ADR) -> None:
    _markdown_check(**{name: getattr(adr, name) for name in ("context", "decision", "consequences", "body")})
    _markdown_check(whole=selectors.adr_markdown(adr=adr))  # its sections are shown as one document


def _version_add(*, runbook: Runbook, author: User | None, note: str = "", created_at: Any = None) -> None:
    RunbookVersion.objects.create(
        runbook=runbook,
        number=runbook.version,
        title=runbook.title,
        body=runbook.body,
        author=author,
        author_repr=_actor_name(author),
        note=note[:300],
        created_at=created_at or timezone.now(),
    )


@transaction.atomic
def runbook_create(
    *,
    service: Service,
    title: str,
    body: str,
    created_by: User | None,
    slug: str = "",
    review_interval_days: int = 90,
    last_reviewed_at: dt.datetime | None = None,
    last_reviewed_by: str = "",
    source_path: str = "",
) -> Runbook:
    """Add a runbook to a service; writing it counts as its first review unless a review date is given."""
    runbook = Runbook(
        service=service,
        slug=slug or slugify(title)[:100] or "runbook",
        title=title,
        body=body,
        review_interval_days=review_interval_days,
        source_path=source_path,
        last_reviewed_at=last_reviewed_at or timezone.now(),
        last_reviewed_by=last_reviewed_by or _actor_name(created_by),
    )
    _markdown_check(body=body)
    runbook.full_clean()
    runbook.save()
    _version_add(runbook=runbook, author=created_by, note="created")
    audit.event_record(
        actor=created_by,
        action="runbook.created",
        target=runbook,
        service_id=service.pk,
        after={"title": title, "slug": runbook.slug},
    )
    return runbook


@transaction.atomic
def runbook_update(
    *,
    runbook: Runbook,
    updated_by: User | None,
    title: str,
    body: str,
    note: str = "",
    review_interval_days: int | None = None,
) -> Runbook:
    """Save a new version of the runbook; the previous one stays in its history. An edit is also a review."""
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    if title == runbook.title and body == runbook.body and review_interval_days in (None, runbook.review_interval_days):
        return runbook
    runbook.title, runbook.body = title, body
    if review_interval_days is not None:
        runbook.review_interval_days = review_interval_days
    runbook.version += 1
    runbook.last_reviewed_at = timezone.now()
    runbook.last_reviewed_by = _actor_name(updated_by)
    _markdown_check(body=body)
    runbook.full_clean()
    runbook.save()
    _version_add(runbook=runbook, author=updated_by, note=note)
    audit.event_record(
        actor=updated_by,
        action="runbook.updated",
        target=runbook,
        service_id=runbook.service_id,
        after={"version": runbook.version, "note": note[:300]},
    )
    return runbook


@transaction.atomic
def runbook_mark_reviewed(*, runbook: Runbook, reviewed_by: User) -> Runbook:
    """Record that someone read the runbook and found it still right, without editing it."""
    runbook = Runbook.objects.select_for_update().get(pk=runbook.pk)
    before = runbook.last_reviewed_at.isoformat() if runbook.last_reviewed_at else None
    runbook.last_reviewed_at = timezone.now()
    runbook.last_reviewed_by = reviewed_by.get_username()
    runbook.save(update_fields=["last_reviewed_at", "last_reviewed_by", "review_due_at", "updated_at"])
    audit.event_record(
        actor=reviewed_by,
        action="runbook.reviewed",
        target=runbook,
        service_id=runbook.service_id,
        before={"last_reviewed_at": before},
        after={"last_reviewed_at": runbook.last_reviewed_at.isoformat()},
    )
    return runbook


def _adr_owner_lock(service: Service | None, system: System | None) -> None:
    """Serialise numbering per owner: two ADRs created at once must not get the same number."""
    if service is not None:
        Service.objects.select_for_update().filter(pk=service.pk).exists()
    elif system is not None:
        System.objects.select_for_update().filter(pk=system.pk).exists()
    else:
        raise ValidationError("An ADR belongs to a service or a system.")


def adr_next_number(*, service: Service | None = None, system: System | None = None) -> int:
    scope = ADR.objects.filter(service=service) if service is not None else ADR.objects.filter(system=system)
    return (scope.aggregate(top=Max("number"))["top"] or 0) + 1


@transaction.atomic
def adr_create(
    *,
    created_by: User | None,
    title: str,
    service: Service | None = None,
    system: System | None = None,
    number: int | None = None,
    supersedes: ADR | None = None,
    **fields: Any,
) -> ADR:
    """Record a decision under the next free number of its service or system; may supersede an earlier one."""
    _adr_owner_lock(service, system)
    adr = ADR(
        service=service,
        system=system,
        title=title,
        number=number or adr_next_number(service=service, system=system),
        **fields,
    )
    _adr_markdown_check(adr)
    adr.full_clean()
    adr.save()
    audit.event_record(
        actor=created_by,
        action="adr.created",
        target=adr,
        service_id=service.pk if service else None,
        after={"number": adr.number, "title": title, "status": adr.status},
    )
    if supersedes is not None:
        adr_supersede(old=supersedes, new=adr, by=created_by)
    return adr


@transaction.atomic
def adr_update(*, adr: ADR, updated_by: User | None, **fields: Any) -> ADR:
    before = audit.snapshot(adr, fields=ADR_FIELDS)
    for name, value in fields.items():
        if name not in ADR_FIELDS or name == "number":
            raise ValueError(f"adr_update cannot change {name!r}")
        setattr(adr, name, value)
    _adr_markdown_check(adr)
    adr.full_clean()
    adr.save()
    after = audit.snapshot(adr, fields=ADR_FIELDS)
    changed = [key for key in ADR_FIELDS if before[key] != after[key]]
    if changed:
        audit.event_record(
            actor=updated_by,
            action="adr.updated",
            target=adr,
            service_id=adr.service_id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    return adr


@transaction.atomic
def adr_supersede(*, old: ADR, new: ADR, by: User | None) -> ADR:
    """Mark `old` as superseded by `new`, in one transaction; both must belong to the same service or system."""
    if (old.service_id, old.system_id) != (new.service_id, new.system_id):
        raise ValidationError({"supersedes": "An ADR can only supersede a decision of the same service or system."})
    if old.pk == new.pk:
        raise ValidationError({"supersedes": "An ADR cannot supersede itself."})
    if new.superseded_by_id == old.pk:
        raise ValidationError({"supersedes": f"{old} already supersedes {new}; that would make a loop."})
    old = ADR.objects.select_for_update().get(pk=old.pk)
    previous = old.status
    old.status, old.superseded_by = ADR.Status.SUPERSEDED, new
    old.save(update_fields=["status", "superseded_by", "updated_at"])
    audit.event_record(
        actor=by,
        action="adr.superseded",
        target=old,
        service_id=old.service_id,
        before={"status": previous},
        after={"status": old.status, "superseded_by": new.number},
    )
    return old
