"""Reads of the catalog. Every user-facing queryset starts here.

The catalog is open to every signed-in user (finding any service and its owner is the point), so the
`*_visible` functions return everything today; they remain the one place to narrow if that changes.
"""

from datetime import datetime

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Exists, Model, OuterRef, Prefetch, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from catalog.models import Dependency, EntitySource, Service, System, Tag

# Cycles longer than this many hops are not looked for on the service page: the search stays cheap on a
# catalog of tens of thousands of edges, and the cycles people need to see are short.
CYCLE_SEARCH_DEPTH = 6


def service_list_visible(*, user: User | AnonymousUser) -> QuerySet[Service]:
    """Every service, with owner, system and tags loaded."""
    return Service.objects.select_related("owner", "system").prefetch_related(
        Prefetch("tags", queryset=Tag.objects.order_by("name"))
    )


def stale_runbook_exists() -> Exists:
    """True for a service with a runbook past its review date; for filtering, not for every row of a list."""
    from techdocs.models import Runbook  # techdocs builds on the catalog, not the other way round

    return Exists(Runbook.objects.filter(service=OuterRef("pk"), review_due_at__lt=timezone.now()))


def services_mark_stale(services: list[Service]) -> list[Service]:
    """Set `has_stale_runbook` on a page of services with one query (cheaper than a subquery per catalog row)."""
    services_mark_stale_until(services)
    return services


def services_mark_stale_until(services: list[Service]) -> datetime | None:
    """`services_mark_stale`, and when one of these marks turns next by the clock alone (the earliest review still to
    fall due), or None: until then, and until the catalog changes, the marks stand."""
    from techdocs.models import Runbook

    now = timezone.now()
    stale: set[int] = set()
    turns: datetime | None = None
    dues = Runbook.objects.filter(service__in=services).order_by().values_list("service_id", "review_due_at")
    for service_id, due in dues:
        if due is None:  # never reviewed on a schedule: not stale in lists
            continue
        if due < now:
            stale.add(service_id)
        elif turns is None or due < turns:
            turns = due
    for service in services:
        service.has_stale_runbook = service.pk in stale  # type: ignore[attr-defined]
    return turns


def system_list_visible(*, user: User | AnonymousUser) -> QuerySet[System]:
    return System.objects.select_related("owner")


def dependency_list_visible(*, user: User | AnonymousUser) -> QuerySet[Dependency]:
    return Dependency.objects.select_related("source", "target")


def service_dependencies(*, service: Service) -> tuple[list[Dependency], list[Dependency]]:
    """What the service depends on, and what depends on it, each with the other end's owner loaded.

    Only the columns the service page shows are read: a core service has hundreds of dependents, and building whole
    services and teams for each cost more than the rest of the page's queries.
    """
    edge = ("id", "kind", "source_id", "target_id")
    shown = ("slug", "name", "owner__name")
    outgoing = service.dependencies.select_related("target__owner").only(*edge, *(f"target__{f}" for f in shown))
    incoming = service.dependents.select_related("source__owner").only(*edge, *(f"source__{f}" for f in shown))
    return list(outgoing.order_by(Lower("target__name"))), list(incoming.order_by(Lower("source__name")))


def service_cycle_neighbours(*, service: Service) -> set[int]:
    """Ids of the direct dependencies through which a path leads back to `service` (within the search depth)."""
    table = Dependency._meta.db_table
    sql = f"""
        WITH RECURSIVE walk(first_hop, node, depth) AS (
            SELECT target_id, target_id, 1 FROM {table} WHERE source_id = %s
            UNION
            SELECT w.first_hop, d.target_id, w.depth + 1
            FROM walk w JOIN {table} d ON d.source_id = w.node
            WHERE w.depth < %s AND w.node <> %s
        )
        SELECT DISTINCT first_hop FROM walk WHERE node = %s
    """  # noqa: S608 - the table name is ours, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [service.pk, CYCLE_SEARCH_DEPTH, service.pk, service.pk])
        return {row[0] for row in cursor.fetchall()}


def tag_names() -> list[str]:
    return list(Tag.objects.filter(services__isnull=False).distinct().order_by("name").values_list("name", flat=True))


def entity_source_for(*, obj: Model) -> EntitySource | None:
    """Where an entity was imported from, if it was; None for entities made in Runway."""
    content_type = ContentType.objects.get_for_model(obj)  # cached by Django after the first call
    return (
        EntitySource.objects.select_related("source")
        .filter(content_type=content_type, object_id=obj.pk)  # type: ignore[attr-defined]
        .first()
    )
