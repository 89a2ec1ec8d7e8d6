"""Writes: health checks and SLOs (with audit events), probe results (in batches) and SLI samples."""

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from audit import services as audit
from catalog.models import Service
from catalog.permissions import user_can
from deployments import machine, runtimes
from deployments.models import Deployment
from monitoring import anomaly, burn, openslo, replicas, selectors, sources
from monitoring.models import (
    SLO,
    Anomaly,
    HealthCheck,
    ProbeResult,
    ProbeRollup,
    ProbeSource,
    SliSample,
    SliState,
    SloDetectorState,
)
from monitoring.probe import Outcome, url_refusal, url_validate

logger = structlog.get_logger(__name__)

EDITABLE = (
    "source",
    "url",
    "interval_seconds",
    "timeout_ms",
    "expected_status",
    "body_match",
    "enabled",
    "metrics_path",
)
# What a person may choose; simulated checks are the demo's, made by its loader.
CHOSEN_SOURCES = (ProbeSource.HTTP, ProbeSource.REPLICAS)


def health_check_require_change(*, user: User | AnonymousUser, service: Service) -> None:
    """Raise PermissionDenied unless `user` may change `service` (its owners and platform admins)."""
    if not user_can(user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s health checks.")


def _urls_validate(check: HealthCheck) -> None:
    """The probe's URL and the metrics page it implies, under the same rules (an admin path is refused for both);
    or, for a check of the deployed replicas, a deploy target whose runtime says where they run."""
    if check.source == ProbeSource.REPLICAS:
        replicas.place_validate(check)
        return
    if not check.url and check.source == ProbeSource.HTTP:
        raise ValidationError({"url": "Give the URL to probe, or choose source replicas to probe each replica."})
    url_validate(check.url)
    if check.metrics_path.startswith("/"):
        if why := url_refusal(check.metrics_url):
            raise ValidationError({"metrics_path": why})


def _snapshot(check: HealthCheck) -> dict[str, Any]:
    return {field: getattr(check, field) for field in EDITABLE} | {"environment": check.environment.slug}


@transaction.atomic
def health_check_create(*, user: User | AnonymousUser, service: Service, **fields: Any) -> HealthCheck:
    """Add a check of `service` in `fields["environment"]`; the first probe is due at once."""
    health_check_require_change(user=user, service=service)
    check = HealthCheck(service=service, **fields)
    _urls_validate(check)
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
    _urls_validate(check)
    check.full_clean()
    if before["source"] != check.source:
        # The counters kept were another target's (one page, or each replica's): the next scrape starts afresh.
        check.metrics_state = {}
    if any(before[field] != getattr(check, field) for field in ("source", "url", "interval_seconds")):
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


def deployment_watch(*, deployment_id: int) -> HealthCheck | None:
    """Watch what a successful deployment placed: when its runtime says where the replicas run and nothing watches
    that service in that environment yet, add a check of every deployed replica, say so on the deployment's timeline
    and in the audit log. Returns the check added, if one was."""
    if not settings.MONITORING_WATCH_DEPLOYMENTS:
        return None
    deployment = Deployment.objects.select_related("environment", "release__service").get(pk=deployment_id)
    if not runtimes.get(deployment.runtime).lists_replicas:
        return None
    with transaction.atomic():
        check, created = HealthCheck.objects.get_or_create(
            service_id=deployment.release.service_id,
            environment=deployment.environment,
            defaults={"source": ProbeSource.REPLICAS, "url": ""},
        )
        if not created:
            return None
        audit.event_record(
            actor=None,
            actor_repr="runway",
            action="health_check.created",
            target=check,
            after=_snapshot(check),
            service_id=check.service_id,
        )
        machine.note(
            deployment,
            f"Runway watches {deployment.release.service} in {deployment.environment} from now on: a health check of"
            " every deployed replica was added, which follows each deployment (change it on the service's page).",
        )
    return check


def deployment_placed_watch(*, deployment: Any, **_: Any) -> None:
    """The deployments signal's receiver: watch once the success is committed, so that a failure here can never undo
    it (it is logged instead)."""

    def watch() -> None:
        try:
            deployment_watch(deployment_id=deployment.pk)
        except Exception:
            logger.exception("monitoring.deployment_watch_failed", deployment_id=deployment.pk)

    transaction.on_commit(watch)


@transaction.atomic
def service_stopped_pause(*, service: Service, **_: Any) -> str:
    """The deployments signal's receiver: a decommissioned service no longer runs anywhere, so its checks would only
    fail (and their SLOs page people); pause them, each with an audit event, and say so on the timeline."""
    checks = list(HealthCheck.objects.filter(service=service, enabled=True).select_related("environment"))
    for check in checks:
        before = _snapshot(check)
        check.enabled = False
        check.save(update_fields=["enabled", "updated_at"])
        audit.event_record(
            actor=None,
            actor_repr="runway",
            action="health_check.updated",
            target=check,
            before=before,
            after=_snapshot(check),
            service_id=service.pk,
        )
    if not checks:
        return ""
    return f"{len(checks)} health check{'s' if len(checks) != 1 else ''} paused: nothing runs to probe."


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


# --- SLOs ---------------------------------------------------------------------------------------------------------

EVALUATE_EVERY = timedelta(minutes=1)

SLO_FIELDS = (
    "display_name",
    "description",
    "sli_kind",
    "source",
    "good_query",
    "total_query",
    "counter",
    "threshold_query",
    "threshold_op",
    "threshold_value",
    "target",
    "window_days",
    "document",
    "incidents",
)


def _slo_snapshot(slo: SLO) -> dict[str, Any]:
    return {"name": slo.name, "target": slo.target, "window_days": slo.window_days, "document": slo.document}


def _slo_apply(slo: SLO, parsed: openslo.ParsedSlo) -> bool:
    """Copy a parsed document onto `slo`; True when anything changed. A changed indicator starts the counters over."""
    changed = False
    for name in SLO_FIELDS:
        value = getattr(parsed, name)
        if getattr(slo, name) != value:
            setattr(slo, name, value)
            changed = True
    if slo.environment_slug != parsed.environment:
        slo.environment_slug = parsed.environment
        changed = True
    if changed:
        slo.last_good = slo.last_total = None
    return changed


def _document_parse(document: Any, service: Service) -> openslo.ParsedSlo:
    parsed = openslo.slo_parse(document)
    if parsed.service != service.slug:
        raise openslo.SloError(f"must be this service ({service.slug}).", "spec.service")
    return parsed


@transaction.atomic
def slo_create(*, user: User | AnonymousUser, service: Service, document: Any) -> SLO:
    """Add an SLO written in the UI (no file owns it); openslo.SloError names the field to fix."""
    health_check_require_change(user=user, service=service)
    parsed = _document_parse(document, service)
    if SLO.objects.filter(service=service, name=parsed.name).exists():
        raise openslo.SloError("This service already has an SLO with this name.", "metadata.name")
    slo = SLO(service=service, name=parsed.name)
    _slo_apply(slo, parsed)
    slo.save()
    audit.event_record(actor=user, action="slo.created", target=slo, after=_slo_snapshot(slo), service_id=service.pk)
    return slo


def slo_require_editable(slo: SLO) -> None:
    if slo.catalog_source_id is not None:
        raise PermissionDenied(f"{slo.source_path} in the catalog source owns this SLO; change the file instead.")


@transaction.atomic
def slo_update(*, user: User | AnonymousUser, slo: SLO, document: Any) -> SLO:
    """Replace a UI-owned SLO's document (its name stays); a file-owned SLO is refused."""
    health_check_require_change(user=user, service=slo.service)
    slo_require_editable(slo)
    parsed = _document_parse(document, slo.service)
    if parsed.name != slo.name:
        raise openslo.SloError(f"must stay {slo.name!r}; add a new SLO to use another name.", "metadata.name")
    before = _slo_snapshot(slo)
    if _slo_apply(slo, parsed):
        slo.save()
        audit.event_record(
            actor=user,
            action="slo.updated",
            target=slo,
            before=before,
            after=_slo_snapshot(slo),
            service_id=slo.service_id,
        )
    return slo


@transaction.atomic
def slo_delete(*, user: User | AnonymousUser, slo: SLO) -> None:
    """Remove a UI-owned SLO and its samples."""
    health_check_require_change(user=user, service=slo.service)
    slo_require_editable(slo)
    audit.event_record(
        actor=user, action="slo.deleted", target=slo, before=_slo_snapshot(slo), service_id=slo.service_id
    )
    slo.delete()


def slo_documents_import(
    *, documents: list[Any], source: Any, report: Any, actor: User | None, skipped: set[str]
) -> None:
    """The catalog importer's handler for `openslo/v1` documents (registered in MonitoringConfig.ready).

    Runs inside the import's transaction, after the catalog's own entities are written, so an SLO can name a service
    the same import adds. Each document that cannot be used is one error in the report; the others are imported. SLOs
    this source owned that are no longer in it are removed, except those in files skipped as unchanged.
    """
    from catalog.sync import Problem

    owned = {(slo.service_id, slo.name): slo for slo in SLO.objects.filter(catalog_source=source)}
    if not documents and all(slo.source_path in skipped for slo in owned.values()):
        return  # nothing read again and nothing gone: one query for an unchanged tree
    services = {s.slug: s for s in Service.objects.filter(slug__in=_service_names(documents))}
    seen: set[tuple[int, str]] = set()
    for document in documents:
        metadata = document.body.get("metadata") if isinstance(document.body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        ref = f"slo:{name}"[:200] if isinstance(name, str) else None
        try:
            parsed = openslo.slo_parse(document.body)
            service = services.get(parsed.service)
            if service is None:
                raise openslo.SloError(f"There is no service {parsed.service!r} in the catalog.", "spec.service")
            key = (service.pk, parsed.name)
            if key in seen:
                raise openslo.SloError(
                    f"{service.slug} has another SLO named {parsed.name!r} in this import.", "metadata.name"
                )
            existing = owned.get(key) or SLO.objects.filter(service=service, name=parsed.name).first()
            if existing is not None and existing.catalog_source_id not in (None, source.pk):
                raise openslo.SloError(
                    f"{service.slug}/{parsed.name} belongs to another catalog source.", "metadata.name"
                )
        except openslo.SloError as error:
            report.errors.append(Problem(document.path, str(error), document.index, ref, error.field or None))
            continue
        seen.add(key)
        slo = existing or SLO(service=service, name=parsed.name)
        created = slo.pk is None
        before = None if created else _slo_snapshot(slo)
        changed = _slo_apply(slo, parsed)
        moved = slo.catalog_source_id != source.pk or slo.source_path != document.path
        slo.catalog_source, slo.source_path = source, document.path
        if created or changed or moved:
            slo.save()
            audit.event_record(
                actor=actor,
                action="slo.created" if created else "slo.updated",
                target=slo,
                before=before,
                after=_slo_snapshot(slo),
                service_id=service.pk,
            )
            (report.created if created else report.updated)["slo"] += 1
        else:
            report.unchanged += 1
    for key, slo in owned.items():
        if key not in seen and slo.source_path not in skipped:
            audit.event_record(
                actor=actor, action="slo.deleted", target=slo, before=_slo_snapshot(slo), service_id=slo.service_id
            )
            report.missing.append(f"slo:{slo.service.slug}/{slo.name}")
            slo.delete()


def _service_names(documents: list[Any]) -> set[str]:
    names = set()
    for document in documents:
        spec = document.body.get("spec") if isinstance(document.body, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("service"), str):
            names.add(spec["service"][:100])
    return names


def slo_evaluate(*, slo_id: int, now: datetime | None = None) -> SliSample | None:
    """Read the SLI's events since the last evaluation and record them as one sample.

    The SLO is claimed first (its `evaluated_at` moved on only if nobody else did it meanwhile), so a second worker
    or a redelivered task cannot count the same minute twice. A source that cannot be read makes the SLI unknown
    (with the reason) and records nothing: no data is never counted as good events.
    """
    now = now or timezone.now()
    slo = SLO.objects.filter(pk=slo_id).first()
    if slo is None or (slo.evaluated_at is not None and now - slo.evaluated_at < EVALUATE_EVERY / 2):
        return None
    since = slo.evaluated_at or now - EVALUATE_EVERY
    if not SLO.objects.filter(pk=slo.pk, evaluated_at=slo.evaluated_at).update(evaluated_at=now):
        return None
    try:
        good, total = sources.sli_events(slo=slo, since=since, now=now)
    except sources.SourceUnavailable as error:
        SLO.objects.filter(pk=slo.pk).update(sli_state=SliState.UNKNOWN, sli_error=str(error)[:300])
        return None
    sample = SliSample.objects.create(slo=slo, at=now, good=good, total=total) if total > 0 else None
    SLO.objects.filter(pk=slo.pk).update(
        sli_state=SliState.OK, sli_error="", last_good=slo.last_good, last_total=slo.last_total
    )
    return sample


def slo_samples_purge(*, now: datetime | None = None) -> int:
    """Delete samples older than any SLO window can reach (90 days)."""
    now = now or timezone.now()
    deleted, _ = SliSample.objects.filter(at__lt=now - timedelta(days=91)).delete()
    return deleted


# --- anomalies on SLIs --------------------------------------------------------------------------------------------

ANOMALY_BUCKET = timedelta(minutes=10)
ANOMALY_HISTORY = timedelta(days=8)  # a week of history plus the day the detector warms up on
DEPLOYMENT_LOOKBACK = timedelta(hours=2)


def slo_anomalies_detect(*, slo: SLO, now: datetime | None = None) -> list[Anomaly]:
    """Run the detector over one SLO's error ratio (see `slo_anomalies_detect_many`)."""
    return slo_anomalies_detect_many(slos=[slo], now=now)


def slo_anomalies_detect_many(*, slos: list[SLO], now: datetime | None = None) -> list[Anomaly]:
    """Feed each SLO's error ratio (10-minute buckets) to its streaming detector and record each episode start not
    recorded yet, linked to the deployment that preceded it (idempotent).

    Each detector resumes from its kept state (`SloDetectorState`, the batch's states read in one query) and is fed
    the whole buckets since; without a readable state it replays the last eight days. The bucket under way is scored
    too, so that a burst of errors does not wait for its bucket to end, but on a copy: the kept detector learns it
    once it is whole. The states are written back in one statement; one SLO's failure is logged and skips it only.
    """
    now = now or timezone.now()
    config = anomaly.DetectorConfig.for_step(ANOMALY_BUCKET.total_seconds())
    kept = {state.slo_id: state for state in SloDetectorState.objects.filter(slo__in=slos)}
    states: list[SloDetectorState] = []
    created: list[Anomaly] = []
    for slo in slos:
        try:
            detector, since = _slo_detector_resume(kept.get(slo.pk), config=config, now=now)
            buckets = selectors.slo_error_series(slo, since=since, now=now, bucket=ANOMALY_BUCKET)
            whole = [(at, ratio) for at, ratio in buckets if at + ANOMALY_BUCKET <= now]
            found = []
            for at, ratio in whole:
                alert = detector.update(at.timestamp(), ratio)
                if alert is not None:
                    found.append((at, alert))
            if whole:
                states.append(
                    SloDetectorState(slo=slo, fed_until=whole[-1][0] + ANOMALY_BUCKET, state=detector.state())
                )
            if len(buckets) > len(whole):
                scout = anomaly.SeriesDetector.restore(detector.state(), config)
                for at, ratio in buckets[len(whole) :]:
                    alert = scout.update(at.timestamp(), ratio)
                    if alert is not None:
                        found.append((at, alert))
            created.extend(_slo_anomalies_record(slo, found))
        except Exception:  # one SLO's surprise must not stop the others
            logger.exception("monitoring.anomaly_detection_crashed", slo_id=slo.pk)
    SloDetectorState.objects.bulk_create(
        states, update_conflicts=True, unique_fields=["slo"], update_fields=["fed_until", "state", "updated_at"]
    )
    return created


def _slo_detector_resume(
    kept: SloDetectorState | None, *, config: anomaly.DetectorConfig, now: datetime
) -> tuple[anomaly.SeriesDetector, datetime]:
    """The SLO's detector and the time its next samples start after: the kept one, or a fresh one for eight days."""
    if kept is not None:
        try:
            detector = anomaly.SeriesDetector.restore(bytes(kept.state), config)
        except anomaly.StateError as error:
            logger.info("monitoring.slo_detector_state_replayed", slo_id=kept.slo_id, reason=str(error))
        else:
            # Samples are read after `since`: a hair before the boundary keeps one taken exactly on it.
            return detector, kept.fed_until - timedelta(microseconds=1)
    return anomaly.SeriesDetector(config), now - ANOMALY_HISTORY


def _slo_anomalies_record(slo: SLO, found: list[tuple[datetime, anomaly.Alert]]) -> list[Anomaly]:
    if not found:
        return []
    known = set(Anomaly.objects.filter(slo=slo).values_list("started_at", flat=True))
    created = []
    for at, alert in found:
        if at in known:
            continue
        known.add(at)
        created.append(
            Anomaly.objects.create(
                slo=slo,
                started_at=at,
                value=alert.value,
                reason=alert.reason,
                low=alert.low,
                high=alert.high,
                deployment=selectors.deployment_preceding(service=slo.service, at=at, within=DEPLOYMENT_LOOKBACK),
            )
        )
    return created


# --- incidents from burning SLOs ----------------------------------------------------------------------------------

SLO_INCIDENT_SEVERITY = "SEV2"  # a page: what Alertmanager's `severity: page` opens too


def slo_incident_group(slo: SLO) -> str:
    """The incident's alert group for an SLO's burns: at most one unresolved incident per SLO (the incidents'
    partial unique constraint), so a burn opens one incident however many evaluations see it."""
    return hashlib.sha256(f"slo\x00{slo.pk}".encode()).hexdigest()


def slo_opens_incidents(slo: SLO) -> bool:
    return (slo.incidents or settings.MONITORING_SLO_INCIDENTS) == "page"


def _burn_started(budget: Any, now: datetime) -> datetime:
    """When users started to be hurt, as far as the alert knows: the start of the short window of the rule that fired
    (5 minutes for the fast rule, 30 for the slow one)."""
    for _long, short, factor in burn.PAGE_RULES:
        rate = budget.burn_rates.get(short)
        if rate is not None and rate >= factor:
            return now - burn.WINDOWS[short]
    return now


def slo_incidents_sync(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Open an incident for each SLO whose page alert fires (where its setting allows), and mitigate the incident when
    the burn stops; what happened per SLO acted on. Idempotent: an open incident is joined silently, so one burn is
    one incident, not one per evaluation; a page alert firing again on a mitigated incident reopens it. An SLO whose
    SLI is unknown changes nothing: no data says neither that it burns nor that it stopped."""
    from incidents import selectors as incident_selectors
    from incidents import services as incident_services
    from incidents.models import Incident, Status

    now = now or timezone.now()
    statuses = selectors.slo_statuses(list(SLO.objects.select_related("service").order_by("pk")), now=now)
    groups = {slo_incident_group(status.slo): status for status in statuses}
    open_incidents = {
        incident.alert_group: incident
        for incident in Incident.objects.filter(alert_group__in=list(groups)).exclude(status=Status.RESOLVED)
    }
    actions = []
    for group, status in groups.items():
        slo, incident = status.slo, open_incidents.get(group)
        if status.status == burn.UNKNOWN:
            continue
        paging = status.budget.alert == "page"
        burn_1h = status.budget.burn_rates.get("1h") or 0.0
        if paging and incident is None and slo_opens_incidents(slo):
            try:
                with transaction.atomic():
                    incident = incident_services.incident_declare(
                        title=f"SLO {slo.display_name or slo.name} is burning its error budget on {slo.service.slug}"[
                            :200
                        ],
                        severity=SLO_INCIDENT_SEVERITY,
                        summary=f"{status.reason} Burn rate {burn_1h:.1f}× over the last hour against a target of "
                        f"{slo.target * 100:g} % over {slo.window_days} days.",
                        services=[slo.service],
                        created_by=None,
                        started_at=_burn_started(status.budget, now),
                        source=Incident.Source.SLO,
                        alert_group=group,
                        note=f"Opened by the SLO {slo.service.slug}/{slo.name}'s page alert.",
                    )
                    suspects = incident_selectors.suspect_deployments(incident=incident)
                    if suspects:
                        named = "; ".join(
                            f"#{s.deployment.pk} of {s.deployment.service.slug} ({s.deployment.environment.name}, "
                            f"{s.minutes_before} min before)"
                            for s in suspects[:5]
                        )
                        incident_services.incident_update(
                            incident=incident, user=None, message=f"Suspect deployments: {named}."
                        )
            except IntegrityError:  # another worker's evaluation opened it a moment ago
                continue
            actions.append({"slo": slo.pk, "incident": incident.pk, "action": "opened"})
        elif paging and incident is not None and incident.status == Status.MITIGATED:
            incident_services.incident_update(
                incident=incident,
                user=None,
                status=Status.INVESTIGATING,
                message=f"The SLO {slo.name} pages again: burning {burn_1h:.1f}× over the last hour.",
            )
            actions.append({"slo": slo.pk, "incident": incident.pk, "action": "reopened"})
        elif not paging and incident is not None and incident.status in (Status.INVESTIGATING, Status.IDENTIFIED):
            incident_services.incident_update(
                incident=incident,
                user=None,
                status=Status.MITIGATED,
                at=now,
                message=f"The SLO {slo.name}'s page alert stopped: the burn has ended (resolve it once you are sure).",
            )
            actions.append({"slo": slo.pk, "incident": incident.pk, "action": "mitigated"})
    return actions
