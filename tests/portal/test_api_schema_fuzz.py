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
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

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
