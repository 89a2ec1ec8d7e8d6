"""A real Alertmanager (Debian's prometheus-alertmanager) fires at a live Runway on loopback: alerts posted to its
API become an incident through the webhook, and resolving them mitigates it."""

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from incidents import alertmanager
from incidents.models import Incident, Status
from tests.factories import MembershipFactory, TeamFactory, UserFactory, service_make

BINARY = "prometheus-alertmanager"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def alertmanager_url(live_server, tmp_path: Path) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    binary = shutil.which(BINARY) or shutil.which("alertmanager")
    assert binary, f"{BINARY} is needed (apt-get install {BINARY}; .ci/run installs it)"
    staff = UserFactory(username="root-admin", is_staff=True)
    token = alertmanager.receiver_create(name="runway", created_by=staff)[1]
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "route": {
                    "receiver": "runway",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "runway",
                        "webhook_configs": [
                            {
                                "url": f"{live_server.url}/api/v1/incidents/alertmanager/",
                                "send_resolved": True,
                                "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                            }
                        ],
                    }
                ],
            }
        )
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "alertmanager.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urlopen(f"{url}/-/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield url, str(tmp_path / "alertmanager.log")
    finally:
        process.terminate()
        process.wait(10)


def _post_alerts(url: str, alerts: list[dict[str, object]]) -> None:
    request = Request(
        f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(), headers={"Content-Type": "application/json"}
    )
    urlopen(request, timeout=5).read()


def _wait_for(check, log: str, what: str):  # type: ignore[no-untyped-def]
    for _ in range(150):
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"Alertmanager never got {what} to Runway; its log:\n{Path(log).read_text()[-3000:]}")


@pytest.mark.django_db(transaction=True)
def test_a_real_alertmanager_opens_and_mitigates_an_incident(alertmanager_url) -> None:
    url, log = alertmanager_url
    team = TeamFactory(name="Payments", slug="payments")
    MembershipFactory(team=team, user=UserFactory(username="olivia"))
    service_make(owner=team, slug="payments-api", name="Payments API")
    labels = {"alertname": "HighErrorRate", "service": "payments-api", "severity": "sev1"}
    started = datetime.now(UTC).isoformat()
    _post_alerts(url, [{"labels": labels, "annotations": {"summary": "5xx above 5 %"}, "startsAt": started}])
    incident = _wait_for(lambda: Incident.objects.filter(source="alertmanager").first(), log, "the firing alert")
    assert incident.severity == "SEV1" and incident.status == Status.INVESTIGATING
    assert incident.title == "5xx above 5 % on payments-api"
    assert list(incident.services.values_list("slug", flat=True)) == ["payments-api"]

    ended = datetime.now(UTC).isoformat()
    _post_alerts(url, [{"labels": labels, "startsAt": started, "endsAt": ended}])
    _wait_for(
        lambda: Incident.objects.filter(pk=incident.pk, status=Status.MITIGATED).exists(), log, "the resolved alert"
    )
    assert Incident.objects.count() == 1
