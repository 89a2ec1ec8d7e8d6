"""Reads for governance: policies, their versions, decisions and approval requests."""

import difflib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet

from deployments.models import Deployment
from governance import freezes
from governance.models import ApprovalRequest, Decision, FreezeWindow, Policy, PolicyVersion


def policy_list() -> QuerySet[Policy]:
    """Every policy with the version that judges, for the Governance pages (readable by every signed-in user)."""
    return Policy.objects.select_related("current", "current__author")


def policy_versions_enabled(*, generation: str | None = None) -> list[PolicyVersion]:
    """The versions that judge changes now; each version's policy is the row already loaded.

    With a shared cache (Redis) the list is kept in the process and read again only when the policies' generation
    (bumped by every policy change, see `policies_changed`) moves: every request and policy step of a worker reads one
    cache key instead of 50 rows. With a per-process cache another process's change would go unseen, so it reads.
    `generation` is the key's value when the caller has read it already (`policies_generation_prefetch`)."""
    generation = generation or _policies_generation()
    if generation is not None and _ENABLED_CACHE and _ENABLED_CACHE[0] == generation:
        return _ENABLED_CACHE[1]
    versions = []
    for policy in Policy.objects.filter(enabled=True, current__isnull=False).select_related("current"):
        version = policy.current
        assert version is not None
        version.policy = policy
        versions.append(version)
    if generation is not None:
        _ENABLED_CACHE[:] = [generation, versions]
    return versions


_GENERATION_KEY = "governance:policies:generation"
_ENABLED_CACHE: list[Any] = []  # [generation, versions] of this process


def policies_generation_prefetch() -> list[str]:
    """The cache key an API view names for the token's round trip (`throttle_prefetch`), so that judging costs no
    round trip of its own; read it back with `policies_generation_found`."""
    return [_GENERATION_KEY] if _shared_cache() else []


def policies_generation_found(found: dict[str, Any]) -> str | None:
    value = found.get(_GENERATION_KEY)
    return str(value) if value is not None else None


def _shared_cache() -> bool:
    backend = settings.CACHES["default"]["BACKEND"]
    return not backend.endswith(("LocMemCache", "DummyCache"))


def _policies_generation() -> str | None:
    if not _shared_cache():
        return None
    try:
        generation = cache.get(_GENERATION_KEY)
        if generation is None:  # first use, or the cache was flushed: start a generation nobody has cached
            generation = uuid.uuid4().hex
            cache.set(_GENERATION_KEY, generation, timeout=None)
    except Exception:  # the cache is down: read the database, as without one
        return None
    return str(generation)


def policies_changed() -> None:
    """Every process reads the enabled policies again. Called by each policy change: at once (this transaction's own
    reads, and tests, see it) and again when it commits (so that a process that read the old rows in between and
    cached them under the first new generation reads again)."""

    def bump() -> None:
        if _shared_cache():
            try:
                cache.set(_GENERATION_KEY, uuid.uuid4().hex, timeout=None)
            except Exception:  # the cache is down: readers read the database meanwhile
                pass
        _ENABLED_CACHE.clear()

    bump()
    transaction.on_commit(bump)


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


def _parsed(value: Any, kind: type) -> Any:
    """SQLite hands dates, times and JSON back as text; PostgreSQL as values."""
    if not isinstance(value, str) or kind is str:
        return value
    if kind is list:
        return json.loads(value)
    return kind.fromisoformat(value)  # type: ignore[attr-defined]


def freeze_windows_in_force(*, rows: list[list[Any]], tier: int, at: datetime) -> list[dict[str, Any]]:
    """The `freeze` fact from the rows of its read (facts.py: enabled windows that may be in force, whose scope takes
    in the change's environment, team and system): those in force at `at` for a service of this tier, in the order of
    their start, each occurrence computed on the window's own clock."""
    in_force = []
    ordered = sorted(rows, key=lambda row: (str(row[3]), str(row[4]), row[0]))  # start date, start time, name
    for name, reason, time_zone, start_date, start_time, end_date, end_time, recurrence, tiers in ordered:
        tiers = _parsed(tiers, list) or []
        if tiers and tier not in tiers:
            continue
        times = freezes.Times(
            time_zone=time_zone,
            start=datetime.combine(_parsed(start_date, date), _parsed(start_time, time)),
            end=datetime.combine(_parsed(end_date, date), _parsed(end_time, time)),
            recurrence=recurrence,
        )
        occurrence = times.in_force(at)
        if occurrence is None:
            continue
        starts, ends = occurrence
        in_force.append(
            {
                "name": name,
                "reason": reason,
                "recurring": bool(recurrence),
                "time_zone": time_zone,
                "starts_at": starts.isoformat().replace("+00:00", "Z"),
                "ends_at": ends.isoformat().replace("+00:00", "Z"),
                "ends_local": freezes.local_text(ends, time_zone),
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


def approval_requests() -> QuerySet[ApprovalRequest]:
    """Approval requests with what the pages show of their deployment."""
    return ApprovalRequest.objects.select_related(
        "deployment__service__owner",
        "deployment__release",
        "deployment__environment",
        "requested_by",
        "decision",
    )


@dataclass(frozen=True)
class Waiting:
    """Another kind of change held for approval (a feature flag change), as the inbox lists it for an approver."""

    what: str
    url: str
    asked_by: str
    needs: str
    expires_at: datetime


Memberships = list[tuple[int, str, str]]  # (team id, team slug, role) of one person
# Apps that hold other kinds of change for the same approvers register how to find those waiting for a person
# (flags/apps.py), so the inbox and the navigation's count show them and governance never imports those apps.
WaitingSource = Callable[[User, Callable[[], Memberships]], list[Waiting]]
_WAITING_SOURCES: list[WaitingSource] = []


def waiting_source_register(source: WaitingSource) -> None:
    if source not in _WAITING_SOURCES:
        _WAITING_SOURCES.append(source)


def _others_waiting(user: User, memberships: Callable[[], Memberships]) -> list[Waiting]:
    return [waiting for source in _WAITING_SOURCES for waiting in source(user, memberships)]


def approval_inbox(*, user: User | AnonymousUser, recent: int = 20, others: bool = False) -> dict[str, list[Any]]:
    """The approvals page: open requests the user may answer and has not, their own open requests, the latest closed
    ones, and (`others`) the other kinds of change waiting for them. Three queries (memberships, open requests with
    their answers, recent ones), however many there are, and one per registered source with `others`."""
    if not isinstance(user, User):
        return {"waiting": [], "mine": [], "closed": [], "others": []}
    open_requests = list(
        approval_requests()
        .filter(status=ApprovalRequest.Status.OPEN)
        .prefetch_related("answers")
        .order_by("expires_at", "pk")
    )
    memberships = _memberships(user)
    waiting, mine = [], []
    for request in open_requests:
        if request.deployment.requested_by_id == user.pk:
            mine.append(request)
        elif _may_answer(request, user, memberships):
            waiting.append(request)
    closed = list(
        approval_requests().exclude(status=ApprovalRequest.Status.OPEN).order_by("-closed_at", "-pk")[:recent]
    )
    waiting_others = _others_waiting(user, lambda: memberships) if others else []
    return {"waiting": waiting, "mine": mine, "closed": closed, "others": waiting_others}


def _memberships(user: User) -> list[tuple[int, str, str]]:
    from teams.models import Membership

    return list(Membership.objects.filter(user=user).values_list("team_id", "team__slug", "role"))


def _may_answer(request: ApprovalRequest, user: User, memberships: list[tuple[int, str, str]]) -> bool:
    from governance import approvals

    if request.deployment.requested_by_id == user.pk:
        return False
    if any(answer.user_id == user.pk for answer in request.answers.all()):
        return False
    owner_id = request.deployment.service.owner_id
    who = approvals.Person(
        username=user.get_username(),
        owner_roles=[role for team_id, _, role in memberships if team_id == owner_id],
        teams=[slug for _, slug, _ in memberships],
        platform_admin=bool(user.is_staff),
    )
    return bool(approvals.eligible_for(request.requirements, who))


def approvals_waiting_count(*, user: User | AnonymousUser) -> int:
    """How many open requests the user may answer now, for the navigation, with the other kinds of change held for
    approval (a query per registered source, then two when any is open)."""
    if not isinstance(user, User):
        return 0
    open_requests = list(
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.OPEN)
        .exclude(deployment__requested_by=user)
        .select_related("deployment__service")
        .prefetch_related("answers")
    )
    read: list[Memberships] = []

    def memberships() -> Memberships:  # read once, and only when something may be waiting
        if not read:
            read.append(_memberships(user))
        return read[0]

    others = len(_others_waiting(user, memberships))
    if not open_requests:
        return others
    return others + sum(1 for request in open_requests if _may_answer(request, user, memberships()))


def approval_for(*, deployment: Deployment, user: User | AnonymousUser) -> ApprovalRequest | None:
    """The deployment's latest approval request with its progress and whether `user` may answer it now."""
    request = approval_requests().filter(deployment=deployment).prefetch_related("answers").first()
    if request is None:
        return None
    request.can_answer = (  # type: ignore[attr-defined]
        request.is_open and isinstance(user, User) and _may_answer(request, user, _memberships(user))
    )
    return request
