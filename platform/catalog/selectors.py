"""Reads of the catalog. Every user-facing queryset starts here.

The catalog is open to every signed-in user (finding any service and its owner is the point), so the
`*_visible` functions return everything today; they remain the one place to narrow if that changes.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    ExpressionWrapper,
    F,
    Model,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Lower
from django.utils import timezone

from catalog.models import Api, Dependency, EntitySource, Resource, Service, System, Tag
from portal import db
from teams.models import Team

# Cycles longer than this many hops are not looked for on the service page: the search stays cheap on a
# catalog of tens of thousands of edges, and the cycles people need to see are short.
CYCLE_SEARCH_DEPTH = 6


def service_list_visible(*, user: User | AnonymousUser) -> QuerySet[Service]:
    """Every service, with owner, system, tags and its ownership record (reviews.Ownership, by relation) loaded."""
    return Service.objects.select_related("owner", "system", "ownership").prefetch_related(
        Prefetch("tags", queryset=Tag.objects.order_by("name"))
    )


def service_document_visible(*, user: User | AnonymousUser, slug: str) -> tuple[int, str, str | None] | None:
    """One service's (pk, slug, stored document) by slug for the API's read by name, or None: the services of
    `service_list_visible` (every one), in one statement whose SQL is compiled once per process, not per request
    (building and compiling the queryset was a third of the read's CPU). Narrow it together with that function."""
    row = db.fetch_one(_document_by_slug_sql(connection.vendor), [slug], prepare=True)
    return (row[0], row[1], row[2]) if row else None


@cache
def _document_by_slug_sql(vendor: str) -> str:
    query = Service.objects.filter(slug="?").values_list("pk", "slug", "stored_document__document")[:1]
    sql, params = query.query.sql_with_params()
    if params != ("?",):  # the slug must be the statement's one parameter
        raise RuntimeError(f"unexpected parameters {params!r} in {sql}")
    return sql


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
    """What the service depends on, and what depends on it, each with the other end's owner loaded: one query for
    both directions, each ordered by the other end's name.

    Only the columns the service page shows are read: a core service has hundreds of dependents, and building whole
    services and teams for each cost more than the rest of the page's queries. The statement is compiled once per
    process (and prepared on PostgreSQL): building and compiling its queryset was a tenth of the page's CPU.
    """
    sql, params, at = _dependencies_sql(connection.vendor)
    values = [service.pk if value == _PROBE_PK else value for value in params]
    alias = connection.alias
    outgoing: list[Dependency] = []
    incoming: list[Dependency] = []
    for found in db.fetch_all(sql, values, prepare=True):
        row = [found[i] for i in at]  # in _COLUMNS' order
        # from_db takes the values in the model's field order (id, source, target, kind), whatever the names' order.
        dependency = Dependency.from_db(
            alias, ("id", "source_id", "target_id", "kind"), (row[0], row[2], row[3], row[1])
        )
        dependency.target = _end(alias, row[3], *row[4:8])
        dependency.source = _end(alias, row[2], *row[8:12])
        if dependency.source_id == service.pk:
            outgoing.append(dependency)
        if dependency.target_id == service.pk:
            incoming.append(dependency)
    return outgoing, incoming


_COLUMNS = ("id", "kind", "source_id", "target_id") + tuple(
    f"{end}__{field}" for end in ("target", "source") for field in ("slug", "name", "owner_id", "owner__name")
)


def _compiled(query: QuerySet[Any], names: Sequence[str]) -> tuple[str, tuple[object, ...], tuple[int, ...]]:
    """A `values_list(*names)` query's SQL and parameters, and where each named column is in its select list, read
    from the compiler rather than assumed from the order asked (Django puts a row in that order as it reads it, which
    a statement run on its own does not do)."""
    compiler = query.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    selected = [alias for _expression, _sql, alias in compiler.select]
    return sql, tuple(params), tuple(selected.index(name) for name in names)


def _end(alias: str, pk: int, slug: str, name: str, owner_id: int, owner_name: str) -> Service:
    """One end of an edge as the ORM would load it with only these columns (the others deferred)."""
    service = Service.from_db(alias, ("id", "slug", "name", "owner_id"), (pk, slug, name, owner_id))
    service.owner = Team.from_db(alias, ("id", "name"), (owner_id, owner_name))
    return service


@cache
def _dependencies_sql(vendor: str) -> tuple[str, tuple[object, ...], tuple[int, ...]]:
    """Both directions' edges of the service `_PROBE_PK` stands for, with each end's slug, name and owner."""
    other_name = Case(When(source_id=_PROBE_PK, then=F("target__name")), default=F("source__name"))
    columns = {f"c{i}": F(name) for i, name in enumerate(_COLUMNS)}  # named, to be found among the columns
    edges = (
        Dependency.objects.filter(Q(source_id=_PROBE_PK) | Q(target_id=_PROBE_PK))
        .annotate(**columns)
        .order_by(Lower(other_name), "id")
        .values_list(*columns)
    )
    sql, params, at = _compiled(edges, list(columns))
    if list(params).count(_PROBE_PK) != 3:  # the service's id must be where it is looked for, and nowhere else
        raise RuntimeError(f"unexpected parameters {params!r} in {sql}")
    return sql, params, at


@dataclass(frozen=True)
class Interface:
    """An API the service provides or consumes, or a resource it uses, as the service page lists it."""

    relation: str  # "provides", "consumes" or "uses"
    slug: str
    name: str
    type: str

    @property
    def type_label(self) -> str:
        return Api.Type(self.type).label if self.relation != "uses" and self.type in Api.Type.values else self.type


def service_interfaces(*, service: Service) -> dict[str, list[Interface]]:
    """The APIs the service provides and consumes and the resources it uses, each list by name: one query (three
    relations read as one `UNION ALL`), with only the columns the page shows (an API's definition can be a
    megabyte)."""
    found: dict[str, list[Interface]] = {"provides": [], "consumes": [], "uses": []}
    columns = ("relation", "slug", "name", "type")
    provides = Api.objects.filter(providers=service).annotate(relation=Value("provides"))
    consumes = Api.objects.filter(consumers=service).annotate(relation=Value("consumes"))
    uses = Resource.objects.filter(dependents=service).annotate(relation=Value("uses"))
    parts = [part.order_by().values_list(*columns) for part in (provides, consumes, uses)]
    rows = parts[0].union(*parts[1:], all=True).order_by("name", "slug")
    for relation, slug, name, kind in rows:
        found[relation].append(Interface(relation, slug, name, kind))
    return found


# What the service page lists and a service may well have none of. The apps whose sections the page includes add
# theirs (`page_part_register`): a name and, given the service as `OuterRef("pk")`, a condition that finds one.
PAGE_PARTS = ("runbooks", "adrs", "interfaces", "deploy_targets", "deployments", "decommissions", "source")
PageProbe = Callable[[OuterRef], Combinable | Q]
_page_probes: dict[str, PageProbe] = {}
_PROBE_PK = -7_777_777  # stands in for the service's id while the statement is compiled


def page_part_register(name: str, probe: PageProbe) -> None:
    """Let the service page's presence statement say whether a service has `name` (called from AppConfig.ready)."""
    _page_probes[name] = probe
    _page_parts_sql.cache_clear()


def service_page_parts(*, service: Service) -> frozenset[str]:
    """Which of PAGE_PARTS and of the registered parts the service has, in one statement compiled once per process:
    the page then reads only the lists that are not empty. Most services have no ADR, deploy target, health check
    or feature flag, and each empty list read on its own cost a query (about a millisecond of CPU between Django
    and PostgreSQL, on every view)."""
    content_type = ContentType.objects.get_for_model(Service)  # cached by Django after the first call
    names, sql, params, at = _page_parts_sql(connection.vendor, content_type.pk)
    values = [service.pk if value == _PROBE_PK else value for value in params]
    row = db.fetch_one(sql, values, prepare=True)  # planning its dozen subqueries cost more than running them
    return frozenset(name for name, i in zip(names, at, strict=True) if row and row[i])


@cache
def _page_parts_sql(
    vendor: str, content_type_id: int
) -> tuple[tuple[str, ...], str, tuple[object, ...], tuple[int, ...]]:
    # The apps that build on the catalog are imported here, as the page's view reads them.
    from deployments.models import Decommission, DecommissionState, Deployment, DeployTarget
    from techdocs.models import ADR, Runbook

    service = OuterRef("pk")
    interfaces = (
        Exists(Api.providers.through.objects.filter(service=service))
        | Exists(Api.consumers.through.objects.filter(service=service))
        | Exists(Service.resources.through.objects.filter(service=service))
    )
    probes: dict[str, Combinable | Q] = {
        "runbooks": Exists(Runbook.objects.filter(service=service)),
        "adrs": Exists(ADR.objects.filter(service=service)),
        "interfaces": interfaces,
        "deploy_targets": Exists(DeployTarget.objects.filter(service=service)),
        "deployments": Exists(Deployment.objects.filter(service=service)),
        "decommissions": Exists(
            Decommission.objects.filter(service=service).exclude(state=DecommissionState.CANCELLED)
        ),
        "source": Exists(EntitySource.objects.filter(content_type_id=content_type_id, object_id=service)),
    }
    assert tuple(probes) == PAGE_PARTS
    probes.update({name: probe(service) for name, probe in _page_probes.items()})
    names = tuple(probes)
    columns = {f"has_{name}": ExpressionWrapper(probe, output_field=BooleanField()) for name, probe in probes.items()}
    query = Service.objects.filter(pk=_PROBE_PK).annotate(**columns).order_by().values_list(*columns)
    sql, params, at = _compiled(query, list(columns))
    if list(params).count(_PROBE_PK) != 1:  # the service's id must be exactly one of the statement's parameters
        raise RuntimeError(f"unexpected parameters {params!r} in {sql}")
    return names, sql, params, at


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


# The picture of a neighbourhood stops growing here: past ~60 boxes a graph is no longer read, and a core service with
# hundreds of dependents would cost a long layout. The text lists beside it stay complete.
NEIGHBOURHOOD_NODE_LIMIT = 60


@dataclass(frozen=True)
class Neighbourhood:
    """Services within `depth` dependency hops of some roots, in either direction, and the edges among them."""

    roots: frozenset[int]
    nodes: dict[int, tuple[str, str, str]]  # id → (slug, name, lifecycle)
    edges: frozenset[tuple[int, int, str]]  # (source id, target id, kind)
    cycle_edges: frozenset[tuple[int, int]]  # edges inside a cycle that the neighbourhood shows whole
    truncated: bool


def dependency_neighbourhood(
    *, roots: Iterable[int], depth: int = 2, limit: int = NEIGHBOURHOOD_NODE_LIMIT
) -> Neighbourhood:
    """What the roots depend on and what depends on them, `depth` hops out, in depth + 1 queries whatever its size."""
    root_ids = frozenset(roots)
    nodes: set[int] = set(root_ids)
    edges: set[tuple[int, int, str]] = set()
    frontier, truncated = set(root_ids), False
    for _ in range(depth):
        if not frontier:
            break
        found = Dependency.objects.filter(Q(source_id__in=frontier) | Q(target_id__in=frontier)).values_list(
            "source_id", "target_id", "kind"
        )
        edges.update(found)
        new = sorted({end for source, target, _kind in edges for end in (source, target)} - nodes)
        if len(nodes) + len(new) > limit:
            new, truncated = new[: max(0, limit - len(nodes))], True
        nodes.update(new)
        frontier = set(new)
    shown = {(source, target, kind) for source, target, kind in edges if source in nodes and target in nodes}
    rows = Service.objects.filter(pk__in=nodes).values_list("pk", "slug", "name", "lifecycle")
    return Neighbourhood(
        roots=root_ids,
        nodes={pk: (slug, name, lifecycle) for pk, slug, name, lifecycle in rows},
        edges=frozenset(shown),
        cycle_edges=frozenset(_edges_in_cycles({(source, target) for source, target, _kind in shown})),
        truncated=truncated,
    )


def _edges_in_cycles(edges: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The edges whose two ends lie in one strongly connected component (Tarjan's algorithm, iterative: a long chain
    must not hit Python's recursion limit)."""
    graph: dict[int, list[int]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    component: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = node
                    if member == node:
                        break
    return {(source, target) for source, target in edges if component[source] == component[target]}
