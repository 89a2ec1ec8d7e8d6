"""The fact document: everything a deploy policy may know about a service and a proposed change.

It is the contract policies are written against (docs/governance.md describes it field by field): a plain dict of
JSON values, so a decision can keep the very document that was judged. Each top-level group comes from one provider
function registered with `@fact(name, sample=..., reads=...)`; a later capability (scorecards, incidents, SLOs) adds
its group by adding one provider here. `sample` is a complete, plausible value of the group: policy tests start from
it, and an expression is checked against it when saved, so a reference to a field the document never has is refused
then.

A provider does not query the database itself: it declares the rows it needs as `Read`s (a SELECT naming the
change's `PARAMETERS`), and `facts_build` runs every group's reads as one statement, composed once per process, with
only the parameters bound per change. The whole document is one round trip, and no SQL is built per request (the ORM
took several times longer to compose the ten queries the groups used to send than the database took to answer them).
Two groups may declare the same read by name; it runs once and both receive its rows.

A group that says something about a service whatever change is proposed also registers `many`: the same group for
many services at once in a constant number of queries, through the ORM. `service_documents()` builds the document of
services with no change proposed (scorecards judge those) from the groups that have it; `change` and `freeze` belong
to a change only. A test holds the two paths to the same answer.
"""

from __future__ import annotations

import copy
import functools
import json
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, F, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.models import Service, Tag
from deployments.models import Deployment, Environment, State
from portal import db

Facts = dict[str, Any]
Rows = list[list[Any]]
# build(change, found): `found` holds the rows of every read, by the read's name.
Provider = Callable[["Change", dict[str, Rows]], Any]
# (service ids, moment) -> {service id: the group's value}; every id asked for gets a value.
ManyProvider = Callable[[Sequence[int], datetime], dict[int, Any]]

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FAILED_STATES = (State.FAILED, State.ROLLING_BACK, State.ROLLED_BACK, State.ROLLBACK_FAILED)
# A deployment an external CD system reported counts by the status it reported, like one Runway drove.
FAILED = Q(state__in=FAILED_STATES) | Q(
    state=State.EXTERNAL, runtime_state__reported_status__in=["failed", "rolled_back"]
)
ROLLED_BACK = Q(state=State.ROLLED_BACK) | Q(state=State.EXTERNAL, runtime_state__reported_status="rolled_back")


# What `change.flag` says about a change that is not a flag change: every field present, so that an expression that
# reads it on a deployment gets a plain value, not an error.
NO_FLAG: dict[str, Any] = {
    "key": "",
    "kind": "",
    "type": "",
    "temporary": False,
    "enabled": False,
    "was_enabled": False,
    "default_variant": "",
    "rollout": {},
    "rules": 0,
    "on_in": [],
}


@dataclass
class Change:
    """A proposed change: a deployment being judged, the parameters of one not made yet (a dry run), or a feature
    flag's setting in one environment (`kind` "flag", with `flag` as the flags app describes it: see NO_FLAG)."""

    service: Service
    environment: Environment
    strategy: str
    version: str
    commit: str = ""
    requester: User | None = None
    deployment: Deployment | None = None
    at: datetime = field(default_factory=timezone.now)
    break_glass_reason: str = ""
    kind: str = "deployment"
    flag: dict[str, Any] | None = None

    @classmethod
    def of(cls, deployment: Deployment) -> Change:
        return cls(
            service=deployment.service,
            environment=deployment.environment,
            strategy=deployment.strategy,
            version=deployment.release.version,
            commit=deployment.release.commit_sha,
            requester=deployment.requested_by,
            deployment=deployment,
            break_glass_reason=deployment.break_glass_reason,
        )


@dataclass(frozen=True)
class Read:
    """Rows a group needs: a SELECT whose result columns are named `columns`, run inside the document's one statement.

    `sql` names the change's values as `%(name)s` (see `PARAMETERS`; a literal % is written %%) and must be plain SQL
    that PostgreSQL and SQLite both run. The provider receives the rows as lists in `columns` order, in no particular
    order (sort them in Python), with values as JSON gives them: timestamps as ISO text (`_iso_text`), booleans as
    true/false or 1/0 (`bool()`), and a JSON column as the value on PostgreSQL or as text on SQLite (`_json`)."""

    sql: str
    columns: tuple[str, ...]


# What a read's SQL may name: the change's parameters, bound per change by `_parameters`.
PARAMETERS = (
    "service",  # the service's id
    "owner",  # its owner team's id
    "system",  # its system's id, or NULL
    "environment",  # the target environment's id
    "requester",  # the requesting user's id, or NULL
    "deployment",  # the deployment being judged, or NULL for a dry run
    "commit",  # the release's commit SHA, or ''
    "at",  # the moment judged
    "since_7d",  # at - 7 days
    "since_30d",  # at - 30 days
    "day_before_yesterday",  # (at - 2 days)'s date and (at + 2 days)'s: a day's slack on any time zone's clock
    "day_after_tomorrow",
)


@dataclass(frozen=True)
class _Group:
    name: str
    build: Provider
    sample: Any
    open_maps: tuple[str, ...]  # dotted paths under the group whose keys are data (environment slugs), not fields
    many: ManyProvider | None = None  # the group for many services at once; None for a change's own groups


_GROUPS: dict[str, _Group] = {}
_READS: dict[str, Read] = {}


def fact(
    name: str,
    *,
    sample: Any,
    open_maps: tuple[str, ...] = (),
    many: ManyProvider | None = None,
    reads: dict[str, Read] | None = None,
) -> Callable[[Provider], Provider]:
    """Register `build(change, found)` as the provider of the top-level group `name`, with the reads it needs (found
    in `found` by name) and `many` as its bulk form."""

    for read_name, read in (reads or {}).items():
        if _READS.setdefault(read_name, read) != read:
            raise ValueError(f"Two fact groups declare the read {read_name!r} differently.")
    _statement.cache_clear()

    def register(build: Provider) -> Provider:
        _GROUPS[name] = _Group(name=name, build=build, sample=sample, open_maps=open_maps, many=many)
        return build

    return register


@functools.cache
def _statement(vendor: str, extra: tuple[tuple[str, Read], ...] = (), named: bool = False) -> str:
    """Every read (the groups', then a caller's `extra`) as one SELECT of JSON arrays, one column per read; composed
    once per process (and per set of extra reads, which are the code's own).

    The change's ids come from the statement's one row `n`, each read's `%(service)s` and the like becoming its
    column: bound (`_IDS`), or read from the names of a change named by slugs (`named`, `_NAMED`, whose columns then
    come first). PostgreSQL, which prepares the statement, cannot then plan it for the ids' values: it keeps the
    generic plan after its first five runs instead of planning every run anew (1.2 ms of planning for 0.3 ms of
    running; `OFFSET 0` keeps it from folding bound ids into the reads)."""
    parts = []
    for name, read in [*_READS.items(), *extra]:
        values = ", ".join(f"q.{column}" for column in read.columns)
        if vendor == "postgresql":
            rows = f"coalesce(json_agg(json_build_array({values})), '[]')"
        else:  # SQLite's JSON1 functions, built in since 3.38
            rows = f"json_group_array(json_array({values}))"
        sql = read.sql
        for parameter, column in _ID_COLUMNS.items():
            sql = sql.replace(f"%({parameter})s", f"n.{column}")
        parts.append(f"(SELECT {rows} FROM ({sql}) q) AS {name}")
    head = "".join(f"n.{column}, " for column in _NAMED.columns) if named else ""
    source = _NAMED.sql if named else _IDS + (" OFFSET 0" if vendor == "postgresql" else "")
    return f"SELECT {head}" + ",\n  ".join(parts) + f"\nFROM ({source}) n"


def _moment_parameters(at: datetime) -> dict[str, Any]:
    operations = connection.ops
    return {
        "at": operations.adapt_datetimefield_value(at),
        "since_7d": operations.adapt_datetimefield_value(at - timedelta(days=7)),
        "since_30d": operations.adapt_datetimefield_value(at - timedelta(days=30)),
        "day_before_yesterday": operations.adapt_datefield_value((at - timedelta(days=2)).date()),
        "day_after_tomorrow": operations.adapt_datefield_value((at + timedelta(days=2)).date()),
    }


def _parameters(change: Change) -> dict[str, Any]:
    deployment = change.deployment.pk if change.deployment is not None else None
    return {
        "service": change.service.pk,
        "owner": change.service.owner_id,
        "system": change.service.system_id,
        "environment": change.environment.pk,
        "requester": change.requester.pk if change.requester is not None else None,
        "deployment": deployment,
        "commit": change.commit,
        **_moment_parameters(change.at),
    }


def _read(change: Change, extra: dict[str, Read]) -> dict[str, Rows]:
    """Every group's rows for this change, and those of `extra`, in one round trip."""
    if clash := extra.keys() & _READS.keys():
        raise ValueError(f"{sorted(clash)} name reads of the fact groups; name the extra reads otherwise.")
    names = [*_READS, *extra]
    statement = _statement(connection.vendor, tuple(extra.items()))
    row = db.fetch_one(statement, _parameters(change), prepare=True)  # type: ignore[arg-type]
    assert row is not None  # `n` is one row
    return _found(names, row)


def _found(names: Sequence[str], values: Sequence[Any]) -> dict[str, Rows]:
    return {name: _json(value) for name, value in zip(names, values, strict=True)}


def facts_build(*, change: Change) -> Facts:
    """The fact document for one change: one statement, whatever the service's history (a group may add a bounded
    few when it has something to read, as the SLO group does for a service with SLOs)."""
    return facts_build_with(change=change, reads={})[0]


def facts_build_with(*, change: Change, reads: dict[str, Read]) -> tuple[Facts, dict[str, Rows]]:
    """The fact document, and the rows of the caller's own `reads` fetched in the same statement: the policy step
    asks whether its deployment was judged already without a round trip of its own."""
    found = _read(change, reads)
    return {name: group.build(change, found) for name, group in _GROUPS.items()}, {name: found[name] for name in reads}


@dataclass(frozen=True)
class Named:
    """A change as a pipeline outside Runway names it (a dry run): the service and the environment by slug, the
    commit and the strategy when it says them."""

    service: str
    environment: str
    version: str
    commit: str = ""  # '': the commit of the service's release of this version, if there is one
    strategy: str = ""  # '': the strategy of the service's deploy target in that environment
    requester: User | None = None
    at: datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class Found:
    """What a named change turned out to be, with its fact document. `service` is None when no service has the slug
    (nothing else is then known); `environment` when no environment has its slug; `change` and `facts` when either
    is missing or there is no strategy (none named, and no deploy target in that environment)."""

    service: Service | None = None
    environment: Environment | None = None
    change: Change | None = None
    facts: Facts | None = None


# A named change's ids, read inside the document's statement (`facts_build_named`): one row, or none when no service
# has the slug; the environment's columns are NULL when no environment has its slug.
_NAMED = Read(
    sql="""SELECT s.id AS service_id, s.slug AS service_slug, s.owner_id AS owner_id, s.system_id AS system_id,
  s.tier AS service_tier, e.id AS environment_id, e.name AS environment_name, e.slug AS environment_slug,
  e."order" AS environment_order, e.protected AS environment_protected,
  (SELECT t.strategy FROM deployments_deploytarget t
   WHERE t.service_id = s.id AND t.environment_id = e.id) AS target_strategy,
  COALESCE(NULLIF(%(named_commit)s, ''), (SELECT r.commit_sha FROM deployments_release r
   WHERE r.service_id = s.id AND r.version = %(named_version)s), '') AS commit_sha
FROM catalog_service s LEFT JOIN deployments_environment e ON e.slug = %(named_environment)s
WHERE s.slug = %(named_service)s""",
    columns=(
        "service_id",
        "service_slug",
        "owner_id",
        "system_id",
        "service_tier",
        "environment_id",
        "environment_name",
        "environment_slug",
        "environment_order",
        "environment_protected",
        "target_strategy",
        "commit_sha",
    ),  # fmt: skip
)
# A Change's ids, bound, as the statement's row `n` (see `_statement`).
_IDS = """SELECT CAST(%(service)s AS bigint) AS service_id, CAST(%(owner)s AS bigint) AS owner_id,
  CAST(%(system)s AS bigint) AS system_id, CAST(%(environment)s AS bigint) AS environment_id,
  CAST(%(commit)s AS text) AS commit_sha"""
# The parameters a read names that stand for the change's ids, and the column of `n` that holds each.
_ID_COLUMNS = {
    "service": "service_id",
    "owner": "owner_id",
    "system": "system_id",
    "environment": "environment_id",
    "commit": "commit_sha",
}


def facts_build_named(*, named: Named) -> Found:
    """The fact document of a change named by slugs, with what the names turned out to be: one statement, which reads
    the service, the environment, the deploy target's strategy and the release's commit along with the groups' rows
    (a dry run has no instances to start from, and reading them first was a round trip of its own)."""
    parameters = {
        "named_service": named.service,
        "named_environment": named.environment,
        "named_version": named.version,
        "named_commit": named.commit,
        "requester": named.requester.pk if named.requester is not None else None,
        "deployment": None,
        **_moment_parameters(named.at),
    }
    row = db.fetch_one(_statement(connection.vendor, named=True), parameters, prepare=True)  # type: ignore[arg-type]
    if row is None:
        return Found()
    width = len(_NAMED.columns)
    subject = dict(zip(_NAMED.columns, row[:width], strict=True))
    service = Service.from_db(
        connection.alias,
        ["id", "slug", "owner_id", "system_id", "tier"],  # what a change's groups and its decision read of them
        [subject[column] for column in ("service_id", "service_slug", "owner_id", "system_id", "service_tier")],
    )
    if subject["environment_id"] is None:
        return Found(service=service)
    environment = Environment.from_db(
        connection.alias,
        ["id", "name", "slug", "order", "protected"],
        [subject["environment_id"], subject["environment_name"], subject["environment_slug"],
         subject["environment_order"], bool(subject["environment_protected"])],
    )  # fmt: skip
    strategy = named.strategy or subject["target_strategy"] or ""
    if not strategy:
        return Found(service=service, environment=environment)
    change = Change(
        service=service,
        environment=environment,
        strategy=strategy,
        version=named.version,
        commit=subject["commit_sha"] or "",
        requester=named.requester,
        at=named.at,
    )
    found = _found(list(_READS), row[width:])
    return Found(service, environment, change, {name: group.build(change, found) for name, group in _GROUPS.items()})


def service_documents(*, service_ids: Sequence[int], at: datetime | None = None) -> dict[int, Facts]:
    """The fact document of each service with no change proposed: the groups that describe a service (not `change`
    nor `freeze`), a constant number of queries however many services; services that do not exist are left out."""
    at = at or timezone.now()
    ids = list(dict.fromkeys(service_ids))
    built = {name: group.many(ids, at) for name, group in _GROUPS.items() if group.many is not None}
    service_group = built.get("service", {})
    return {pk: {name: values[pk] for name, values in built.items()} for pk in ids if pk in service_group}


def service_group_names() -> tuple[str, ...]:
    """The groups a service document has (what a scorecard rule may read)."""
    return tuple(name for name, group in _GROUPS.items() if group.many is not None)


def sample_document() -> Facts:
    """A complete fact document with every field present (a fresh copy each time: callers merge into it)."""
    return {name: copy.deepcopy(group.sample) for name, group in _GROUPS.items()}


def open_maps() -> frozenset[str]:
    """Dotted paths whose keys are data; "" in a group's `open_maps` makes the whole group such a map."""
    return frozenset(f"{name}.{path}" if path else name for name, group in _GROUPS.items() for path in group.open_maps)


def group_names() -> tuple[str, ...]:
    return tuple(_GROUPS)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z") if moment else None


def _moment(value: str) -> datetime:
    """A timestamp as a read gives it (PostgreSQL's JSON: ISO with an offset; SQLite: naive UTC text), aware."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))


def _iso_text(value: str | None) -> str | None:
    """A read's timestamp as the document has timestamps (`_iso`)."""
    return _iso(_moment(value)) if value is not None else None


def _json(value: Any) -> Any:
    """A JSON value as a read gives it: decoded by psycopg on PostgreSQL, text on SQLite."""
    return json.loads(value) if isinstance(value, str) else value


def _is_platform_admin(user: User | None) -> bool:
    return bool(user and user.is_staff)


def _service_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from techdocs.models import ADR, Runbook

    def count(queryset: Any) -> Coalesce:
        grouped = queryset.filter(service=OuterRef("pk")).order_by().values("service").annotate(n=Count("pk"))
        return Coalesce(Subquery(grouped.values("n")[:1]), 0)

    latest_review = (
        Runbook.objects.filter(service=OuterRef("pk")).order_by().values("service").annotate(at=Max("last_reviewed_at"))
    )
    # One row per service with its owner, system and document counts; the tags are the only other query.
    rows = (
        Service.objects.filter(pk__in=ids)
        .values(
            "pk",
            "slug",
            "name",
            "tier",
            "lifecycle",
            "language",
            "golden_path",
            "golden_path_version",
            "on_call_url",
            "chat_channel",
            "owner__on_call_url",
            "owner__chat_channel",
        )  # fmt: skip
        .annotate(
            owner_slug=F("owner__slug"),
            system_slug=F("system__slug"),
            runbook_count=count(Runbook.objects.all()),
            stale_count=count(Runbook.objects.filter(Q(review_due_at__isnull=True) | Q(review_due_at__lt=at))),
            adr_count=count(ADR.objects.all()),
            runbook_reviewed=Subquery(latest_review.values("at")[:1]),
            # Kept by ownership reviews (reviews.Ownership), read by relation: no row means never verified.
            verified_at=F("ownership__verified_at"),
            orphaned_since=F("ownership__orphaned_since"),
        )
    )
    tags: dict[int, list[str]] = {}
    for service_id, name in Tag.objects.filter(services__in=ids).values_list("services", "name").order_by("name"):
        tags.setdefault(service_id, []).append(name)
    return {row["pk"]: _service_document(row, tags.get(row["pk"], []), iso=_iso) for row in rows}


def _service_document(row: Mapping[str, Any], tags: list[str], *, iso: Callable[[Any], str | None]) -> dict[str, Any]:
    """The `service` group from its row (the ORM's values, or the read's; `iso` formats either's timestamps)."""
    from scaffolder import registry  # the scaffolder builds on the catalog; read its registry, not its models

    path = registry.golden_path_get(row["golden_path"]) if row["golden_path"] else None
    latest = path.version if path else None
    return {
        "slug": row["slug"],
        "name": row["name"],
        "owner": row["owner_slug"],
        "system": row["system_slug"],
        "tier": row["tier"],
        "lifecycle": row["lifecycle"],
        "tags": tags,
        "language": row["language"],
        "golden_path": {
            "name": row["golden_path"] or None,
            "version": row["golden_path_version"] or None,
            "latest": latest,
            "behind": bool(latest and row["golden_path_version"] and latest != row["golden_path_version"]),
        },
        # As the service page shows them: the service's own, or else its owning team's.
        "on_call_url": row["on_call_url"] or row["owner__on_call_url"],
        "chat_channel": row["chat_channel"] or row["owner__chat_channel"],
        "runbooks": row["runbook_count"],
        "stale_runbooks": row["stale_count"],
        "runbook_last_reviewed": iso(row["runbook_reviewed"]),
        "adrs": row["adr_count"],
        "last_ownership_review": iso(row["verified_at"]),
        "orphaned": row["orphaned_since"] is not None,
    }


# The same row as `_service_many`'s, for one service; a stale runbook is one whose review is due or never set.
_SERVICE = Read(
    sql="""SELECT s.slug, s.name, s.tier, s.lifecycle, s.language, s.golden_path, s.golden_path_version,
  s.on_call_url, s.chat_channel, t.on_call_url AS owner__on_call_url, t.chat_channel AS owner__chat_channel,
  t.slug AS owner_slug, y.slug AS system_slug,
  (SELECT count(*) FROM techdocs_runbook r WHERE r.service_id = s.id) AS runbook_count,
  (SELECT count(*) FROM techdocs_runbook r
   WHERE r.service_id = s.id AND (r.review_due_at IS NULL OR r.review_due_at < %(at)s)) AS stale_count,
  (SELECT count(*) FROM techdocs_adr a WHERE a.service_id = s.id) AS adr_count,
  (SELECT max(r.last_reviewed_at) FROM techdocs_runbook r WHERE r.service_id = s.id) AS runbook_reviewed,
  o.verified_at, o.orphaned_since
FROM catalog_service s
JOIN teams_team t ON t.id = s.owner_id
LEFT JOIN catalog_system y ON y.id = s.system_id
LEFT JOIN reviews_ownership o ON o.service_id = s.id
WHERE s.id = %(service)s""",
    columns=(
        "slug",
        "name",
        "tier",
        "lifecycle",
        "language",
        "golden_path",
        "golden_path_version",
        "on_call_url",
        "chat_channel",
        "owner__on_call_url",
        "owner__chat_channel",
        "owner_slug",
        "system_slug",
        "runbook_count",
        "stale_count",
        "adr_count",
        "runbook_reviewed",
        "verified_at",
        "orphaned_since",
    ),  # fmt: skip
)
_TAGS = Read(
    sql="""SELECT g.name FROM catalog_tag g JOIN catalog_service_tags st ON st.tag_id = g.id
WHERE st.service_id = %(service)s""",
    columns=("name",),
)


@fact(
    "service",
    sample={
        "slug": "payments-api",
        "name": "Payments API",
        "owner": "payments",
        "system": "payments",
        "tier": 1,
        "lifecycle": "production",
        "tags": ["pci"],
        "language": "python",
        "golden_path": {"name": "python-service", "version": "1.0.0", "latest": "1.1.0", "behind": True},
        "on_call_url": "https://oncall.example.com/payments",
        "chat_channel": "#payments",
        "runbooks": 2,
        "stale_runbooks": 0,
        "runbook_last_reviewed": "2026-01-02T09:00:00Z",
        "adrs": 1,
        "last_ownership_review": "2026-01-05T09:30:00Z",
        "orphaned": False,
    },
    many=_service_many,
    reads={"service": _SERVICE, "tags": _TAGS},
)
def _service(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    row = dict(zip(_SERVICE.columns, found["service"][0], strict=True))
    return _service_document(row, sorted(name for (name,) in found["tags"]), iso=_iso_text)


def _sql_in(values: Sequence[str]) -> str:
    """A list of the code's own constants (states, statuses) as SQL literals, for a read's text."""
    assert all(value.isidentifier() for value in values)
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


_REPORTED = "d.runtime_state ->> 'reported_status'"  # PostgreSQL's jsonb operator, and SQLite's since 3.38
# A deployment an external CD system reported counts by the status it reported, like one Runway drove (as FAILED
# and ROLLED_BACK above say for the bulk form).
_SUCCEEDED_SQL = f"(d.state = '{State.SUCCEEDED}' OR (d.state = '{State.EXTERNAL}' AND {_REPORTED} = 'succeeded'))"
_FAILED_SQL = (
    f"(d.state IN {_sql_in(FAILED_STATES)} OR "
    f"(d.state = '{State.EXTERNAL}' AND {_REPORTED} IN ('failed', 'rolled_back')))"
)
_ROLLED_BACK_SQL = (
    f"(d.state = '{State.ROLLED_BACK}' OR (d.state = '{State.EXTERNAL}' AND {_REPORTED} = 'rolled_back'))"
)

_SUCCEEDED_IN = Read(
    sql=f"""SELECT e.slug, max(d.finished_at) AS finished FROM deployments_deployment d
JOIN deployments_release r ON r.id = d.release_id
JOIN deployments_environment e ON e.id = d.environment_id
WHERE d.service_id = %(service)s AND %(commit)s <> '' AND r.commit_sha = %(commit)s
  AND d.environment_id <> %(environment)s AND {_SUCCEEDED_SQL}
GROUP BY e.slug""",  # noqa: S608 - constants of the code, no input
    columns=("slug", "finished"),
)
_REQUESTER_ROLES = Read(
    sql="SELECT m.role FROM teams_membership m WHERE m.user_id = %(requester)s AND m.team_id = %(owner)s",
    columns=("role",),
)
_APPROVALS = Read(
    sql="""SELECT a.username, a.owner_roles, a.platform_admin, a.created_at, a.id FROM governance_approval a
JOIN governance_approvalrequest r ON r.id = a.request_id
WHERE r.deployment_id = %(deployment)s AND a.verdict = 'approve'""",
    columns=("username", "owner_roles", "platform_admin", "created_at", "id"),
)


@fact(
    "change",
    sample={
        "environment": {"slug": "production", "name": "Production", "protected": True, "order": 2},
        "strategy": "canary",
        "version": "v1.4.0",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "succeeded_in": {"staging": "2026-01-05T09:30:00Z"},
        "requester": {"username": "olivia", "platform_admin": False, "roles": ["member"]},
        "approvals": [{"username": "lena", "roles": ["lead"], "platform_admin": False, "at": "2026-01-06T10:20:00Z"}],
        "break_glass": False,
        "break_glass_reason": "",
        "kind": "deployment",
        "flag": {
            "key": "new-checkout",
            "kind": "release",
            "type": "boolean",
            "temporary": True,
            "enabled": True,
            "was_enabled": False,
            "default_variant": "off",
            "rollout": {"on": 10, "off": 90},
            "rules": 1,
            "on_in": ["staging"],
        },
    },
    open_maps=("succeeded_in", "flag.rollout"),
    reads={"succeeded_in": _SUCCEEDED_IN, "requester_roles": _REQUESTER_ROLES, "approvals": _APPROVALS},
)
def _change(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    environment, requester = change.environment, change.requester
    approvals = sorted(found["approvals"], key=lambda row: (_moment(row[3]), row[4]))
    return {
        "environment": {
            "slug": environment.slug,
            "name": environment.name,
            "protected": environment.protected,
            "order": environment.order,
        },
        "strategy": change.strategy,
        "version": change.version,
        "commit": change.commit,
        "succeeded_in": {slug: _iso_text(finished) for slug, finished in found["succeeded_in"]},
        "requester": {
            "username": requester.get_username() if requester else "",
            "platform_admin": _is_platform_admin(requester),
            "roles": sorted(role for (role,) in found["requester_roles"]),
        },
        # Approvals given so far to this deployment (a break-glass approval before its policy step), as who the
        # approvers were when they approved. A dry run has none.
        "approvals": [
            {"username": username, "roles": _json(roles), "platform_admin": bool(admin), "at": _iso_text(at)}
            for username, roles, admin, at, _pk in approvals
        ],
        "break_glass": bool(change.break_glass_reason),
        "break_glass_reason": change.break_glass_reason,
        "kind": change.kind,
        "flag": NO_FLAG | (change.flag or {}),
    }


def _history_counts(at: datetime) -> dict[str, Count]:
    recent = Q(created_at__gte=at - timedelta(days=7))
    return {
        "deployments_7d": Count("pk", filter=recent),
        "failures_7d": Count("pk", filter=recent & FAILED),
        "rollbacks_7d": Count("pk", filter=recent & ROLLED_BACK),
        "deployments_30d": Count("pk"),
        "failures_30d": Count("pk", filter=FAILED),
        "rollbacks_30d": Count("pk", filter=ROLLED_BACK),
    }


def _recent_deployments(at: datetime) -> Any:
    return Deployment.objects.filter(created_at__gte=at - timedelta(days=30), created_at__lte=at)


def _history_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, int]]:
    counts = _history_counts(at)
    documents = {pk: dict.fromkeys(counts, 0) for pk in ids}
    rows = _recent_deployments(at).filter(service__in=ids).values("service_id").annotate(**counts).order_by()
    for row in rows:
        service_id = row.pop("service_id")
        documents[service_id] = {name: int(value or 0) for name, value in row.items()}
    return documents


_HISTORY = Read(
    sql=f"""SELECT
  count(*) FILTER (WHERE d.created_at >= %(since_7d)s) AS deployments_7d,
  count(*) FILTER (WHERE d.created_at >= %(since_7d)s AND {_FAILED_SQL}) AS failures_7d,
  count(*) FILTER (WHERE d.created_at >= %(since_7d)s AND {_ROLLED_BACK_SQL}) AS rollbacks_7d,
  count(*) AS deployments_30d,
  count(*) FILTER (WHERE {_FAILED_SQL}) AS failures_30d,
  count(*) FILTER (WHERE {_ROLLED_BACK_SQL}) AS rollbacks_30d
FROM deployments_deployment d
WHERE d.service_id = %(service)s AND d.created_at >= %(since_30d)s AND d.created_at <= %(at)s
  AND d.id <> COALESCE(%(deployment)s, 0)""",  # noqa: S608 - constants of the code, no input
    columns=("deployments_7d", "failures_7d", "rollbacks_7d", "deployments_30d", "failures_30d", "rollbacks_30d"),
)


@fact(
    "history",
    sample={
        "deployments_7d": 3,
        "failures_7d": 1,
        "rollbacks_7d": 1,
        "deployments_30d": 12,
        "failures_30d": 2,
        "rollbacks_30d": 1,
    },
    many=_history_many,
    reads={"history": _HISTORY},
)
def _history(change: Change, found: dict[str, Rows]) -> dict[str, int]:
    """This service's deployments in the last 7 and 30 days, not counting the one being judged."""
    return {name: int(value or 0) for name, value in zip(_HISTORY.columns, found["history"][0], strict=True)}


def _now_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    now = _now_at(at)
    return {pk: now for pk in ids}  # one dict shared: documents are read, never written


@fact(
    "now",
    many=_now_many,
    sample={
        "timestamp": "2026-01-06T10:15:00Z",
        "time_zone": "UTC",
        "date": "2026-01-06",
        "weekday": 2,
        "day": "Tuesday",
        "hour": 10,
        "minute": 15,
    },
)
def _now(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    return _now_at(change.at)


def _now_at(at: datetime) -> dict[str, Any]:
    local = at.astimezone(zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"]))
    return {
        "timestamp": _iso(at),
        "time_zone": settings.GOVERNANCE["ORG_TIME_ZONE"],
        "date": local.date().isoformat(),
        "weekday": local.isoweekday(),  # 1 is Monday, 7 is Sunday
        "day": DAYS[local.weekday()],  # not strftime, which follows the process's locale
        "hour": local.hour,
        "minute": local.minute,
    }


# Enabled windows that may be in force whose every scope is empty (meaning every) or holds this change's environment,
# team and system; the tier and the occurrences are checked in Python (selectors.freeze_windows_in_force).
_FREEZE = Read(
    sql="""SELECT w.name, w.reason, w.time_zone, w.start_date, w.start_time, w.end_date, w.end_time, w.recurrence,
  w.tiers
FROM governance_freezewindow w
WHERE w.enabled AND w.start_date <= %(day_after_tomorrow)s
  AND (w.recurrence <> '' OR w.end_date >= %(day_before_yesterday)s)
  AND (NOT EXISTS (SELECT 1 FROM governance_freezewindow_environments s WHERE s.freezewindow_id = w.id)
       OR EXISTS (SELECT 1 FROM governance_freezewindow_environments s
                  WHERE s.freezewindow_id = w.id AND s.environment_id = %(environment)s))
  AND (NOT EXISTS (SELECT 1 FROM governance_freezewindow_teams s WHERE s.freezewindow_id = w.id)
       OR EXISTS (SELECT 1 FROM governance_freezewindow_teams s
                  WHERE s.freezewindow_id = w.id AND s.team_id = %(owner)s))
  AND (NOT EXISTS (SELECT 1 FROM governance_freezewindow_systems s WHERE s.freezewindow_id = w.id)
       OR EXISTS (SELECT 1 FROM governance_freezewindow_systems s
                  WHERE s.freezewindow_id = w.id AND s.system_id = %(system)s))""",
    columns=("name", "reason", "time_zone", "start_date", "start_time", "end_date", "end_time", "recurrence", "tiers"),
)


@fact(
    "freeze",
    sample=[
        {
            "name": "Weekend freeze",
            "reason": "Nobody is on call to watch a Friday-afternoon deploy.",
            "recurring": True,
            "time_zone": "Europe/London",
            "starts_at": "2026-01-09T14:00:00Z",
            "ends_at": "2026-01-12T08:00:00Z",
            "ends_local": "2026-01-12 08:00 Europe/London",
        }
    ],
    reads={"freeze": _FREEZE},
)
def _freeze(change: Change, found: dict[str, Rows]) -> list[dict[str, Any]]:
    """The freeze windows in force for this service and environment at the change's time (empty when none)."""
    from governance import selectors

    return selectors.freeze_windows_in_force(rows=found["freeze"], tier=change.service.tier, at=change.at)


LISTED_INCIDENTS = 20


def _incidents_read() -> Read:
    from incidents.models import OPEN_STATUSES

    # The worst LISTED_INCIDENTS, each row carrying how many there are in all (counted before the limit).
    return Read(
        sql=f"""SELECT i.id, i.title, i.severity, i.status, i.started_at, count(*) OVER () AS open_count
FROM incidents_incident i JOIN incidents_incident_services x ON x.incident_id = i.id
WHERE x.service_id = %(service)s AND i.status IN {_sql_in(OPEN_STATUSES)} AND i.started_at <= %(at)s
ORDER BY i.severity, i.started_at DESC, i.id DESC LIMIT {LISTED_INCIDENTS}""",  # noqa: S608 - the code's constants
        columns=("id", "title", "severity", "status", "started_at", "open_count"),
    )


@fact(
    "incidents",
    sample={
        "open": [
            {
                "id": 42,
                "title": "Checkout errors after the 14:00 deploy",
                "severity": "SEV2",
                "status": "investigating",
                "started_at": "2026-01-06T09:50:00Z",
            }
        ],
        "open_count": 1,
        "worst_open_severity": "SEV2",
    },
    reads={"incidents": _incidents_read()},
)
def _incidents(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """The service's open incidents (not resolved yet), worst first: "no deploys into a SEV1 but the fix"."""
    rows = sorted(found["incidents"], key=lambda row: (row[2], -_moment(row[4]).timestamp(), -row[0]))
    return {
        "open": [
            {"id": pk, "title": title, "severity": severity, "status": status, "started_at": _iso_text(started)}
            for pk, title, severity, status, started, _count in rows
        ],
        "open_count": rows[0][5] if rows else 0,
        "worst_open_severity": rows[0][2] if rows else None,
    }


def _delivery_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from deployments.models import DeployTarget

    targets: dict[int, list[tuple[str, bool, str]]] = {pk: [] for pk in ids}
    rows = DeployTarget.objects.filter(service__in=ids).values_list(
        "service_id", "environment__slug", "environment__protected", "strategy"
    )
    for service_id, environment, protected, strategy in rows.order_by("environment__order", "environment__slug"):
        targets[service_id].append((environment, protected, strategy))
    return {pk: _delivery_document(found) for pk, found in targets.items()}


def _delivery_document(targets: list[tuple[str, bool, str]]) -> dict[str, Any]:
    """From (environment, protected, strategy) in the environments' order."""
    strategies = {environment: strategy for environment, _protected, strategy in targets}
    protected = sorted({strategy for _environment, is_protected, strategy in targets if is_protected})
    return {"strategies": strategies, "protected_strategies": protected}


_DELIVERY = Read(
    sql="""SELECT e.slug, e.protected, t.strategy, e."order" AS environment_order FROM deployments_deploytarget t
JOIN deployments_environment e ON e.id = t.environment_id WHERE t.service_id = %(service)s""",
    columns=("slug", "protected", "strategy", "environment_order"),
)


@fact(
    "delivery",
    sample={"strategies": {"staging": "rolling", "production": "canary"}, "protected_strategies": ["canary"]},
    open_maps=("strategies",),
    many=_delivery_many,
    reads={"delivery": _DELIVERY},
)
def _delivery(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """How the service is set up to deploy: each environment's deploy target strategy."""
    ordered = sorted(found["delivery"], key=lambda row: (row[3], row[0]))
    return _delivery_document([(slug, bool(protected), strategy) for slug, protected, strategy, _order in ordered])


def _scorecards_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from scorecards.models import Score  # scorecards build on governance: read their rows, as the service group does

    documents: dict[int, dict[str, Any]] = {pk: {} for pk in ids}
    rows = Score.objects.filter(service__in=ids, scorecard__enabled=True).values_list(
        "service_id", "scorecard__name", "level", "rank", "failing"
    )
    for service_id, name, level, rank, failing in rows.order_by():
        documents[service_id][name] = _score(level, rank, failing)
    return documents


@fact(
    "scorecards",
    sample={"production-readiness": {"level": "Silver", "rank": 2, "failing": ["progressive-delivery"]}},
    open_maps=("",),
    many=_scorecards_many,
    reads={
        "scorecards": Read(
            sql="""SELECT c.name, s.level, s.rank, s.failing FROM scorecards_score s
JOIN scorecards_scorecard c ON c.id = s.scorecard_id WHERE s.service_id = %(service)s AND c.enabled""",
            columns=("name", "level", "rank", "failing"),
        )
    },
)
def _scorecards(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """Where the service stands on each enabled scorecard, by the scorecard's name: as last scored by a worker."""
    return {name: _score(level, rank, _json(failing)) for name, level, rank, failing in found["scorecards"]}


def _score(level: str, rank: int, failing: list[dict[str, Any]]) -> dict[str, Any]:
    return {"level": level or None, "rank": rank, "failing": sorted(item["rule"] for item in failing)}


def _slo_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from monitoring import selectors
    from monitoring.models import SLO

    statuses = selectors.slo_statuses(list(SLO.objects.filter(service__in=ids)), now=at)  # two queries at most
    by_service: dict[int, list[Any]] = {pk: [] for pk in ids}
    for status in statuses:
        by_service[status.slo.service_id].append(status)
    return {pk: _slo_document(found) for pk, found in by_service.items()}


@fact(
    "slo",
    sample={
        "count": 2,
        "unknown": 0,
        "burning": True,
        "exhausted": False,
        "alert": "ticket",
        "budget_remaining_min": 0.42,
        "objectives": {
            "checkout-availability": {
                "target": 0.999,
                "window_days": 28,
                "budget_remaining": 0.42,
                "burn_rate_1h": 2.5,
                "alert": "ticket",
                "status": "burning",
            }
        },
    },
    open_maps=("objectives",),
    many=_slo_many,
    # Whether there is anything to judge: monitoring computes budgets from its samples (two more queries), and most
    # services have no SLO, so their documents cost nothing more.
    reads={"slos": Read(sql="SELECT count(*) AS n FROM monitoring_slo WHERE service_id = %(service)s", columns=("n",))},
)
def _slo(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """The service's SLOs: "no production deploys but fixes while the error budget is spent" reads `slo.exhausted`."""
    if not found["slos"][0][0]:
        return _slo_document([])
    return _slo_many([change.service.pk], change.at)[change.service.pk]


def _slo_document(statuses: list[Any]) -> dict[str, Any]:
    """`burning` is true while a page or ticket burn-rate alert fires; an SLO whose SLI cannot be read counts in
    `unknown` and is neither burning nor within budget."""
    from monitoring import burn

    known = [s.budget.remaining for s in statuses if s.status != burn.UNKNOWN and s.budget.remaining is not None]
    alerts = {s.budget.alert for s in statuses if s.status != burn.UNKNOWN}
    return {
        "count": len(statuses),
        "unknown": sum(s.status == burn.UNKNOWN for s in statuses),
        "burning": any(s.status in (burn.BURNING, burn.EXHAUSTED) and s.budget.alert for s in statuses),
        "exhausted": any(s.status == burn.EXHAUSTED for s in statuses),
        "alert": "page" if "page" in alerts else ("ticket" if "ticket" in alerts else ""),
        "budget_remaining_min": round(min(known), 4) if known else None,
        "objectives": {
            s.slo.name: {
                "target": s.slo.target,
                "window_days": s.slo.window_days,
                "budget_remaining": _rounded(s.budget.remaining, 4),
                "burn_rate_1h": _rounded(s.budget.burn_rates.get("1h"), 3),
                "alert": s.budget.alert,
                "status": s.status,
            }
            for s in statuses
        },
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _health_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from monitoring import selectors
    from monitoring.models import HealthCheck

    checks = list(HealthCheck.objects.filter(service__in=ids).select_related("environment"))
    health = selectors.health_for_checks(checks, now=at)  # three queries whatever the number of checks
    by_service: dict[int, list[tuple[Any, Any]]] = {pk: [] for pk in ids}
    for check in checks:
        by_service[check.service_id].append((check, health[check.pk]))
    return {pk: _health_document(found) for pk, found in by_service.items()}


@fact(
    "health",
    sample={
        "count": 2,
        "down": ["staging"],
        "environments": {
            "production": {"status": "healthy", "source": "replicas", "uptime_7d": 99.95},
            "staging": {"status": "down", "source": "http", "uptime_7d": 97.2},
        },
    },
    open_maps=("environments",),
    many=_health_many,
    # Whether there is anything to judge: statuses come from monitoring (three more queries), and a service without
    # health checks costs nothing more.
    reads={
        "health_checks": Read(
            sql="SELECT count(*) AS n FROM monitoring_healthcheck WHERE service_id = %(service)s", columns=("n",)
        )
    },
)
def _health(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """The service's health checks as of the change: "deploy to production only while staging is healthy" reads
    `health.environments.staging.status`."""
    if not found["health_checks"][0][0]:
        return _health_document([])
    return _health_many([change.service.pk], change.at)[change.service.pk]


def _health_document(rows: list[tuple[Any, Any]]) -> dict[str, Any]:
    """By environment slug: `status` (healthy, degraded, down or unknown: never healthy without recent results),
    `source` (http, replicas or simulated) and `uptime_7d` (percent of probes passed, null where none ran)."""
    from monitoring.models import HealthStatus

    return {
        "count": len(rows),
        "down": sorted(check.environment.slug for check, health in rows if health.status == HealthStatus.DOWN),
        "environments": {
            check.environment.slug: {
                "status": health.status,
                "source": check.source,
                "uptime_7d": health.uptime.get("7d"),
            }
            for check, health in rows
        },
    }


def _flags_many(ids: Sequence[int], at: datetime) -> dict[int, dict[str, Any]]:
    from flags import usage  # flags build on the catalog and deployments: read them through their seam

    return usage.stale_counts(ids, now=at)  # one query, two when a service has flags


@fact(
    "flags",
    sample={"count": 4, "stale": 1, "stale_keys": ["old-banner"]},
    many=_flags_many,
    # Whether there is anything to judge: flag debt reads each flag's settings (two more queries), and a service
    # without flags costs nothing more.
    reads={"flags": Read(sql="SELECT count(*) AS n FROM flags_flag WHERE service_id = %(service)s", columns=("n",))},
)
def _flags(change: Change, found: dict[str, Rows]) -> dict[str, Any]:
    """The service's feature flags and its flag debt: "no more than two stale flags" reads `flags.stale`."""
    if not found["flags"][0][0]:
        return {"count": 0, "stale": 0, "stale_keys": []}
    return _flags_many([change.service.pk], change.at)[change.service.pk]
