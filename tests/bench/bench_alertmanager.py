"""Alertmanager webhook benchmark: notifications posted to /api/v1/incidents/alertmanager/, timed in this process.

A catalog of 1,000 services, one receiver. Alertmanager groups alerts (by alertname here) and sends a group's alerts
together, so the stream is NOTIFICATIONS notifications of 1 to 20 alerts over 1 to 5 services each: a group fires
(opening an incident per service), fires again with more alerts (joining), then resolves (mitigating). Each
notification goes through Django's test client (routing, token check, parsing, the writes, the audit events; no
network), one at a time, and the figure is alerts handled per second against the issue's target (≥ 200/s). A second
run sends one alert per notification: the worst case, an incident opened per request.

Runs on a fresh PostgreSQL database `runway_bench_alertmanager` on DATABASE_URL's server (or a new SQLite file).
Writes var/bench/alertmanager.json; exit status 0 when the target is met.
"""

import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import stack  # tests/bench/, this script's folder, is first on sys.path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench"
WORK = OUT / "alertmanager"
DB_NAME = os.environ.get("ALERTMANAGER_BENCH_DB", "runway_bench_alertmanager")
REDIS_DB = int(os.environ.get("ALERTMANAGER_BENCH_REDIS_DB", "13"))
SERVICES = 1000
GROUPS = 60
SINGLES = 200
TARGET = 200.0
URL = "/api/v1/incidents/alertmanager/"


def _alert(service: str, name: str, n: int, *, status: str, starts: datetime, ends: datetime | None) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "service": service, "severity": "warning", "instance": f"10.0.{n}.1:8000"},
        "annotations": {"summary": f"{name} on {service}", "description": "above its threshold for 2 minutes"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": ends.isoformat().replace("+00:00", "Z") if ends else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": f"{abs(hash((service, name, n))) % 16**16:016x}",
    }


def _notification(alerts: list[dict[str, Any]], group_key: str) -> dict[str, Any]:
    return {
        "receiver": "runway",
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": alerts,
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def _stream(rng: random.Random, slugs: list[str]) -> list[dict[str, Any]]:
    """Per group: fire (first alerts), fire again (more alerts, joining), resolve (all of them)."""
    now = datetime.now(UTC) - timedelta(minutes=30)
    bodies = []
    for g in range(GROUPS):
        name = f"Alert{g:03d}"
        services = rng.sample(slugs, rng.randint(1, 5))
        count = rng.randint(2, 20)
        alerts = [(services[i % len(services)], i) for i in range(count)]
        first = alerts[: max(1, count // 2)]
        key = f'{{}}:{{alertname="{name}"}}'
        bodies.append(
            _notification([_alert(s, name, i, status="firing", starts=now, ends=None) for s, i in first], key)
        )
        bodies.append(
            _notification([_alert(s, name, i, status="firing", starts=now, ends=None) for s, i in alerts], key)
        )
        ended = now + timedelta(minutes=10)
        bodies.append(
            _notification([_alert(s, name, i, status="resolved", starts=now, ends=ended) for s, i in alerts], key)
        )
    return bodies


def _run(client: Any, token: str, bodies: list[dict[str, Any]]) -> tuple[int, float]:
    alerts = 0
    started = time.perf_counter()
    for body in bodies:
        response = client.post(
            URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        if response.status_code != 200:
            raise SystemExit(f"The webhook answered {response.status_code}: {response.content[:300]!r}")
        alerts += len(body["alerts"])
    return alerts, time.perf_counter() - started


def main() -> int:
    _env, database_text, _broker = stack.prepare(
        work=WORK, db_name=DB_NAME, bench="bench_alertmanager", redis_db=REDIS_DB
    )
    print(f"Database: {database_text}")
    from django.contrib.auth.models import User
    from django.test import Client

    from catalog.models import Service
    from incidents import alertmanager
    from incidents.models import Incident
    from teams import services as team_services

    team = team_services.team_create(name="Bench", slug="bench", created_by=None)
    Service.objects.bulk_create(
        [Service(slug=f"svc-{n:04d}", name=f"Service {n:04d}", owner=team) for n in range(SERVICES)]
    )
    admin = User.objects.create_user("admin", is_staff=True)
    token = alertmanager.receiver_create(name="runway", created_by=admin)[1]
    client = Client(HTTP_HOST="localhost")  # DEBUG is off: the host must be an allowed one
    rng = random.Random(7)
    slugs = [f"svc-{n:04d}" for n in range(SERVICES)]
    _run(client, token, _stream(random.Random(99), slugs)[:6])  # warm up: imports, connections, caches

    grouped = _stream(rng, slugs)
    alerts, seconds = _run(client, token, grouped)
    rate = alerts / seconds
    now = datetime.now(UTC) - timedelta(minutes=5)
    singles = [
        _notification(
            [_alert(slugs[n % SERVICES], f"Single{n}", n, status="firing", starts=now, ends=None)], f"single-{n}"
        )
        for n in range(SINGLES)
    ]
    single_alerts, single_seconds = _run(client, token, singles)
    single_rate = single_alerts / single_seconds
    verdict = "met" if rate >= TARGET else "MISSED"
    print(f"\n{'stream':<44}{'notifications':>14}{'alerts':>8}{'alerts/s':>10}  target")
    print("-" * 86)
    print(
        f"{'grouped (fire, fire again, resolve)':<44}{len(grouped):>14}{alerts:>8}{rate:>10.0f}"
        f"  ≥ {TARGET:.0f} {verdict}"
    )
    print(f"{'one alert per notification (opens each)':<44}{len(singles):>14}{single_alerts:>8}{single_rate:>10.0f}  —")
    load = os.getloadavg()[0]
    print(f"incidents made: {Incident.objects.count()}; load average {load:.1f} on {os.cpu_count()} cores")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "alertmanager.json").write_text(
        json.dumps(
            {
                "database": database_text,
                "grouped": {
                    "notifications": len(grouped),
                    "alerts": alerts,
                    "seconds": round(seconds, 3),
                    "alerts_per_second": round(rate, 1),
                },
                "single": {
                    "notifications": len(singles),
                    "alerts": single_alerts,
                    "seconds": round(single_seconds, 3),
                    "alerts_per_second": round(single_rate, 1),
                },
                "target_alerts_per_second": TARGET,
                "load_average": round(load, 1),
            },
            indent=2,
        )
        + "\n"
    )
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
