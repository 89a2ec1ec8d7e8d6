"""Where an audit event's object lives in the portal: its page, when its model has one and it still exists.

Events name their object by model label and primary key, written as text, so they outlive it. The log links them
back in one query per kind of object on the page, whatever the number of events.
"""

from collections import defaultdict
from collections.abc import Iterable

from django.apps import apps
from django.core.exceptions import ValidationError
from django.urls import NoReverseMatch

from audit.models import AuditEvent


def object_urls(events: Iterable[AuditEvent]) -> dict[int, str]:
    """Each event's object's page, by event id; events whose object has no page, or is gone, are left out."""
    events = list(events)
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        wanted[event.object_type].add(event.object_id)
    found: dict[tuple[str, str], str] = {}
    for label, ids in wanted.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):  # a model since removed, or not a model label at all
            continue
        if not hasattr(model, "get_absolute_url"):
            continue
        keys = []
        for value in ids:
            try:
                keys.append(model._meta.pk.to_python(value))
            except ValidationError:
                continue
        # A page's address may name a parent (a runbook's service): joined here, not fetched once per row.
        parents = [field.name for field in model._meta.fields if field.many_to_one]
        for obj in model._default_manager.select_related(*parents).filter(pk__in=keys):
            try:
                found[(label, str(obj.pk))] = obj.get_absolute_url()
            except NoReverseMatch:
                continue
    return {
        event.pk: found[(event.object_type, event.object_id)]
        for event in events
        if (event.object_type, event.object_id) in found
    }
