"""Writes for deployment targets."""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from audit import services as audit
from deployments.models import Environment

ENVIRONMENT_FIELDS = ["name", "slug", "order", "protected", "description"]


@transaction.atomic
def environment_create(*, created_by: User | None, **fields: Any) -> Environment:
    environment = Environment(**fields)
    environment.full_clean()
    environment.save()
    audit.event_record(
        actor=created_by,
        action="environment.created",
        target=environment,
        after=audit.snapshot(environment, fields=ENVIRONMENT_FIELDS),
    )
    return environment


@transaction.atomic
def environment_update(*, environment: Environment, updated_by: User, **fields: Any) -> Environment:
    before = audit.snapshot(environment, fields=ENVIRONMENT_FIELDS)
    for name, value in fields.items():
        setattr(environment, name, value)
    environment.full_clean()
    environment.save()
    audit.event_record(
        actor=updated_by,
        action="environment.updated",
        target=environment,
        before=before,
        after=audit.snapshot(environment, fields=ENVIRONMENT_FIELDS),
    )
    return environment
