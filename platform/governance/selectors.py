"""Reads for governance: policies, their versions and decisions."""

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from catalog.models import Service
from deployments.models import Deployment, Environment
from governance import freezes
from governance.models import Decision, FreezeWindow, Policy, PolicyVersion


def policy_list() -> QuerySet[Policy]:
    """Every policy with the version that judges, for the Governance pages (readable by every signed-in user)."""
    return Policy.objects.select_related("current", "current__author")


def policy_versions_enabled() -> list[PolicyVersion]:
    """The versions that judge changes now, one query; each version's policy is the row already loaded."""
    versions = []
    for policy in Policy.objects.filter(enabled=True, current__isnull=False).select_related("current"):
        version = policy.current
        assert version is not None
        version.policy = policy
        versions.append(version)
    return versions


def decision_list() -> QuerySet[Decision]:
    """Decisions with what the page shows of their deployment; readable by every signed-in user, as the catalog is."""
    return Decision.objects.select_related("deployment__release", "deployment__environment", "requested_by")


def decision_for(*, deployment: Deployment) -> Decision | None:
    return Decision.objects.filter(deployment=deployment).first()


def _lines(version: PolicyVersion) -> list[str]:
    return [f"{name}: {value}" for name, value in version.content().items() if value]


def policy_versions(*, policy: Policy) -> list[PolicyVersion]:
    """A policy's versions, newest first, each with its author loaded and `changes`: the line diff from the version
    before it, as (kind, line) pairs with kind in add/del/same."""
    versions = list(PolicyVersion.objects.filter(policy=policy).select_related("author").order_by("-number"))
    for version, older in zip(versions, [*versions[1:], None], strict=True):
        version.policy = policy
        changes: list[tuple[str, str]] = []
        if older is not None:
            for line in difflib.ndiff(_lines(older), _lines(version)):
                kind = {"+": "add", "-": "del", " ": "same"}.get(line[0])
                if kind:
                    changes.append((kind, line))
        version.changes = changes  # type: ignore[attr-defined]
    return versions


def freeze_window_list() -> QuerySet[FreezeWindow]:
    """Every freeze window with its scopes, for the calendar and the API (readable by every signed-in user)."""
    return FreezeWindow.objects.prefetch_related("environments", "teams", "systems").select_related("created_by")


def freeze_windows_in_force(*, service: Service, environment: Environment, at: datetime) -> list[dict[str, Any]]:
    """The `freeze` fact: enabled windows in force at `at` whose scope takes in this service and environment.

    One query: each many-to-many scope is tested with EXISTS (empty means every), the tier in Python."""

    def scoped(through: Any, column: str, value: int | None) -> Q:
        rows = through.objects.filter(freezewindow_id=OuterRef("pk"))
        return ~Exists(rows) | Exists(rows.filter(**{column: value}))

    candidates = FreezeWindow.objects.filter(
        scoped(FreezeWindow.environments.through, "environment_id", environment.pk),
        scoped(FreezeWindow.teams.through, "team_id", service.owner_id),
        scoped(FreezeWindow.systems.through, "system_id", service.system_id),
        enabled=True,
        start_date__lte=(at + timedelta(days=2)).date(),  # a window that has not begun anywhere on Earth yet
    ).exclude(recurrence="", end_date__lt=(at - timedelta(days=2)).date())
    in_force = []
    for window in candidates:
        if window.tiers and service.tier not in window.tiers:
            continue
        occurrence = freezes.Times.of(window).in_force(at)
        if occurrence is None:
            continue
        starts, ends = occurrence
        in_force.append(
            {
                "name": window.name,
                "reason": window.reason,
                "recurring": window.recurring,
                "time_zone": window.time_zone,
                "starts_at": starts.isoformat().replace("+00:00", "Z"),
                "ends_at": ends.isoformat().replace("+00:00", "Z"),
                "ends_local": freezes.local_text(ends, window.time_zone),
            }
        )
    return in_force


@dataclass
class CalendarDay:
    day: date
    today: bool
    entries: list[tuple[FreezeWindow, datetime, datetime]] = field(default_factory=list)


def freeze_calendar(*, first: date, weeks: int, time_zone: str) -> list[list[CalendarDay]]:
    """Weeks (Monday first) of days from the week of `first`, each day with the occurrences that touch it, shown on
    the organisation's clock. Three queries whatever the number of windows."""
    tz = freezes.zone(time_zone)
    monday = first - timedelta(days=first.weekday())
    days = [CalendarDay(day=day, today=day == first) for day in freezes.days(monday, weeks)]
    since, until = freezes.day_bounds(days[0].day, tz)[0], freezes.day_bounds(days[-1].day, tz)[1]
    windows = freeze_window_list().filter(enabled=True)
    for window in windows:
        for starts, ends in freezes.Times.of(window).occurrences(since, until):
            for cell in days:
                low, high = freezes.day_bounds(cell.day, tz)
                if starts < high and ends > low:
                    cell.entries.append((window, starts.astimezone(tz), ends.astimezone(tz)))
    return [days[index : index + 7] for index in range(0, len(days), 7)]
