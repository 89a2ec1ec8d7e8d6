"""The API against its own OpenAPI schema, fuzzed by schemathesis: no input gives a 5xx, and every response (status
code, content type, body) is one the schema documents.

One test per operation, each with a bounded number of generated requests (MAX_EXAMPLES, and derandomized so a run
is repeatable), sent straight to the WSGI application as a platform admin with a real API token: about three
minutes on two cores. A failure prints the request as a curl command.
"""

import logging

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.test import Client

from accounts import services as account_services
from deployments.models import Environment
from portal.wsgi import application
from tests.factories import SystemFactory, UserFactory

MAX_EXAMPLES = 15
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# The schema as /api/schema/ serves it, generated once at collection (it reads no data).
schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))


@pytest.fixture
def token(world, settings):  # type: ignore[no-untyped-def]
    """A platform admin's API token: the fuzzer may reach every operation. Django's WSGI handler closes the database
    connection around each request, which would end the test's transaction; Django's own test client disconnects the
    same signal handlers."""
    settings.API_TOKEN_RATE_LIMIT = 100_000
    admin = UserFactory(username="fuzzer", is_staff=True)
    Environment.objects.create(name="Staging", slug="staging", order=1)
    SystemFactory(owner=world.owner_team, slug="payments", name="Payments")
    _token, plain = account_services.token_create(user=admin, name="schemathesis", lifetime_days=1)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield plain
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.events: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(record.getMessage())


@pytest.fixture
def data_errors():  # type: ignore[no-untyped-def]
    """What portal.api's safety net turned from a database error into a 400: each is a check missing before the
    query (the field or filter should have refused the value), so the fuzzer reports it too."""
    handler = _Records()
    logger = logging.getLogger("portal.api")
    logger.addHandler(handler)
    yield handler.events
    logger.removeHandler(handler)


@schema.parametrize()
@hypothesis_settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_api_conforms_to_its_schema(case, token, data_errors):  # type: ignore[no-untyped-def]
    # Each request in a savepoint of its own, as each runs in a transaction of its own in production: an example
    # that PostgreSQL refused would otherwise abort the test's transaction under the next one.
    savepoint = transaction.savepoint()
    try:
        case.call_and_validate(app=application, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
    finally:
        transaction.savepoint_rollback(savepoint)
    assert not [event for event in data_errors if "api_data_error" in event], data_errors


@pytest.fixture
def history(world, token):  # type: ignore[no-untyped-def]
    """Real records in the states that leave fields empty: a canary driven to its end on the simulated runtime (no
    previous version), a deploy reported by a CD system, a decommission awaiting approval (no approver), a runbook
    and an ADR."""
    from deployments import decommission, services
    from tests.deployments.support import drive, release_make, target_make
    from tests.factories import service_make

    staging = Environment.objects.get(slug="staging")
    target_make(world.service, staging, runtime="simulated", strategy="canary", replicas=2)
    deployment = services.deployment_request(
        service=world.service, environment=staging, user=world.owner, release=release_make(world.service, "1.0.0")
    )
    drive(deployment)
    services.deploy_event_record(
        service=world.service,
        environment=staging,
        user=world.owner,
        version="1.0.1",
        commit_sha="b" * 40,
        status="succeeded",
        committed_at=None,
        started_at=None,
        finished_at=None,
    )
    spare = service_make(owner=world.owner_team, slug="spare", name="Spare")
    decommission.decommission_request(
        service=spare, user=world.owner, reason="Replaced by payments-api.", planned_for=timezone.localdate()
    )
    from scorecards import services as scorecard_services
    from tests.scorecards.conftest import basic

    card = scorecard_services.scorecard_save(user=None, raw=basic(filter="true"))
    scorecard_services.scores_compute()
    scorecard_services.initiative_create(
        user=None, name="adrs", title="ADRs", scorecard=card, rule_keys=["adr"], deadline=timezone.localdate()
    )
    client = Client(application)
    headers = {"Authorization": f"Bearer {token}"}
    runbook = {"service": "payments-api", "title": "On call", "body": "# Pager\n"}
    adr = {"service": "payments-api", "title": "Use PostgreSQL", "status": "accepted", "context": "x"}
    staff = {"slug": "staff", "name": "Staff", "conditions": [{"attribute": "email", "op": "ends_with", "value": "@x"}]}
    flag = {"service": "payments-api", "key": "new-checkout", "description": ""}
    for path, body in (
        ("/api/v1/runbooks/", runbook),
        ("/api/v1/adrs/", adr),
        ("/api/v1/flag-segments/", staff),
        ("/api/v1/flags/", flag),
    ):
        assert client.post(path, json=body, headers=headers).status_code == 201
    flag_id = client.get("/api/v1/flags/", headers=headers).get_json()["results"][0]["id"]
    setting = {
        "enabled": True,
        "rules": [{"when": [{"op": "segment", "value": "staff"}], "rollout": {"on": 50, "off": 50}}],
        "rollout": {"on": 10, "off": 90},
    }
    assert client.patch(f"/api/v1/flags/{flag_id}/settings/staging/", json=setting, headers=headers).status_code == 200
    rollout = {"environment": "staging", "variant": "on", "metrics_url": "http://127.0.0.1:9/metrics"}
    assert client.post(f"/api/v1/flags/{flag_id}/rollouts/", json=rollout, headers=headers).status_code == 201
    return client, headers


READS = [
    "/api/v1/services/",
    "/api/v1/services/{slug}/",
    "/api/v1/deployments/",
    "/api/v1/deployments/{id}/",
    "/api/v1/releases/",
    "/api/v1/placements/",
    "/api/v1/decommissions/",
    "/api/v1/decommissions/{id}/",
    "/api/v1/runbooks/",
    "/api/v1/adrs/",
    "/api/v1/audit-events/",
    "/api/v1/environments/",
    "/api/v1/teams/",
    "/api/v1/memberships/",
    "/api/v1/golden-paths/",
    "/api/v1/scorecards/",
    "/api/v1/scorecards/{name}/",
    "/api/v1/scores/",
    "/api/v1/scores/{id}/",
    "/api/v1/score-history/",
    "/api/v1/initiatives/",
    "/api/v1/initiatives/{name}/",
    "/api/v1/flags/",
    "/api/v1/flags/{id}/",
    "/api/v1/flag-segments/",
    "/api/v1/flag-segments/{slug}/",
    "/api/v1/flag-rollouts/",
    "/api/v1/flag-rollouts/{id}/",
]


@pytest.mark.parametrize("template", READS)
def test_real_records_conform_to_the_schema(history, template) -> None:
    """What the fuzzer cannot make: records a real workflow left behind, read back and checked against the schema
    (nullable fields, empty URLs, enums)."""
    client, headers = history
    items = client.get(template.split("{")[0], headers=headers).get_json()
    first = (items["results"] if isinstance(items, dict) else items)[0]
    path = template.replace("{slug}", str(first.get("slug"))).replace("{id}", str(first.get("id")))
    path = path.replace("{name}", str(first.get("name")))
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    schema[template]["GET"].validate_response(response)
