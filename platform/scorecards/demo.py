"""The demo's scorecard history: the catalog as loaded, scored as of each of the last weeks' days, so the trend chart
has something to show on a fresh demo. Each day's facts are those of that day (deployments, review ages), on
today's catalog."""

from datetime import timedelta

from django.utils import timezone

from scorecards import services

DAYS = 28


def history_load() -> int:
    """Score every service as of each of the last DAYS days, then now; returns the scores written now."""
    now = timezone.now()
    for back in range(DAYS, 0, -1):
        services.scores_compute(at=now - timedelta(days=back))
    return services.scores_compute(at=now).scores
