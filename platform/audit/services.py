"""Writes to the audit log. Call inside the transaction of the change being recorded."""

from typing import Any

import structlog
from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction

from audit.models import AuditEvent

log = structlog.get_logger(__name__)


def snapshot(obj: models.Model, *, fields: list[str]) -> dict[str, Any]:
    """The named fields of obj as JSON-ready values (foreign keys as their primary key, tags as a list)."""
    state: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        if field.many_to_many:
            state[name] = sorted(str(item) for item in getattr(obj, name).all())
        elif field.is_relation:
            state[name] = getattr(obj, field.attname)  # type: ignore[union-attr]
        else:
            value = getattr(obj, name)
            state[name] = value if isinstance(value, str | int | float | bool | list | dict | None) else str(value)
    return state


def event_record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    service_id: int | None = None,
    actor_repr: str = "",
) -> AuditEvent:
    """Append one audit event, stamped with the current request id; must run inside the change's transaction.

    `actor_repr` names an actor who is not a signed-in user (for example "anonymous" for a sign-in attempt); without
    it, an event with no user is the system's."""
    event = event_build(
        actor=actor,
        action=action,
        target=target,
        before=before,
        after=after,
        service_id=service_id,
        actor_repr=actor_repr,
    )
    event.save()
    _log(event)
    return event


def events_record(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append events made by `event_build` in one INSERT (a change touching many objects at once, such as an
    Alertmanager notification); must run inside the change's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Audit events must be written in the transaction of the change they record.")
    saved = AuditEvent.objects.bulk_create(events)
    for event in saved:
        _log(event)
    return saved


def event_build(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    target: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    service_id: int | None = None,
    actor_repr: str = "",
) -> AuditEvent:
    """One audit event, not saved yet (event_record saves it; events_record saves several at once)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("Audit events must be written in the transaction of the change they record.")
    user = actor if actor is not None and actor.is_authenticated else None
    context = structlog.contextvars.get_contextvars()
    return AuditEvent(
        actor=user,
        actor_repr=user.get_username()[:150] if user else (actor_repr or "system")[:150],
        action=action,
        object_type=target._meta.label_lower,
        object_id=str(target.pk),
        object_repr=str(target)[:200],
        service_id=service_id,
        before=before,
        after=after,
        request_id=str(context.get("request_id") or context.get("task_id") or "")[:64],
    )


def _log(event: AuditEvent) -> None:
    log.info(
        "audit",
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        object_repr=event.object_repr,
        actor=event.actor_repr,
    )
