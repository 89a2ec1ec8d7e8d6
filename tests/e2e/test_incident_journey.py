"""Incidents in a real browser: a canary fails and rolls back, an Alertmanager alert opens an incident that names
it as the suspect, the owner marks it as the cause, mitigates, writes and publishes the postmortem, and the team's
change fail rate and recovery time move on the Insights page.

The deployments are run by the real engine in this process on a clock set back an hour (as the demo's history is),
the alert arrives over HTTP at the live server's webhook with a receiver's token, and everything else is clicks.
"""

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from deployments import demo, engine
from deployments import services as deployment_services
from deployments.models import DeployTarget, Environment, RuntimeKind, State, Strategy
from incidents import alertmanager
from teams import services as team_services
from tests.factories import service_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long and unguessable passphrase"


def _deploy(service, production, owner, version: str, *, at: datetime, fault: str = ""):  # type: ignore[no-untyped-def]
    """One production deployment driven to its end by the engine, on a clock starting at `at`."""
    clock = demo.Clock(at)
    with demo.on_clock(clock), mock.patch.object(engine, "enqueue", lambda *args, **kwargs: None):
        release = deployment_services.release_record(
            service=service,
            version=version,
            commit_sha=f"{len(version) * 7:040x}"[:-1] + version[-1],
            committed_at=at - timedelta(hours=1),
            user=owner,
        )
        deployment = deployment_services.deployment_request(
            service=service, environment=production, user=owner, release=release
        )
        if fault:
            deployment.config = {**deployment.config, "simulate": fault}
            deployment.save(update_fields=["config"])
        return demo.drive(deployment, clock=clock)


def _tile(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f"article[aria-labelledby='tile-{key}'] p").first


def test_an_alert_names_the_rolled_back_canary_and_the_postmortem_moves_the_figures(live_server, page: Page) -> None:
    owner = User.objects.create_user("olivia", password=PASSWORD)
    admin = User.objects.create_user("root", is_staff=True)
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    team_services.membership_set(team=team, user=owner, changed_by=None)
    service = service_make(owner=team, slug="payments-api", name="Payments API")
    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    DeployTarget.objects.create(
        service=service,
        environment=production,
        runtime=RuntimeKind.SIMULATED,
        strategy=Strategy.CANARY,
        replicas=3,
        canary_steps=[10, 50],
        bake_seconds=5,
    )
    now = datetime.now(UTC)
    assert _deploy(service, production, owner, "1.0.0", at=now - timedelta(hours=3)).state == State.SUCCEEDED

    page.goto(f"{live_server.url}/accounts/login/?next=/insights/teams/payments/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(_tile(page, "change_fail_rate")).to_have_text("0.0 %")
    expect(_tile(page, "recovery_time")).to_have_text("—")

    canary = _deploy(service, production, owner, "1.1.0", at=now - timedelta(minutes=50), fault="slow")
    assert canary.state == State.ROLLED_BACK

    token = alertmanager.receiver_create(name="runway", created_by=admin)[1]
    labels = {"alertname": "PaymentsSlow", "service": "payments-api", "severity": "sev2"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": "Payments p95 above 2 s"},
        "startsAt": (now - timedelta(minutes=45)).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    body = {
        "receiver": "runway",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"alertname": "PaymentsSlow"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Payments p95 above 2 s"},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="PaymentsSlow"}',
        "truncatedAlerts": 0,
    }
    answer = httpx.post(
        f"{live_server.url}/api/v1/incidents/alertmanager/",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()["incidents"][0]["action"] == "opened"

    # The incident names the canary as its suspect; the owner marks it as the cause and mitigates.
    page.goto(f"{live_server.url}/incidents/")
    page.get_by_role("link", name="Payments p95 above 2 s on payments-api").click()
    suspects = page.locator("section[aria-labelledby='suspects-heading']")
    expect(suspects.get_by_role("link", name=f"#{canary.pk}")).to_be_visible()
    suspects.get_by_role("button", name="Mark as the cause").click()
    expect(page.locator("section[aria-labelledby='links-heading']")).to_contain_text(f"#{canary.pk}")
    page.get_by_label("Status").select_option("mitigated")
    page.get_by_role("textbox", name="Update").fill("Rolled back by the canary analysis; p95 is normal again.")
    page.get_by_role("button", name="Post update").click()
    expect(page.locator(".lead .badge-incident-mitigated")).to_be_visible()

    # A SEV2 gets its postmortem as a draft; the owner writes it, asks for review and publishes it.
    page.get_by_role("link", name="Postmortem (draft)").click()
    expect(page.get_by_label("Timeline")).to_contain_text(f"Deployment #{canary.pk}: payments-api 1.1.0")
    page.get_by_label("Summary").fill("Release 1.1.0 made payments slow until the canary rolled back.")
    page.get_by_label("Impact").fill("10 % of payments took over 2 s for a few minutes.")
    page.get_by_label("Contributing factors").fill("- The ledger client had no timeout.")
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Ask for review").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".lead .badge-pm-published")).to_be_visible()

    page.goto(f"{live_server.url}/insights/teams/payments/")
    expect(_tile(page, "change_fail_rate")).to_have_text("50.0 %")
    expect(_tile(page, "recovery_time")).to_contain_text("median")
