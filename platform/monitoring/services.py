"""Writes: health checks (with audit events) and probe results (in batches)."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from catalog.permissions import user_can
from monitoring.models import HealthCheck, ProbeResult, ProbeRollup
from monitoring.probe import Outcome, url_validate

EDITABLE = ("url", "interval_seconds", "timeout_ms", "expected_status", "body_match", "enabled")


def health_check_require_change(*, user: User | AnonymousUser, service: Service) -> None:
    """Raise PermissionDenied unless `user` may change `service` (its owners and platform admins)."""
    if not user_can(user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s health checks.")


def _snapshot(check: HealthCheck) -> dict[str, Any]:
    return {field: getattr(check, field) for field in EDITABLE} | {"environment": check.environment.slug}


@transaction.atomic
def health_check_create(*, user: User | AnonymousUser, service: Service, **fields: Any) -> HealthCheck:
    """Add a check of `service` in `fields["environment"]`; the first probe is due at once."""
    health_check_require_change(user=user, service=service)
    check = HealthCheck(service=service, **fields)
    url_validate(check.url)
    check.full_clean()
    check.save()
    audit.event_record(
        actor=user, action="health_check.created", target=check, after=_snapshot(check), service_id=service.pk
    )
    return check


@transaction.atomic
def health_check_update(*, user: User | AnonymousUser, check: HealthCheck, **fields: Any) -> HealthCheck:
    """Change a check's probe; a changed URL or interval is probed at once rather than at the old time."""
    health_check_require_change(user=user, service=check.service)
    before = _snapshot(check)
    for field, value in fields.items():
        if field not in EDITABLE:
            raise ValueError(f"{field} is not editable")
        setattr(check, field, value)
    url_validate(check.url)
    check.full_clean()
    if before["url"] != check.url or before["interval_seconds"] != check.interval_seconds:
        check.next_run_at = timezone.now()
    check.save()
    audit.event_record(
        actor=user,
        action="health_check.updated",
        target=check,
        before=before,
        after=_snapshot(check),
        service_id=check.service_id,
    )
    return check


@transaction.atomic
def health_check_delete(*, user: User | AnonymousUser, check: HealthCheck) -> None:
    """Remove a check and its results."""
    health_check_require_change(user=user, service=check.service)
    audit.event_record(
        actor=user, action="health_check.deleted", target=check, before=_snapshot(check), service_id=check.service_id
    )
    check.delete()


def results_record(*, outcomes: Iterable[tuple[int, datetime, Outcome]]) -> int:
    """Write probe outcomes (check id, time, outcome) in one batch; returns how many were written."""
    rows = [
        ProbeResult(
            health_check_id=check_id,
            checked_at=at,
            ok=outcome.ok,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )
        for check_id, at, outcome in outcomes
    ]
    # A check deleted while its probe ran has no row to point at: skip its result rather than fail the batch.
    live = set(HealthCheck.objects.filter(pk__in={row.health_check_id for row in rows}).values_list("pk", flat=True))
    rows = [row for row in rows if row.health_check_id in live]
    ProbeResult.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def results_rollup(*, now: datetime | None = None, hours: int = 3) -> int:
    """Count the last `hours` complete hours of raw results into ProbeRollup (idempotent: rows are replaced), then
    purge raw results older than MONITORING_RAW_RETENTION_DAYS. Returns the rollup rows written."""
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    since = this_hour - timedelta(hours=hours)
    counts = (
        ProbeResult.objects.filter(checked_at__gte=since, checked_at__lt=this_hour)
        .annotate(hour=TruncHour("checked_at"))
        .values("health_check_id", "hour")
        .annotate(total=Count("id"), ok_count=Count("id", filter=Q(ok=True)), latency=Sum("latency_ms"))
    )
    rows = [
        ProbeRollup(
            health_check_id=row["health_check_id"],
            hour=row["hour"],
            total=row["total"],
            ok=row["ok_count"],
            latency_ms_sum=row["latency"] or 0,
        )
        for row in counts
    ]
    with transaction.atomic():
        ProbeRollup.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["health_check", "hour"],
            update_fields=["total", "ok", "latency_ms_sum"],
        )
    cutoff = now - timedelta(days=settings.MONITORING_RAW_RETENTION_DAYS)
    ProbeResult.objects.filter(checked_at__lt=cutoff).delete()
    return len(rows)
