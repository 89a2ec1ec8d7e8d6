"""Reads for ownership reviews: a campaign's scope as a catalog filter, campaigns, items, progress and handovers."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.utils import timezone

from catalog.filters import ServiceFilterSet
from catalog.models import Service
from reviews.models import Campaign, Handover, Item, Ownership

# A campaign's scope is the catalog's own filter (catalog.filters.ServiceFilterSet), minus its ordering: the same
# parameters select the same services on the catalog page, in the API and in a campaign.
SCOPE_FIELDS = tuple(name for name in ServiceFilterSet.base_filters if name != "ordering")


def scope_clean(scope: dict[str, Any]) -> dict[str, str]:
    """The scope's non-empty parameters, as strings; a ValidationError naming what to fix otherwise."""
    if not isinstance(scope, dict):
        raise ValidationError({"scope": ['The scope is a mapping of catalog filters, e.g. {"tier": "1"}.']})
    unknown = sorted(set(scope) - set(SCOPE_FIELDS))
    if unknown:
        raise ValidationError(
            {"scope": [f"Unknown filter {', '.join(map(str, unknown))}; use {', '.join(SCOPE_FIELDS)}."]}
        )
    cleaned: dict[str, str] = {}
    for name, value in scope.items():
        if value in (None, ""):
            continue
        if not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) > 200 or "\x00" in str(value):
            raise ValidationError({"scope": [f"The {name} filter takes one short text value."]})
        cleaned[name] = str(value)
    return cleaned


def scope_services(scope: dict[str, Any]) -> QuerySet[Service]:
    """The services a scope selects, never retired ones; a ValidationError names a filter value that is wrong."""
    cleaned = scope_clean(scope)
    params = QueryDict(mutable=True)
    params.update(cleaned)
    queryset = Service.objects.exclude(lifecycle__in=Service.RETIRING)
    filterset = ServiceFilterSet(params, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError({"scope": [f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()]})
    return filterset.qs.order_by()


def scope_describe(scope: dict[str, Any]) -> str:
    """The scope in words, as the catalog page's filters name them: "Owner: payments · Tier: 1"."""
    cleaned = scope_clean(scope)
    if not cleaned:
        return "All services"
    labels = {name: str(f.label or name) for name, f in ServiceFilterSet.base_filters.items()}
    return " · ".join(f"{labels.get(name, name)}: {value}" for name, value in cleaned.items())[:500]


def campaign_list_visible(*, user: User | AnonymousUser) -> QuerySet[Campaign]:
    """Every campaign (reviews are open to every signed-in user, as the catalog is), with item counts."""
    return Campaign.objects.select_related("team", "created_by").annotate(
        item_count=Count("items"),
        answered_count=Count("items", filter=Q(items__status=Item.Status.ANSWERED)),
    )


def item_list_visible(*, user: User | AnonymousUser) -> QuerySet[Item]:
    return Item.objects.select_related("campaign", "service", "service__owner", "team", "answered_by")


def items_open_for(*, user: User | AnonymousUser, team_ids: set[int]) -> QuerySet[Item]:
    """Open items of open campaigns that `user` may answer: those of services their teams own, and for a platform
    admin those addressed to the admins."""
    audience = Q(audience=Item.Audience.TEAM, service__owner_id__in=team_ids)
    if user.is_staff:
        audience |= Q(audience=Item.Audience.ADMINS)
    return item_list_visible(user=user).filter(audience, status=Item.Status.OPEN, campaign__status=Campaign.Status.OPEN)


@dataclass
class TeamProgress:
    team_id: int | None
    team_name: str
    team_slug: str
    total: int
    answered: int
    overdue: int

    @property
    def waiting(self) -> int:
        return self.total - self.answered

    @property
    def percent(self) -> int:
        return round(100 * self.answered / self.total) if self.total else 100


def campaign_progress(*, campaign: Campaign) -> list[TeamProgress]:
    """Per team (as assigned when the item was opened): items, answered, overdue; one query."""
    late = Q(status=Item.Status.OPEN, due_on__lt=timezone.localdate())
    rows = (
        Item.objects.filter(campaign=campaign)
        .values("team_id", "team__name", "team__slug")
        .annotate(
            total=Count("pk"),
            answered=Count("pk", filter=Q(status=Item.Status.ANSWERED)),
            overdue=Count("pk", filter=late),
        )
        .order_by("team__name")
    )
    return [
        TeamProgress(
            team_id=row["team_id"],
            team_name=row["team__name"] or "No team",
            team_slug=row["team__slug"] or "",
            total=row["total"],
            answered=row["answered"],
            overdue=row["overdue"] if campaign.is_open else 0,
        )
        for row in rows
    ]


def campaign_burnup(*, campaign: Campaign) -> list[tuple[date, int]]:
    """Answered items, cumulated per day from the campaign's opening to today (or its close); one query."""
    start = timezone.localdate(campaign.created_at)
    end = timezone.localdate(campaign.closed_at) if campaign.closed_at else timezone.localdate()
    end = max(end, start)
    per_day = dict(
        Item.objects.filter(campaign=campaign, status=Item.Status.ANSWERED, answered_at__isnull=False)
        .annotate(day=TruncDate("answered_at"))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    series: list[tuple[date, int]] = []
    total, day = 0, start
    while day <= end and len(series) < 400:
        total += per_day.get(day, 0)
        series.append((day, total))
        day += timedelta(days=1)
    return series


def verification_q(value: str, *, now: datetime | None = None) -> Q:
    """Services by the age of their ownership verification: `due` (past its period: the verification, or for a
    service never verified its registration, is older than the organisation's period for its tier), `recent` (the
    opposite), `never`, `orphaned`, or a number of days ("not verified in N days", never verified included)."""
    from reviews.services import verification_period_days

    now = now or timezone.now()
    if value == "never":
        return Q(ownership__verified_at__isnull=True)
    if value == "orphaned":
        return Q(ownership__orphaned_since__isnull=False)
    if value.isdigit():
        cutoff = now - timedelta(days=min(int(value), 36500))
        return Q(ownership__verified_at__isnull=True) | Q(ownership__verified_at__lt=cutoff)
    due = Q(pk__in=[])
    for tier in Service.Tier.values:
        cutoff = now - timedelta(days=verification_period_days(tier))
        due |= Q(tier=tier) & (
            Q(ownership__verified_at__lt=cutoff) | Q(ownership__verified_at__isnull=True, created_at__lt=cutoff)
        )
    return ~due if value == "recent" else due


def ownership_for(*, service: Service) -> Ownership | None:
    return Ownership.objects.filter(service=service).select_related("verified_by").first()


def handover_list_visible(*, user: User | AnonymousUser) -> QuerySet[Handover]:
    return Handover.objects.select_related("service", "from_team", "to_team", "proposed_by", "decided_by")


def handover_open_for_service(*, service: Service) -> Handover | None:
    """The handover of `service` waiting for its receiving team, with what the pages show of it (its link and that
    team's name): the service page asks on every view, and the whole rows of five joined records were 75 columns."""
    proposed = handover_list_visible(user=AnonymousUser()).filter(service=service, status=Handover.Status.PROPOSED)
    return proposed.select_related(None).select_related("to_team").only("service_id", "to_team__name").first()
