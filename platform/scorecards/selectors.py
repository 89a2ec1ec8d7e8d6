"""Reads for scorecards: the list and a scorecard's page, a service's scores, and a team's services' scores.

Every page and the API read here; scorecards and scores are readable by every signed-in user, like the catalog.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from catalog.models import Service
from scorecards.models import Initiative, Score, Scorecard, ScoreDay


def scorecard_list() -> QuerySet[Scorecard]:
    return Scorecard.objects.all()


@dataclass
class LevelCount:
    rank: int
    name: str
    services: int
    percent: float


def level_counts(scorecards: Iterable[Scorecard]) -> dict[int, list[LevelCount]]:
    """Per scorecard, how many services stand at each level (no level first), in one query."""
    cards = list(scorecards)
    counts: dict[int, Counter[int]] = defaultdict(Counter)
    rows = Score.objects.filter(scorecard__in=cards).values_list("scorecard_id", "rank").annotate(n=Count("pk"))
    for scorecard_id, rank, n in rows.order_by():
        counts[scorecard_id][rank] = n
    found = {}
    for card in cards:
        total = sum(counts[card.pk].values())
        found[card.pk] = [
            LevelCount(
                rank=rank,
                name=card.level_name(rank) or "No level",
                services=counts[card.pk][rank],
                percent=round(100 * counts[card.pk][rank] / total, 1) if total else 0.0,
            )
            for rank in range(len(card.levels) + 1)
        ]
    return found


@dataclass
class RuleSummary:
    key: str
    name: str
    level: str
    rank: int
    why: str
    fix: str
    failing: int  # services failing it
    errors: int  # of which could not be evaluated


def rule_summary(scorecard: Scorecard) -> list[RuleSummary]:
    """Every rule with how many services fail it (errors counted apart), lowest level first."""
    failing: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for items in Score.objects.filter(scorecard=scorecard).values_list("failing", flat=True):
        for item in items:
            failing[item["rule"]] += 1
            if item.get("error"):
                errors[item["rule"]] += 1
    return [
        RuleSummary(
            key=key,
            name=rule["name"],
            level=rule["level"],
            rank=rule["rank"],
            why=rule["why"],
            fix=rule["fix"],
            failing=failing[key],
            errors=errors[key],
        )
        for key, rule in scorecard.rules().items()
    ]


def scores_for_scorecard(*, scorecard: Scorecard, rank: int | None = None, team: str = "") -> QuerySet[Score]:
    """The services a scorecard scores, lowest level first (the ones to help), with their owners."""
    scores = Score.objects.filter(scorecard=scorecard).select_related("service", "service__owner")
    if rank is not None:
        scores = scores.filter(rank=rank)
    if team:
        scores = scores.filter(service__owner__slug=team)
    return scores.order_by("rank", "service__name", "service__pk")


@dataclass
class Trend:
    """Services at each level (no level first), day by day."""

    days: list[date]
    levels: list[str]
    series: list[list[int]] = field(default_factory=list)  # one list per level, aligned with `days`


def trend(*, scorecard: Scorecard, days: int = 90, today: date | None = None, service: Service | None = None) -> Trend:
    """The last `days` days of history for a scorecard (or one service on it), in one query. A day with no row for
    a service (not yet scored, out of scope) does not count it."""
    from scorecards.services import org_day

    today = today or org_day(timezone.now())
    start = today - timedelta(days=days - 1)
    rows = ScoreDay.objects.filter(scorecard=scorecard, day__gte=start, day__lte=today)
    if service is not None:
        rows = rows.filter(service=service)
    counts: dict[date, Counter[int]] = defaultdict(Counter)
    for day, rank, n in rows.values_list("day", "rank").annotate(n=Count("pk")).order_by():
        counts[day][rank] = n
    present = sorted(counts)
    names = ["No level", *(level["name"] for level in scorecard.levels)]
    return Trend(
        days=present,
        levels=names,
        series=[[counts[day][rank] for day in present] for rank in range(len(names))],
    )


@dataclass
class FailingRule:
    key: str
    name: str
    level: str
    why: str
    fix: str
    error: str


@dataclass
class ServiceScore:
    """One service on one scorecard, for pages: its level, the levels with whether each is reached, what fails."""

    scorecard: Scorecard
    score: Score
    levels: list[tuple[str, bool]]
    failing: list[FailingRule]


def _service_score(card: Scorecard, score: Score) -> ServiceScore:
    rules = card.rules()
    failing = []
    for item in score.failing:
        rule = rules.get(item["rule"])
        if rule is not None:  # a rule removed since the last scoring is no longer anyone's business
            failing.append(
                FailingRule(item["rule"], rule["name"], rule["level"], rule["why"], rule["fix"], item["error"])
            )
    failing.sort(key=lambda found: (rules[found.key]["rank"], found.name))
    levels = [(level["name"], rank <= score.rank) for rank, level in enumerate(card.levels, start=1)]
    return ServiceScore(scorecard=card, score=score, levels=levels, failing=failing)


def scores_for_services(*, service_ids: Iterable[int]) -> dict[int, list[ServiceScore]]:
    """Each service's scores on the enabled scorecards, failing rules spelled out (name, why, how to fix, error);
    two queries however many services: the team review page and the service page read this."""
    ids = list(service_ids)
    found: dict[int, list[ServiceScore]] = {pk: [] for pk in ids}
    if not ids:
        return found
    cards = {card.pk: card for card in Scorecard.objects.filter(enabled=True)}
    scores = Score.objects.filter(service__in=ids, scorecard__in=list(cards)).order_by("service_id")
    for score in scores:
        card = cards[score.scorecard_id]
        score.scorecard = card
        found[score.service_id].append(_service_score(card, score))
    for rows in found.values():
        rows.sort(key=lambda row: (row.scorecard.title, row.scorecard.name))
    return found


def scores_for_team(*, team_id: int) -> dict[int, list[ServiceScore]]:
    """`scores_for_services` for every service a team owns (three queries)."""
    ids = Service.objects.filter(owner_id=team_id).values_list("pk", flat=True)
    return scores_for_services(service_ids=list(ids))


def initiative_list() -> QuerySet[Initiative]:
    return Initiative.objects.select_related("scorecard")


@dataclass
class TeamProgress:
    team_id: int
    team_slug: str
    team_name: str
    total: int = 0
    met: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.met / self.total) if self.total else 100


@dataclass
class Missing:
    """A service in an initiative's scope that is not there yet."""

    service_slug: str
    service_name: str
    team_id: int
    team_slug: str
    team_name: str
    level: str
    failing: list[str]  # the rule keys that keep it from the target


@dataclass
class Progress:
    total: int = 0
    met: int = 0
    teams: list[TeamProgress] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return round(100 * self.met / self.total) if self.total else 100


def _in_scope_scores(initiative: Initiative) -> QuerySet[Score]:
    """The scores of the services an initiative covers: those its scorecard scores, narrowed by its scope."""
    from scorecards.definition import catalog_filter_apply

    services = catalog_filter_apply(Service.objects.all(), initiative.scope)
    return Score.objects.filter(scorecard_id=initiative.scorecard_id, service__in=services.values("pk"))


def _blocking(initiative: Initiative, failing: list[Any]) -> list[str]:
    """The failing rules that keep a service from the target: those of the target's levels, or of its rule set."""
    keys = [item["rule"] if isinstance(item, dict) else item for item in failing]
    if initiative.target_rank:
        rules = initiative.scorecard.rules()
        return [key for key in keys if key in rules and rules[key]["rank"] <= initiative.target_rank]
    return [key for key in keys if key in initiative.rule_keys]


def initiative_progress(*, initiative: Initiative) -> Progress:
    """Where an initiative stands now: totals, per team, and every service not there yet; one query."""
    progress = Progress()
    teams: dict[int, TeamProgress] = {}
    rows = _in_scope_scores(initiative).values_list(
        "service__slug", "service__name", "service__owner_id", "service__owner__slug", "service__owner__name",
        "rank", "level", "failing",
    )  # fmt: skip
    for slug, name, team_id, team_slug, team_name, rank, level, failing in rows.order_by("service__name"):
        team = teams.setdefault(team_id, TeamProgress(team_id=team_id, team_slug=team_slug, team_name=team_name))
        team.total += 1
        progress.total += 1
        if initiative.met(rank=rank, failing=failing):
            team.met += 1
            progress.met += 1
        else:
            progress.missing.append(
                Missing(slug, name, team_id, team_slug, team_name, level, _blocking(initiative, failing))
            )
    progress.teams = sorted(teams.values(), key=lambda row: (row.percent, row.team_name.lower()))
    return progress


def initiative_burnup(*, initiative: Initiative, today: date) -> tuple[list[tuple[date, int]], int]:
    """Services meeting the target each day from the initiative's start (a week before it, for context) to today or
    its deadline, among those in scope now; and how many are in scope. One query for the history."""
    in_scope = list(_in_scope_scores(initiative).values_list("service_id", flat=True))
    start = initiative.created_at.date() - timedelta(days=7)
    end = min(today, initiative.deadline)
    met: Counter[date] = Counter()
    rows = ScoreDay.objects.filter(
        scorecard_id=initiative.scorecard_id, service__in=in_scope, day__gte=start, day__lte=end
    ).values_list("day", "rank", "failing")
    days = set()
    for day, rank, failing in rows:
        days.add(day)
        if initiative.met(rank=rank, failing=failing):
            met[day] += 1
    return [(day, met[day]) for day in sorted(days)], len(in_scope)
