"""Reads for a team lead's ownership review page and a person's home page: everything a team owns and what waits on
it, in a fixed number of queries whatever the team's size (asserted in tests, timed in bench_reviews)."""

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from catalog.models import Service
from reviews import permissions
from reviews.models import Campaign, Handover, Item
from teams.models import Membership, Team


def _scores(service_ids: list[int]) -> dict[int, list[Any]]:
    """Each service's levels and failing rules on the enabled scorecards (the scorecards app's selector, 2 queries)."""
    from scorecards import selectors as scorecards  # scorecards build on the catalog as reviews do

    return scorecards.scores_for_services(service_ids=service_ids)


@dataclass
class ServiceRow:
    """One line of the team page, as plain values: 500 of them render in a few milliseconds."""

    pk: int
    slug: str
    name: str
    tier: int
    verified_at: Any
    verified_by: str
    orphaned: bool
    stale: int
    item: tuple[int, Any] | None = None  # the most pressing open review item: (id, due date)
    scores: list[Any] = field(default_factory=list)


@dataclass
class TeamOverview:
    team: Team
    rows: list[ServiceRow]
    items: int
    stale_runbooks: list[Any]
    updates: list[Any]
    decommissions: list[Any]
    awaiting: list[Any]  # deployments of the team's services waiting for approval
    handovers_in: list[Handover]
    handovers_out: list[Handover]
    leads: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def _team_services(team_ids: list[int]) -> QuerySet[Service]:
    """Their services, never verified first, then the oldest verification; with their stale runbooks counted."""
    stale = Q(runbooks__review_due_at__lt=timezone.now())
    return (
        Service.objects.filter(owner_id__in=team_ids)
        .exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
        .select_related("owner", "ownership")
        .annotate(stale_count=Count("runbooks", filter=stale, distinct=True))
        .order_by(F("ownership__verified_at").asc(nulls_first=True), "name", "pk")
    )


def team_overview(*, team: Team, user: User | AnonymousUser) -> TeamOverview:
    """Everything `team` owns with what waits on it: verification dates, scorecard levels and failing rules, open
    review items, stale runbooks, open golden path updates, decommissions in flight, deployments awaiting approval and
    handovers; the same eleven queries for any team size."""
    from deployments.models import DECOMMISSION_CLOSED, Decommission, Deployment, State
    from scaffolder.models import GoldenPathUpdate
    from techdocs.models import Runbook

    now = timezone.now()
    values = (
        Service.objects.filter(owner=team)
        .exclude(lifecycle=Service.Lifecycle.DECOMMISSIONED)
        .values("pk", "slug", "name", "tier")
        .annotate(
            verified=F("ownership__verified_at"),
            verified_by=F("ownership__verified_by_repr"),
            orphaned=F("ownership__orphaned_since"),
            stale=Count("runbooks", filter=Q(runbooks__review_due_at__lt=now)),
        )
        .order_by(F("ownership__verified_at").asc(nulls_first=True), "name", "pk")
    )
    rows = [
        ServiceRow(
            pk=row["pk"],
            slug=row["slug"],
            name=row["name"],
            tier=row["tier"],
            verified_at=row["verified"],
            verified_by=row["verified_by"] or "",
            orphaned=row["orphaned"] is not None,
            stale=row["stale"],
        )
        for row in values
    ]
    scores = _scores([row.pk for row in rows])
    items = (
        Item.objects.filter(service__owner=team, status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN)
        .order_by("due_on", "pk")
        .values_list("pk", "service_id", "due_on")
    )
    first_item: dict[int, tuple[int, Any]] = {}
    count = 0
    for pk, service_id, due_on in items:  # ordered by due date: the most pressing one per service
        first_item.setdefault(service_id, (pk, due_on))
        count += 1
    for row in rows:
        row.item = first_item.get(row.pk)
        row.scores = scores.get(row.pk, [])
    stale_runbooks = list(
        Runbook.objects.filter(service__owner=team, review_due_at__lt=now)
        .select_related("service")
        .order_by("review_due_at")[:50]
    )
    updates = list(
        GoldenPathUpdate.objects.filter(service__owner=team, status__in=GoldenPathUpdate.OPEN)
        .select_related("service")
        .order_by("-pk")
    )
    decommissions = list(
        Decommission.objects.filter(service__owner=team)
        .exclude(state__in=DECOMMISSION_CLOSED)
        .select_related("service")
        .order_by("planned_for")
    )
    awaiting = list(
        Deployment.objects.filter(service__owner=team, state=State.AWAITING_APPROVAL)
        .select_related("service", "environment", "release")
        .order_by("created_at", "pk")[:50]
    )
    handovers = list(
        Handover.objects.filter(Q(to_team=team) | Q(from_team=team), status=Handover.Status.PROPOSED)
        .select_related("service", "from_team", "to_team")
        .order_by("created_at")
    )
    leads = sorted(
        Membership.objects.filter(team=team, role=Membership.Role.LEAD, user__is_active=True).values_list(
            "user__username", flat=True
        )
    )
    return TeamOverview(
        team=team,
        rows=rows,
        items=count,
        stale_runbooks=stale_runbooks,
        updates=updates,
        decommissions=decommissions,
        awaiting=awaiting,
        handovers_in=[h for h in handovers if h.to_team_id == team.pk],
        handovers_out=[h for h in handovers if h.from_team_id == team.pk],
        leads=leads,
        counts={"services": len(rows), "never": sum(1 for row in rows if row.verified_at is None), "items": count},
    )


@dataclass
class Home:
    memberships: list[Membership]
    services: list[Service]
    items: list[Item]
    handovers: list[Handover]
    decommissions: list[Any]
    deployments: list[Any]
    approvals: list[Any]  # approval requests this person may answer


def home_for(*, user: User) -> Home:
    """A signed-in person's start page: their teams' services, the review items and approvals waiting for them, and
    the recent deployments of their services; a fixed number of queries."""
    from deployments.models import Decommission, DecommissionState, Deployment

    memberships = list(Membership.objects.filter(user=user).select_related("team").order_by("team__name"))
    team_ids = [m.team_id for m in memberships]
    services = list(_team_services(team_ids)[:100])
    answering = {m.team_id for m in memberships if m.role in permissions.ANSWERING_ROLES}
    from reviews import selectors

    items = list(selectors.items_open_for(user=user, team_ids=answering).order_by("due_on", "pk")[:50])
    lead_of = [m.team_id for m in memberships if m.role == Membership.Role.LEAD]
    handovers = Handover.objects.filter(status=Handover.Status.PROPOSED).select_related(
        "service", "from_team", "to_team"
    )
    decommissions = Decommission.objects.filter(state=DecommissionState.REQUESTED).select_related("service")
    if not user.is_staff:
        handovers = handovers.filter(to_team_id__in=lead_of)
        decommissions = decommissions.filter(service__owner_id__in=lead_of).exclude(requested_by=user)
    from governance.selectors import approval_inbox

    approvals = approval_inbox(user=user, recent=0)["waiting"][:50]
    deployments = list(
        Deployment.objects.filter(service__owner_id__in=team_ids)
        .select_related("service", "environment", "release")
        .order_by("-created_at", "-pk")[:10]
    )
    return Home(
        memberships=memberships,
        services=services,
        items=items,
        handovers=list(handovers.order_by("created_at")[:50]),
        decommissions=list(decommissions.order_by("planned_for")[:50]),
        deployments=deployments,
        approvals=approvals,
    )
