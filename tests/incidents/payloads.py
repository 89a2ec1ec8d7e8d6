"""Alertmanager webhook payloads as Alertmanager 0.25 sends them (notify/webhook: template.Data + version, groupKey,
truncatedAlerts); `real_firing.json` beside this file was captured from Debian's prometheus-alertmanager."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

GO_ZERO = "0001-01-01T00:00:00Z"
REAL_FIRING = json.loads((Path(__file__).parent / "real_firing.json").read_text())


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert(
    service: str = "payments-api",
    *,
    name: str = "HighErrorRate",
    status: str = "firing",
    starts: datetime,
    ends: datetime | None = None,
    severity: str = "critical",
    fingerprint: str = "",
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "service": service, "severity": severity, "instance": "10.0.0.7:8000"},
        "annotations": {"summary": f"{name} for {service}", "description": "5xx above 5 % for 2 minutes"},
        "startsAt": _time(starts),
        "endsAt": _time(ends) if ends else GO_ZERO,
        "generatorURL": "http://prometheus:9090/graph?g0.expr=rate%28http_errors%5B1m%5D%29",
        "fingerprint": fingerprint or f"{abs(hash((service, name))) % 16**16:016x}",
    }


def notification(alerts: list[dict[str, Any]], *, group_key: str = '{}:{alertname="HighErrorRate"}') -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "receiver": "runway",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
