"""The change-management evidence report: every production change in a date range, with who asked, who approved,
what the policies said (and which versions said it) and how it ended; the record a SOC 2 or ISO 27001 auditor asks
for. Reads only.

Who sees what: platform admins and holders of `governance.view_evidence` (give it to an auditors group) read the
whole organisation, any team or any service; everyone else reads the teams they belong to and their services.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.fields.json import KT
from django.urls import reverse
from django.utils import timezone

from catalog.models import Service
from deployments.models import Deployment, State
from governance.models import Decision
from teams.models import Team

MAX_DAYS = 366
DEFAULT_DAYS = 30
EVIDENCE_PERM = "governance.view_evidence"
CSV_COLUMNS = [
    "deployment", "requested_at", "service", "team", "environment", "version", "commit", "strategy", "source",
    "requester", "approvals", "break_glass", "decision", "verdict", "policies", "outcome", "finished_at",
    "failure_reason", "url",
]  # fmt: skip


def sees_organisation(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.has_perm(EVIDENCE_PERM)))


@dataclass
class Scope:
    """What a report covers: the whole organisation, one team, one service, or (for a team member asking for the
    organisation) the teams they belong to."""

    kind: str  # "organisation", "team", "service", "my_teams"
    label: str
    service: Service | None = None
    team: Team | None = None
    teams: list[Team] = field(default_factory=list)

    def filter(self, deployments: QuerySet[Deployment]) -> QuerySet[Deployment]:
        if self.service is not None:
            return deployments.filter(service=self.service)
        if self.team is not None:
            return deployments.filter(service__owner=self.team)
        if self.kind == "my_teams":
            return deployments.filter(service__owner__in=self.teams)
        return deployments

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "service": self.service.slug if self.service else None,
            "team": self.team.slug if self.team else None,
        }


def scope_resolve(*, user: User | AnonymousUser, service: str = "", team: str = "") -> Scope:
    """The scope asked for, if this user may read it: PermissionDenied says why not; an unknown slug is a field
    error."""
    everything = sees_organisation(user)
    mine = list(Team.objects.filter(memberships__user=user.pk).order_by("name")) if user.is_authenticated else []
    if service:
        found = Service.objects.select_related("owner").filter(slug=service).first()
        if found is None:
            raise ValidationError({"service": [f"No service called {service}."]})
        if not everything and found.owner_id not in {t.pk for t in mine}:
            raise PermissionDenied(
                f"The evidence of {found.slug} is for its team ({found.owner.name}), auditors and platform admins."
            )
        return Scope(kind="service", label=f"{found.name} ({found.slug})", service=found)
    if team:
        found_team = Team.objects.filter(slug=team).first()
        if found_team is None:
            raise ValidationError({"team": [f"No team called {team}."]})
        if not everything and found_team.pk not in {t.pk for t in mine}:
            raise PermissionDenied(
                f"The evidence of {found_team.name} is for its members, auditors and platform admins."
            )
        return Scope(kind="team", label=f"Team {found_team.name}", team=found_team)
    if everything:
        return Scope(kind="organisation", label="The whole organisation")
    names = ", ".join(t.name for t in mine) or "none"
    return Scope(kind="my_teams", label=f"Your teams ({names})", teams=mine)


def period_resolve(*, since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """Inclusive dates; by default the last 30 days. Field errors for a reversed or too long range."""
    until = until or today
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise ValidationError({"since": ["The start date must be on or before the end date."]})
    if (until - since).days + 1 > MAX_DAYS:
        raise ValidationError({"since": [f"A report covers at most {MAX_DAYS} days; shorten the range."]})
    return since, until


def _outcome(deployment: Deployment) -> str:
    if deployment.state == State.EXTERNAL:
        return str((deployment.runtime_state or {}).get("reported_status") or "reported")
    return str(deployment.state)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z") if moment else None


def _approvals(deployments: Sequence[Deployment]) -> dict[int, list[dict[str, Any]]]:
    """Who approved each change, by deployment id: [{"by", "at", "role"}], oldest first; one query (break-glass and
    policy approvals alike)."""
    from governance import approvals
    from governance.models import Approval

    found: dict[int, list[dict[str, Any]]] = {}
    rows = (
        Approval.objects.filter(request__deployment__in=[d.pk for d in deployments], verdict=Approval.Verdict.APPROVE)
        .select_related("request")
        .order_by("created_at", "pk")
    )
    for answer in rows:
        found.setdefault(answer.request.deployment_id, []).append(
            {"by": answer.username, "at": _iso(answer.created_at), "role": approvals.answer_role(answer)}
        )
    return found


def rows_build(*, scope: Scope, since: date, until: date) -> list[dict[str, Any]]:
    """Every change to a protected environment requested in [since, until] (organisation time), oldest first: one
    query for the changes with their service, team, environment, release, requester and decision (its fact document
    left out but for the break-glass flag), whatever their number."""
    tz = zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"])
    start = datetime.combine(since, time(0), tzinfo=tz)
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=tz)
    # The flag the decision's fact document recorded (a subquery: the document itself stays in the database).
    break_glass = Decision.objects.filter(deployment=OuterRef("pk")).annotate(flag=KT("facts__change__break_glass"))
    deployments = list(
        scope.filter(Deployment.objects.filter(environment__protected=True, created_at__gte=start, created_at__lt=end))
        .select_related("service__owner", "environment", "release", "requested_by", "policy_decision")
        .defer("plan", "config", "policy_decision__facts")
        .annotate(break_glass_fact=Subquery(break_glass.values("flag")[:1]))
        .order_by("created_at", "pk")
    )
    approvals = _approvals(deployments)
    rows = []
    for deployment in deployments:
        decision = getattr(deployment, "policy_decision", None)
        rows.append(
            {
                "deployment": deployment.pk,
                "url": reverse("deployments:detail", args=[deployment.pk]),
                "requested_at": _iso(deployment.created_at),
                "service": deployment.service.slug,
                "team": deployment.service.owner.slug,
                "environment": deployment.environment.slug,
                "version": deployment.release.version,
                "commit": deployment.release.commit_sha,
                "strategy": deployment.strategy,
                "source": "reported" if deployment.state == State.EXTERNAL else "runway",
                "requester": deployment.requested_by.get_username() if deployment.requested_by else "",
                "approvals": approvals.get(deployment.pk, []),
                "break_glass": deployment.break_glass_fact == "true",  # type: ignore[attr-defined]
                "decision": decision.pk if decision else None,
                "verdict": decision.verdict if decision else None,
                "policies": [
                    {
                        "policy": result["policy"],
                        "version": result["version"],
                        "version_id": result["version_id"],
                        "action": result["action"],
                        "outcome": result["outcome"],
                        "message": result["message"],
                    }
                    for result in (decision.results if decision else [])
                ],
                "outcome": _outcome(deployment),
                "finished_at": _iso(deployment.finished_at),
                "failure_reason": deployment.failure_reason,
            }
        )
    return rows


def _cell(value: str) -> str:
    """A spreadsheet never runs a cell as a formula: text that starts like one is quoted (OWASP's CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_lines(rows: list[dict[str, Any]]) -> Iterator[str]:
    """The report as CSV, one change a line; lists are flattened to `a; b` text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for row in rows:
        flat = {
            **row,
            "approvals": "; ".join(f"{a['by']} ({a['at']})" for a in row["approvals"]),
            "policies": "; ".join(
                f"{p['policy']} v{p['version']} {p['action']}: {p['outcome']}" for p in row["policies"]
            ),
            "break_glass": "yes" if row["break_glass"] else "no",
        }
        writer.writerow([_cell("" if flat[column] is None else str(flat[column])) for column in CSV_COLUMNS])
        yield flush()


@dataclass
class Report:
    scope: Scope
    since: date
    until: date
    rows: list[dict[str, Any]]

    def document(self) -> dict[str, Any]:
        """The report as the JSON download and the API give it."""
        return {
            "scope": self.scope.as_dict(),
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "time_zone": settings.GOVERNANCE["ORG_TIME_ZONE"],
            "generated_at": _iso(timezone.now()),
            "changes": self.rows,
        }


def report_build(
    *,
    user: User | AnonymousUser,
    service: str = "",
    team: str = "",
    since: date | None = None,
    until: date | None = None,
) -> Report:
    """The report a user asked for: PermissionDenied for another team's, ValidationError naming a bad field."""
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(settings.GOVERNANCE["ORG_TIME_ZONE"])).date()
    scope = scope_resolve(user=user, service=service, team=team)
    since, until = period_resolve(since=since, until=until, today=today)
    return Report(scope=scope, since=since, until=until, rows=rows_build(scope=scope, since=since, until=until))
