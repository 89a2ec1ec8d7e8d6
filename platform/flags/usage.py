"""Reading how flags are used: flag debt (which flags should go) and the evaluation counts a flag's page shows.

A flag is **stale** when either holds:
- nobody has evaluated it, in any environment, for UNUSED_DAYS (30) days (a flag never evaluated counts from its
  creation): whatever the code once asked, it asks no more;
- it is temporary (release or experiment: permanent flags such as kill switches may serve one answer for years) and
  every environment serves one and the same variant to everyone (on, no rule or rollout share serving another), and
  it has not changed for LAUNCHED_DAYS (14) days: the release is done, and the flag is only a branch in the code.

Both are read from rows the flag table already loads (a setting's last evaluation time, its rules and rollout, the
flag's last change), so the service page shows debt without another query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from flags.models import EvaluationCount, Flag, FlagSetting

UNUSED_DAYS = 30
LAUNCHED_DAYS = 14
CHART_DAYS = 14


@dataclass(frozen=True)
class Debt:
    reason: str  # "unused" or "launched"
    summary: str
    since: datetime
    variant: str = ""  # launched: the variant everyone gets, the one to keep in the code


def served_variants(setting: FlagSetting) -> set[str] | None:
    """The variants a setting can serve; None when it is off (the SDK's code default applies)."""
    if not setting.enabled:
        return None
    served: set[str] = set()
    if setting.rollout:
        served |= {variant for variant, weight in setting.rollout.items() if weight > 0}
    else:
        served.add(setting.default_variant)
    for rule in setting.rules:
        if rule.get("rollout"):
            served |= {variant for variant, weight in rule["rollout"] if weight > 0}
        elif rule.get("variant"):
            served.add(rule["variant"])
    return served


def flag_debt(flag: Flag, settings: Iterable[FlagSetting], *, now: datetime | None = None) -> Debt | None:
    """Why `flag` is stale, or None. `settings` are its settings in every environment (usually prefetched)."""
    now = now or timezone.now()
    settings = list(settings)
    last = max((s.last_evaluated_at for s in settings if s.last_evaluated_at is not None), default=None)
    quiet_since = last or flag.created_at
    if now - quiet_since >= timedelta(days=UNUSED_DAYS):
        days = (now - quiet_since).days
        summary = (
            f"Not evaluated for {days} days"
            if last is not None
            else f"Never evaluated in the {days} days since it was created"
        )
        return Debt(reason="unused", summary=summary, since=quiet_since)
    if flag.temporary and settings and now - flag.updated_at >= timedelta(days=LAUNCHED_DAYS):
        served = [served_variants(setting) for setting in settings]
        answers = {frozenset(variants) if variants is not None else None for variants in served}
        if len(answers) == 1:
            only = next(iter(answers))
            if only is not None and len(only) == 1:
                variant = next(iter(only))
                days = (now - flag.updated_at).days
                summary = f"Serves {variant} to everyone, everywhere, unchanged for {days} days"
                return Debt(reason="launched", summary=summary, since=flag.updated_at, variant=variant)
    return None


def stale_candidates(*, now: datetime | None = None) -> QuerySet[Flag]:
    """Flags old enough that a rule could hold (the rest cannot be stale yet), with what flag_debt reads."""
    now = now or timezone.now()
    return (
        Flag.objects.filter(
            Q(created_at__lte=now - timedelta(days=UNUSED_DAYS))
            | Q(temporary=True, updated_at__lte=now - timedelta(days=LAUNCHED_DAYS))
        )
        .select_related("service__owner")
        .prefetch_related("settings")
        .order_by("service__name", "key")
    )


def stale_flags(*, now: datetime | None = None, team_slug: str = "", service_slug: str = "") -> list[tuple[Flag, Debt]]:
    """Every stale flag with its reason, of one owner team's or one service's when a slug is given. Two queries."""
    now = now or timezone.now()
    candidates = stale_candidates(now=now)
    if team_slug:
        candidates = candidates.filter(service__owner__slug=team_slug)
    if service_slug:
        candidates = candidates.filter(service__slug=service_slug)
    found = []
    for flag in candidates:
        debt = flag_debt(flag, flag.settings.all(), now=now)
        if debt is not None:
            found.append((flag, debt))
    return found


def stale_counts(service_ids: Iterable[int], *, now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """{service id: {"count": flags, "stale": stale flags, "stale_keys": their keys}} for every id asked (governance's
    `flags` fact): one query, two when there are flags."""
    now = now or timezone.now()
    ids = list(service_ids)
    result: dict[int, dict[str, Any]] = {service_id: {"count": 0, "stale": 0, "stale_keys": []} for service_id in ids}
    for flag in Flag.objects.filter(service_id__in=ids).prefetch_related("settings").order_by("key"):
        entry = result[flag.service_id]
        entry["count"] += 1
        if flag_debt(flag, flag.settings.all(), now=now) is not None:
            entry["stale"] += 1
            entry["stale_keys"].append(flag.key)
    return result


def evaluation_summary(flag: Flag, *, today: date | None = None) -> dict[int, Any]:
    """The flag page's counts: per environment, each variant's evaluations over the last CHART_DAYS days (one
    column a day, oldest first) and in total, with the share of the total. One query."""
    today = today or timezone.now().date()
    first = today - timedelta(days=CHART_DAYS - 1)
    rows = (
        EvaluationCount.objects.filter(flag=flag, day__gte=first, day__lte=today)
        .values("environment_id", "variant", "day")
        .annotate(total=Sum("count"))
    )
    days = [first + timedelta(days=offset) for offset in range(CHART_DAYS)]
    by_env: dict[int, dict[str, dict[date, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        by_env[row["environment_id"]][row["variant"]][row["day"]] = row["total"]
    summary: dict[int, Any] = {}
    for environment_id, variants in by_env.items():
        total = sum(sum(per_day.values()) for per_day in variants.values())
        daily = [sum(per_day.get(day, 0) for per_day in variants.values()) for day in days]
        peak = max(daily) or 1
        summary[environment_id] = {
            "total": total,
            "variants": sorted(
                (
                    {
                        "name": name,
                        "count": sum(per_day.values()),
                        "share": 100 * sum(per_day.values()) / total if total else 0,
                    }
                    for name, per_day in variants.items()
                ),
                key=lambda entry: -entry["count"],
            ),
            "days": [
                {"day": day, "count": count, "height": round(100 * count / peak)}
                for day, count in zip(days, daily, strict=True)
            ],
        }
    return summary
