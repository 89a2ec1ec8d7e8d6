"""The demo's scorecard history: the catalog as loaded, scored as of each of the last weeks' days, so the trend chart
has something to show on a fresh demo. Each day's facts are those of that day (deployments, review ages), on
today's catalog."""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from scorecards import services
from scorecards.models import Initiative, Scorecard

DAYS = 28


def history_load() -> int:
    """Score every service as of each of the last DAYS days, then now; returns the scores written now."""
    now = timezone.now()
    for back in range(DAYS, 0, -1):
        services.scores_compute(at=now - timedelta(days=back))
    return services.scores_compute(at=now).scores


def initiative_load(*, admin: Any) -> Initiative | None:
    """The demo's initiative: every tier-1 production service at Bronze on Production readiness within a month."""
    scorecard = Scorecard.objects.filter(name="production-readiness").first()
    if scorecard is None or Initiative.objects.filter(name="tier-1-bronze").exists():
        return None
    return services.initiative_create(
        user=admin,
        name="tier-1-bronze",
        title="Every tier-1 service at Bronze",
        description="On-call link, a runbook and an ADR for every critical service before the next on-call rotation.",
        scorecard=scorecard,
        target_rank=1,
        scope={"tier": 1},
        deadline=services.org_day(timezone.now()) + timedelta(days=30),
    )
