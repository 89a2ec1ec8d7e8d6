"""Prometheus Alertmanager's webhook receiver: notifications (payload version 4) open, join and mitigate incidents.

The payload is Alertmanager's own (notify/webhook's Message: template.Data plus version, groupKey and
truncatedAlerts). Firing alerts with a `service` label open an incident for that service, or join the unresolved one
of the same alert group (receiver + groupKey + service); when every alert of a service in a notification is
resolved, its incident is mitigated at the last alert's end. Each receiver has its own bearer token (hashed,
revocable). A notification is checked whole before anything is written: malformed, too large, replayed (the same
body twice) or naming an unknown service, it is refused with a 4xx that says why, and nothing changes.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import services as audit
from catalog.models import Service
from incidents import postmortems, services
from incidents.models import AlertNotification, AlertReceiver, Incident, IncidentUpdate, Status

TOKEN_PREFIX = "rwam"
MAX_ALERTS = 1000
MAX_LABELS = 100
MAX_KEY = 200
MAX_LABEL_VALUE = 2000
MAX_ANNOTATION_VALUE = 10000
MAX_GROUP_KEY = 1000
# An alert rule says how bad it is with a `severity` label: SEV1..SEV4 as such, or the usual words.
SEVERITIES = {
    "sev1": "SEV1",
    "sev2": "SEV2",
    "sev3": "SEV3",
    "sev4": "SEV4",
    "critical": "SEV2",
    "page": "SEV2",
    "error": "SEV3",
    "warning": "SEV3",
    "info": "SEV4",
}
DEFAULT_SEVERITY = "SEV3"


class Refused(Exception):
    """A notification refused whole: `status` is the HTTP code, `errors` say what to fix."""

    def __init__(self, status: int, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


# Receivers and their tokens


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def receiver_create(*, name: str, created_by: User) -> tuple[AlertReceiver, str]:
    """A receiver and its token, which is returned here once and never stored (only its digest is)."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    receiver = AlertReceiver(name=name, prefix=prefix, digest=_digest(secret), created_by=created_by)
    receiver.full_clean()
    receiver.save()
    audit.event_record(actor=created_by, action="alert_receiver.created", target=receiver, after={"name": name})
    return receiver, f"{TOKEN_PREFIX}_{prefix}_{secret}"


@transaction.atomic
def receiver_revoke(*, receiver: AlertReceiver, user: User) -> AlertReceiver:
    """From now on its token is refused (401); what it did stays."""
    if receiver.revoked_at is None:
        receiver.revoked_at = timezone.now()
        receiver.save(update_fields=["revoked_at"])
        audit.event_record(actor=user, action="alert_receiver.revoked", target=receiver)
    return receiver


def receiver_authenticate(authorization: str) -> AlertReceiver:
    """The active receiver whose token is in `Authorization: Bearer rwam_<prefix>_<secret>`; Refused(401) if none."""
    scheme, _, token = authorization.partition(" ")
    parts = token.strip().split("_", 2)
    if scheme.lower() != "bearer" or len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1].isalnum():
        raise Refused(401, {"detail": "Send the receiver's token: Authorization: Bearer rwam_…"})
    receiver = AlertReceiver.objects.filter(prefix=parts[1][:16]).first()
    if receiver is None or not hmac.compare_digest(receiver.digest, _digest(parts[2])):
        raise Refused(401, {"detail": "This token is not a receiver's token."})
    if receiver.revoked_at is not None:
        raise Refused(401, {"detail": f"The receiver {receiver.name}'s token was revoked; ask a platform admin."})
    return receiver


# The payload


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")


@dataclass(frozen=True)
class Notification:
    status: str
    group_key: str
    receiver: str
    alerts: list[Alert]
    common_annotations: dict[str, str]
    external_url: str


def _strings(value: Any, where: str, *, max_value: int, errors: dict[str, list[str]]) -> dict[str, str]:
    if not isinstance(value, dict):
        errors.setdefault(where, []).append("Must be an object of strings.")
        return {}
    if len(value) > MAX_LABELS:
        errors.setdefault(where, []).append(f"At most {MAX_LABELS} entries.")
        return {}
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > MAX_KEY or len(item) > max_value:
            errors.setdefault(where, []).append(
                f"{key[:40]!r} must be a string of at most {max_value} characters (names at most {MAX_KEY})."
            )
            return {}
        if "\x00" in key or "\x00" in item:
            errors.setdefault(where, []).append(f"{key[:40]!r} holds a NUL character.")
            return {}
    return value


def _moment(value: Any, where: str, errors: dict[str, list[str]], *, zero_ok: bool) -> datetime | None:
    if not isinstance(value, str) or len(value) > 64:
        errors.setdefault(where, []).append("Must be an RFC 3339 time, e.g. 2026-03-02T12:00:00Z.")
        return None
    if zero_ok and value.startswith("0001-01-01T00:00:00"):
        return None  # Go's zero time: no end yet
    try:
        moment = parse_datetime(value.replace("Z", "+00:00")) if "T" in value else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.year < 2000:
        errors.setdefault(where, []).append(f"{value[:40]!r} is not an RFC 3339 time with a zone.")
        return None
    return moment


def notification_parse(data: Any) -> Notification:
    """Check a notification whole; Refused(400) names every problem found."""
    errors: dict[str, list[str]] = {}
    if not isinstance(data, dict):
        raise Refused(400, {"non_field_errors": ["The body must be Alertmanager's webhook JSON object."]})
    if data.get("version") != "4":
        errors["version"] = [f"Runway reads Alertmanager's webhook payload version 4, not {data.get('version')!r}."]
    status = data.get("status")
    if status not in ("firing", "resolved"):
        errors["status"] = ["Must be 'firing' or 'resolved'."]
    group_key = data.get("groupKey")
    if not isinstance(group_key, str) or not group_key or len(group_key) > MAX_GROUP_KEY or "\x00" in group_key:
        errors["groupKey"] = [f"Must be a non-empty string of at most {MAX_GROUP_KEY} characters."]
    receiver = data.get("receiver", "")
    if not isinstance(receiver, str) or len(receiver) > 200:
        errors["receiver"] = ["Must be a string."]
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        errors["alerts"] = ["Must be a non-empty list of alerts."]
        raw_alerts = []
    elif len(raw_alerts) > MAX_ALERTS:
        errors["alerts"] = [f"At most {MAX_ALERTS} alerts per notification (set max_alerts in alertmanager.yml)."]
        raw_alerts = []
    common = _strings(
        data.get("commonAnnotations", {}), "commonAnnotations", max_value=MAX_ANNOTATION_VALUE, errors=errors
    )
    url = data.get("externalURL", "")
    if not isinstance(url, str) or len(url) > 2000:
        errors["externalURL"] = ["Must be a URL."]
    alerts = []
    for index, raw in enumerate(raw_alerts):
        where = f"alerts[{index}]"
        if len(errors) > 20:
            break
        if not isinstance(raw, dict):
            errors[where] = ["Must be an object."]
            continue
        alert_status = raw.get("status")
        if alert_status not in ("firing", "resolved"):
            errors[f"{where}.status"] = ["Must be 'firing' or 'resolved'."]
        labels = _strings(raw.get("labels"), f"{where}.labels", max_value=MAX_LABEL_VALUE, errors=errors)
        annotations = _strings(
            raw.get("annotations", {}), f"{where}.annotations", max_value=MAX_ANNOTATION_VALUE, errors=errors
        )
        starts = _moment(raw.get("startsAt"), f"{where}.startsAt", errors, zero_ok=False)
        ends = _moment(raw.get("endsAt", "0001-01-01T00:00:00Z"), f"{where}.endsAt", errors, zero_ok=True)
        fingerprint = raw.get("fingerprint", "")
        if not isinstance(fingerprint, str) or len(fingerprint) > 64:
            errors[f"{where}.fingerprint"] = ["Must be a string of at most 64 characters."]
        if starts is not None and alert_status in ("firing", "resolved"):
            alerts.append(Alert(alert_status, labels, annotations, starts, ends, str(fingerprint)))
    if errors:
        raise Refused(400, errors)
    return Notification(str(status), str(group_key), str(receiver), alerts, common, str(url))


def _group(receiver: AlertReceiver, group_key: str, service: str) -> str:
    return hashlib.sha256(f"{receiver.pk}\x00{group_key}\x00{service}".encode()).hexdigest()


def _severity(alerts: list[Alert]) -> str:
    found = [SEVERITIES.get(a.labels.get("severity", "").lower(), DEFAULT_SEVERITY) for a in alerts]
    return min(found, default=DEFAULT_SEVERITY)  # "SEV1" sorts first: the worst


def _describe(alerts: list[Alert]) -> str:
    names = sorted({alert.name for alert in alerts})
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''} ({shown})"


def _title(alerts: list[Alert], common: dict[str, str], service: str) -> str:
    summary = common.get("summary") or alerts[0].annotations.get("summary") or alerts[0].name
    return f"{summary} on {service}"[:200]


def notification_receive(*, receiver: AlertReceiver, body: bytes, data: Any) -> list[dict[str, Any]]:
    """Act on one notification; what happened per service. Refused (and nothing changed) when it is malformed,
    names an unknown service, carries no service label, or was received before."""
    notification = notification_parse(data)
    by_service: dict[str, list[Alert]] = {}
    for alert in notification.alerts:
        if slug := alert.labels.get("service", ""):
            by_service.setdefault(slug, []).append(alert)
    if not by_service:
        raise Refused(422, {"alerts": ["No alert carries a `service` label naming a service in Runway's catalog."]})
    found = {service.slug: service for service in Service.objects.filter(slug__in=list(by_service))}
    unknown = sorted(set(by_service) - set(found))
    if unknown:
        names = ", ".join(repr(slug[:60]) for slug in unknown[:5])
        raise Refused(422, {"alerts": [f"No service {names} in the catalog; fix the alert's `service` label."]})
    now = timezone.now()
    with transaction.atomic():
        # One notification at a time per receiver: two deliveries of one group cannot both open an incident.
        AlertReceiver.objects.select_for_update().filter(pk=receiver.pk).update(last_used_at=now)
        digest = hashlib.sha256(body).hexdigest()
        # The receiver's row is locked: no other delivery of this receiver can insert the same digest meanwhile.
        if AlertNotification.objects.filter(receiver=receiver, digest=digest).exists():
            raise Refused(409, {"detail": "This notification was received before; nothing changed."})
        groups = {slug: _group(receiver, notification.group_key, slug) for slug in by_service}
        # Locked, as incident_update locks one: a person changing one of them meanwhile waits, and is not overwritten.
        open_incidents = {
            incident.alert_group: incident
            for incident in Incident.objects.select_for_update()
            .filter(alert_group__in=list(groups.values()))
            .exclude(status=Status.RESOLVED)
        }
        batch = _Batch(now)
        results = [
            _act(batch, notification, found[slug], alerts, groups[slug], open_incidents.get(groups[slug]))
            for slug, alerts in sorted(by_service.items())
        ]
        batch.write()
        for result in results:
            if result["incident"] is None and result["action"] == "opened":
                result["incident"] = batch.opened[result["service"]].pk
        AlertNotification.objects.create(
            receiver=receiver,
            digest=digest,
            group_key=notification.group_key,
            status=notification.status,
            alerts=len(notification.alerts),
            result=results,
        )
    return results


class _Batch:
    """What one notification writes, gathered per service and written together: the new incidents in one INSERT (and
    their services and timeline entries), every timeline entry in one, every audit event in one. Incidents whose
    status changes are saved one by one (a mitigation moves the figures of the deployments they name; their save
    tells Insights), and a postmortem is started as incident_update would."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.opened: dict[str, Incident] = {}
        self.opened_services: dict[str, Service] = {}
        self.opened_notes: dict[str, str] = {}
        self.changed: list[Incident] = []
        self.updates: list[IncidentUpdate] = []
        self.events: list[Any] = []

    def open(self, *, service: Service, incident: Incident, note: str) -> None:
        services._started_check(incident.started_at, self.now)
        incident.full_clean(validate_constraints=False)  # the partial unique index referees (the receiver is locked)
        self.opened[service.slug], self.opened_services[service.slug] = incident, service
        self.opened_notes[service.slug] = note

    def note(self, *, incident: Incident, service: Service, message: str, status: str = "", at: datetime) -> None:
        """A timeline entry by Alertmanager, moving the incident to `status` when given (as incident_update does)."""
        before = incident.status
        changes = bool(status) and status != before
        if changes:
            services._status_apply(incident, status, at)
            self.changed.append(incident)
        update = IncidentUpdate(
            incident=incident,
            author=None,
            author_repr="Runway",
            status=status if changes else "",
            message=message,
            created_at=at,
        )
        update.full_clean(exclude=["incident", "author"])
        self.updates.append(update)
        self.events.append(
            audit.event_build(
                actor=None,
                action="incident.status_changed" if changes else "incident.noted",
                target=incident,
                before={"status": before} if changes else None,
                after={"status": incident.status} if changes else {"message": message[:200]},
                service_id=service.pk,
                actor_repr="alertmanager",
            )
        )

    def write(self) -> None:
        if self.opened:
            created = Incident.objects.bulk_create(list(self.opened.values()))
            Incident.services.through.objects.bulk_create(
                [
                    Incident.services.through(incident_id=incident.pk, service_id=self.opened_services[slug].pk)
                    for slug, incident in zip(self.opened, created, strict=True)
                ]
            )
            for slug, incident in self.opened.items():
                service = self.opened_services[slug]
                self.updates.append(
                    IncidentUpdate(
                        incident=incident,
                        author=None,
                        author_repr="Runway",
                        status=Status.INVESTIGATING,
                        message=f"Declared {incident.severity} on {slug}. {self.opened_notes[slug]}",
                        created_at=self.now,
                    )
                )
                self.events.append(
                    audit.event_build(
                        actor=None,
                        action="incident.declared",
                        target=incident,
                        after={"severity": incident.severity, "services": [slug], "source": incident.source},
                        service_id=service.pk,
                        actor_repr=incident.source,
                    )
                )
        for incident in self.changed:
            incident.save(update_fields=["status", "identified_at", "mitigated_at", "resolved_at", "updated_at"])
        IncidentUpdate.objects.bulk_create(self.updates)
        audit.events_record(self.events)
        for incident in self.changed:
            if incident.status in (Status.MITIGATED, Status.RESOLVED) and postmortems.postmortem_required(incident):
                postmortems.postmortem_start(incident=incident, user=None)  # a draft waits for its authors


def _act(
    batch: _Batch,
    notification: Notification,
    service: Service,
    alerts: list[Alert],
    group: str,
    incident: Incident | None,
) -> dict[str, Any]:
    now = batch.now
    firing = [alert for alert in alerts if alert.status == "firing"]
    result: dict[str, Any] = {"service": service.slug, "incident": incident.pk if incident else None}
    if firing:
        if incident is None:
            batch.open(
                service=service,
                incident=Incident(
                    title=_title(firing, notification.common_annotations, service.slug),
                    severity=_severity(firing),
                    summary=notification.common_annotations.get("description", "")[:10000],
                    commander=None,
                    source=Incident.Source.ALERTMANAGER,
                    started_at=min(min(alert.starts_at for alert in firing), now),
                    created_by=None,
                    alert_group=group,
                ),
                note=f"Alertmanager: {_describe(firing)} firing.",
            )
            return {**result, "action": "opened"}
        if incident.status == Status.MITIGATED:
            message = f"Alertmanager: firing again, {_describe(firing)}."
            batch.note(incident=incident, service=service, message=message, status=Status.INVESTIGATING, at=now)
            return {**result, "action": "reopened"}
        batch.note(incident=incident, service=service, message=f"Alertmanager: {_describe(firing)} firing.", at=now)
        return {**result, "action": "joined"}
    if incident is None or incident.status not in (Status.INVESTIGATING, Status.IDENTIFIED):
        return {**result, "action": "unchanged"}
    ends = [alert.ends_at for alert in alerts if alert.ends_at is not None]
    mitigated = min(max(max(ends, default=now), incident.started_at), now)
    batch.note(
        incident=incident,
        service=service,
        message=f"Alertmanager: {_describe(alerts)} resolved.",
        status=Status.MITIGATED,
        at=mitigated,
    )
    return {**result, "action": "mitigated"}


def notifications_prune() -> int:
    """Forget replay digests older than ALERTMANAGER_REPLAY_DAYS (a replay of one older than that is refused by
    nothing else, so keep it longer than any repeat_interval)."""
    cutoff = timezone.now() - timedelta(days=settings.INCIDENTS["REPLAY_DAYS"])
    deleted, _ = AlertNotification.objects.filter(received_at__lt=cutoff).delete()
    return deleted
