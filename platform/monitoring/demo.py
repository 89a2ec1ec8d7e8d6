"""Health and SLOs for the demo organisation: its services run on the simulated runtime, so their checks are simulated.

Each deployed demo service gets a simulated check per environment (no request is made; the page says so), probed
once at load so the catalog shows health before a worker runs. Safe to run again: an existing check is kept.
"""

import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import Service
from deployments.models import Environment
from monitoring import selectors, services, tasks
from monitoring.models import SLO, HealthCheck, ProbeSource, SliSample, SliState


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
