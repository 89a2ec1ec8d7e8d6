"""Health for the demo organisation: its services run on the simulated runtime, so their checks are simulated.

Each deployed demo service gets a simulated check per environment (no request is made; the page says so), probed
once at load so the catalog shows health before a worker runs. Safe to run again: an existing check is kept.
"""

from collections.abc import Iterable

from django.contrib.auth.models import User

from catalog.models import Service
from deployments.models import Environment
from monitoring import services, tasks
from monitoring.models import HealthCheck, ProbeSource


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
