"""Health and SLOs for the demo organisation: its services run on the simulated runtime, so their checks are simulated.

Each deployed demo service gets a simulated check per environment (no request is made; the page says so), probed
once at load so the catalog shows health before a worker runs. Safe to run again: an existing check is kept.
"""

import math
import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import Service
from deployments.models import Environment
from monitoring import scrape, selectors, series, services, tasks
from monitoring.models import SLO, HealthCheck, MetricSample, ProbeSource, SliSample, SliState


def health_load(*, service_slugs: Iterable[str], admin: User) -> int:
    """Add the missing simulated checks of `service_slugs` in every environment; returns how many were added."""
    environments = list(Environment.objects.order_by("order"))
    have = set(HealthCheck.objects.values_list("service_id", "environment_id"))
    added = 0
    for service in Service.objects.filter(slug__in=list(service_slugs)).select_related("owner"):
        for environment in environments:
            if (service.pk, environment.pk) in have:
                continue
            services.health_check_create(
                user=admin,
                service=service,
                environment=environment,
                # .invalid never resolves (RFC 2606): were the check ever switched to HTTP, it would fail, not probe
                # something real.
                url=f"http://{service.slug}.{environment.slug}.simulated.invalid/healthz",
                source=ProbeSource.SIMULATED,
            )
            added += 1
    if added:
        tasks.run_due_checks(limit=10_000)
    return added


def slo_history_load(*, now: datetime | None = None) -> int:
    """Give the demo's SLOs four weeks of made-up samples (one per 10 minutes), so their budget charts have a past.

    Only SLOs with no samples yet get them (safe to run again). Deterministic: payments-api's availability stays well
    within budget; checkout-api's latency had a slow day nine days ago and has answered slowly since its latest
    deployment (the anomaly found links to it), so its budget is partly spent and it burns (a ticket). The probes
    behind both are simulated, as the page says.
    """
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    rng = random.Random(15)
    written = 0
    # Checkout slows down 12 minutes after the latest deployment of checkout-api (or of a service it depends on) in
    # the last week, so the anomaly the detector finds is linked to it; without one, since yesterday.
    cause = selectors.deployments_between(
        service=Service.objects.get(slug="checkout-api"), since=now - timedelta(days=7), until=now - timedelta(hours=2)
    )
    slow_since = cause[-1].started_at + timedelta(minutes=12) if cause else now - timedelta(hours=40)
    for slo in SLO.objects.filter(service__slug__in=["payments-api", "checkout-api"], samples__isnull=True):
        rows = []
        slow = slo.service.slug == "checkout-api"
        for step in range(28 * 24 * 6, 0, -1):
            at = now - timedelta(minutes=10 * step)
            hours_ago = step / 6
            error = 0.001 + rng.random() * 0.001 if not slow else 0.002 + rng.random() * 0.002
            if slow and 9 * 24 - 12 <= hours_ago < 9 * 24:
                error = 0.03  # the slow day
            if slow and at >= slow_since:
                error = 0.02  # slow answers since the deployment: 2× the allowance, a ticket-level burn
            total = 10  # ten probes in ten minutes
            rows.append(SliSample(slo=slo, at=at, good=total * (1 - error), total=total))
        SliSample.objects.bulk_create(rows, batch_size=5000)
        SLO.objects.filter(pk=slo.pk).update(sli_state=SliState.OK, sli_error="", evaluated_at=now)
        services.slo_anomalies_detect(slo=slo, now=now)
        written += len(rows)
    return written


SLOW_SHARES = (0.0, 0.02, 0.1, 0.35, 0.8, 0.96, 1.0)  # of requests within each simulated bound, once slow


def metrics_history_load(*, now: datetime | None = None) -> int:
    """Give the demo's simulated checks in protected (production-like) environments a week of made-up scraped metrics
    (one sample per 10 minutes, rolled up per hour), so the service pages' production charts have a past; only checks
    with no samples yet (safe to run again). Other environments' charts fill as the workers scrape; keeping the demo's
    load short matters more (the Chromium tests load it).

    Steady traffic with a daily cycle everywhere, except checkout-api: its production latency rises 12 minutes after
    the latest production deployment of it or of a service it depends on in the last week (the demo's rolled-back
    payments-api release), and the anomaly the detector finds in the stored series is linked to that deployment.
    """
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    now = now.replace(minute=now.minute // 10 * 10)
    checks = list(
        HealthCheck.objects.filter(
            source=ProbeSource.SIMULATED, metric_samples__isnull=True, environment__protected=True
        )
        .exclude(metrics_path="")
        .select_related("service", "environment")
    )
    slow_since: dict[int, datetime] = {}
    for check in checks:
        if check.service.slug == "checkout-api":
            deployments = [
                d
                for d in selectors.deployments_between(
                    service=check.service, since=now - timedelta(days=7), until=now - timedelta(hours=2)
                )
                if d.environment_id == check.environment_id
            ]
            if deployments:
                slow_since[check.pk] = deployments[-1].started_at + timedelta(minutes=12)
    rows = []
    for check in checks:
        for step in range(7 * 24 * 6, 0, -1):
            at = now - timedelta(minutes=10 * step)
            day = (at.timestamp() % 86_400) / 86_400
            # Every series repeats daily (a ripple on the daily cycle, no random noise): a week of it holds its normal
            # range, so the only anomaly is the one the story has. Random noise makes new records now and then.
            ripple = math.sin(2 * math.pi * day * 7)
            requests = round(600 * (40 + 25 * math.sin(2 * math.pi * (day - 0.3))) * (1 + 0.03 * ripple))
            slow = check.pk in slow_since and at >= slow_since[check.pk]
            shares = SLOW_SHARES if slow else series.SIMULATED_SHARES
            # Slower at the daily peak, as a loaded service is; the same every day, so a week holds its normal range.
            wobble = 1 - 0.01 * math.sin(2 * math.pi * (day - 0.3))
            buckets = [
                [le, math.floor(requests * min(share * wobble, 1.0))]
                for le, share in zip(series.SIMULATED_BOUNDS, shares, strict=True)
            ]
            buckets[-1][1] = requests
            p50, p95, p99 = scrape.Interval(600, requests, 0, buckets).quantiles_ms()
            rows.append(
                MetricSample(
                    health_check=check,
                    at=at,
                    seconds=600,
                    requests=requests,
                    errors=round(requests * (0.0015 + 0.0004 * ripple)),
                    buckets=buckets,
                    p50_ms=p50,
                    p95_ms=p95,
                    p99_ms=p99,
                )
            )
    MetricSample.objects.bulk_create(rows, batch_size=5000)
    if rows:
        series.metrics_rollup(now=now, hours=7 * 24 + 1)
        for check in checks:
            if check.pk in slow_since:  # the others are steady; the detector's beat task reads them in 10 minutes
                series.metrics_anomalies_detect(check=check, now=now)
    return len(rows)
