"""Each service's API representation, stored beside its row and kept current in the same transaction as every write.

Reads of the catalog API send these documents as they are stored: a page of 50 services is one indexed query and a
join of 50 strings, with no model instances, no serializer and no JSON encoding (Backstage serves its catalog the
same way, from each entity's final JSON). `build()` is the one place that says what a document holds: to add a field
to the API, add it here (and to `ServiceSerializer`, whose output the tests hold the documents to) and bump
`VERSION`; `post_migrate` then rebuilds every document made by an older version.

A document holds only what every signed-in reader may see (the catalog is open to all of them, see selectors). A
field that only some readers may see must be added per request, never stored here.

Kept current by:
- `Service.save()`, which writes the row and its document in one transaction (so a failed write leaves both as they
  were);
- the tags' `m2m_changed` signal, `System` deletion (which clears `system` without saving the services), and saves
  of a service's verified ownership (reviews.Ownership);
- the catalog importer and queryset updates (golden path merges), which call `refresh()` on what they touched.
`tests/catalog/test_documents.py` replays random sequences of writes and compares every document with a fresh
serialisation.
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection, transaction
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save, pre_delete

# Bump when build() changes: post_migrate rebuilds the documents of every older version.
VERSION = 2

BATCH = 2000


def _timestamp(value: datetime) -> str:
    """As DRF writes a datetime (ISO 8601, UTC as `Z`); the API's time zone is always UTC (settings.TIME_ZONE)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def build(
    service: Any, *, owner_slug: str, system_slug: str | None, tags: list[str], ownership: Any = None
) -> dict[str, Any]:
    """The document of one service: `ServiceSerializer`'s output without `url` (which depends on the request's
    host and is put in front when the document is served). `ownership`: its reviews.Ownership row, if any."""
    return {
        "id": service.pk,
        "slug": service.slug,
        "name": service.name,
        "description": service.description,
        "owner": owner_slug,
        "system": system_slug,
        "lifecycle": service.lifecycle,
        "tier": service.tier,
        "language": service.language,
        "repository_url": service.repository_url,
        "docs_url": service.docs_url,
        "dashboard_url": service.dashboard_url,
        "chat_channel": service.chat_channel,
        "on_call_url": service.on_call_url,
        "tags": tags,
        "golden_path": service.golden_path,
        "golden_path_version": service.golden_path_version,
        "ownership_verified_at": _timestamp(ownership.verified_at) if ownership and ownership.verified_at else None,
        "ownership_verified_by": ownership.verified_by_repr if ownership else None,
        "orphaned_since": _timestamp(ownership.orphaned_since) if ownership and ownership.orphaned_since else None,
        "created_at": _timestamp(service.created_at),
        "updated_at": _timestamp(service.updated_at),
    }


def dumps(document: dict[str, Any]) -> str:
    """Compact and unescaped, as DRF's JSONRenderer writes it."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def render(service_ids: Iterable[int], *, lock: bool = True) -> dict[int, str]:
    """The current documents of these services, read from their rows (locked first, so that a concurrent write
    cannot slip in between the read and the store)."""
    from catalog.models import Service

    ids = sorted(set(service_ids))
    if not ids:
        return {}
    rows = (
        Service.objects.filter(pk__in=ids)
        .select_related("owner", "system", "ownership")
        .only(*FIELDS, "owner__slug", "system__slug", *OWNERSHIP_FIELDS)
    )
    if lock and connection.vendor == "postgresql":
        rows = rows.select_for_update(of=("self",))
    services = list(rows.order_by("pk"))
    tags: dict[int, list[str]] = {service.pk: [] for service in services}
    through = Service.tags.through
    for service_id, name in (
        through.objects.filter(service_id__in=ids).order_by("tag__name").values_list("service_id", "tag__name")
    ):
        tags[service_id].append(name)
    return {
        service.pk: dumps(
            build(
                service,
                owner_slug=service.owner.slug,
                system_slug=service.system.slug if service.system is not None else None,
                tags=tags[service.pk],
                ownership=_ownership(service),
            )
        )
        for service in services
    }


def _ownership(service: Any) -> Any:
    try:
        return service.ownership  # reviews.Ownership, by relation: the catalog does not import the reviews app
    except ObjectDoesNotExist:
        return None


OWNERSHIP_FIELDS = ("ownership__verified_at", "ownership__verified_by_repr", "ownership__orphaned_since")
# The columns build() reads.
FIELDS = (
    "id",
    "slug",
    "name",
    "description",
    "owner",
    "system",
    "lifecycle",
    "tier",
    "language",
    "repository_url",
    "docs_url",
    "dashboard_url",
    "chat_channel",
    "on_call_url",
    "golden_path",
    "golden_path_version",
    "created_at",
    "updated_at",
)


def store(documents: dict[int, str]) -> None:
    """Write documents (service id → JSON text), made by the current VERSION."""
    from catalog.models import ServiceDocument

    if not documents:
        return
    items = sorted(documents.items())
    table = ServiceDocument._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"INSERT INTO {table} (service_id, document, version) "  # noqa: S608 - our table
                    "SELECT id, document, %s FROM unnest(%s::bigint[], %s::text[]) AS d(id, document) "
                    "ON CONFLICT (service_id) DO UPDATE SET document = EXCLUDED.document, version = EXCLUDED.version",
                    [VERSION, [pk for pk, _ in chunk], [text for _, text in chunk]],
                )
            else:
                cursor.executemany(
                    f"INSERT INTO {table} (service_id, document, version) VALUES (%s, %s, %s) "  # noqa: S608
                    "ON CONFLICT (service_id) DO UPDATE SET document = excluded.document, version = excluded.version",
                    [(pk, text, VERSION) for pk, text in chunk],
                )


def refresh(service_ids: Iterable[int]) -> None:
    """Rebuild and store these services' documents, in the caller's transaction (or one of its own)."""
    ids = sorted(set(service_ids))
    if not ids:
        return
    with transaction.atomic():
        for start in range(0, len(ids), BATCH):
            store(render(ids[start : start + BATCH]))


def rebuild_outdated() -> int:
    """Rebuild every document missing or made by an older VERSION; returns how many. Run after migrate."""
    from catalog.models import Service

    current = Service.objects.filter(stored_document__version=VERSION)
    ids = list(Service.objects.exclude(pk__in=current.values("pk")).values_list("pk", flat=True))
    refresh(ids)
    return len(ids)


def _tags_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    from catalog.models import Service

    if action == "pre_clear" and reverse:  # a tag loses all its services: note which, before they are gone
        instance._document_services = list(
            Service.tags.through.objects.filter(tag=instance).values_list("service_id", flat=True)
        )
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        refresh([instance.pk])
    elif action == "post_clear":
        refresh(getattr(instance, "_document_services", []))
    else:
        refresh(pk_set or [])


def _system_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    instance._document_services = list(instance.services.values_list("pk", flat=True))


def _system_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    refresh(getattr(instance, "_document_services", []))


def _ownership_changed(sender: Any, instance: Any, **kwargs: Any) -> None:
    refresh([instance.service_id])


def _migrated(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", "") == "catalog":
        rebuild_outdated()


def connect() -> None:
    from catalog.models import Service, System

    m2m_changed.connect(_tags_changed, sender=Service.tags.through, dispatch_uid="catalog-documents-tags")
    pre_delete.connect(_system_deleting, sender=System, dispatch_uid="catalog-documents-system-deleting")
    post_delete.connect(_system_deleted, sender=System, dispatch_uid="catalog-documents-system-deleted")
    post_migrate.connect(_migrated, dispatch_uid="catalog-documents-migrated")
    try:  # verified ownership (reviews.Ownership) is part of the document; the app builds on the catalog
        ownership = apps.get_model("reviews", "Ownership")
    except LookupError:
        return
    post_save.connect(_ownership_changed, sender=ownership, dispatch_uid="catalog-documents-ownership-saved")
    post_delete.connect(_ownership_changed, sender=ownership, dispatch_uid="catalog-documents-ownership-deleted")
