"""A real Celery worker, in a thread, consuming from the configured broker (Redis, or the filesystem broker).

Tasks are published with .delay() and their results read back through the configured result backend, so the
broker, the backend, the Django fixup and django-structlog's worker step all take part.
"""

from collections.abc import Iterator

import pytest
import structlog
from celery.contrib.testing.worker import TestWorkController, start_worker
from django.conf import settings
from django_structlog.celery.steps import DjangoStructLogInitStep

from portal.celery import app
from portal.tasks import health_check

# The worker runs in its own thread with its own database connection, so the data must be committed.
pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]

RESULT_TIMEOUT = 20


@pytest.fixture(scope="module")
def worker() -> Iterator[TestWorkController]:
    """One worker for the module; each test's data is committed (transaction=True) so its thread can see it."""
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20) as controller:
        yield controller


@pytest.fixture
def clean_log_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


def test_the_worker_uses_the_configured_broker_and_backend(worker) -> None:  # type: ignore[no-untyped-def]
    # Without Redis: kombu's filesystem transport, writing each message atomically (portal/broker.py).
    expected_broker = "redis" if settings.REDIS_URL else "portal.broker:Transport"
    assert app.connection().transport_cls == expected_broker
    expected_backend = "RedisBackend" if settings.REDIS_URL else "FilesystemBackend"
    assert type(app.backend).__name__ == expected_backend
    # django-structlog's boot step is part of the test worker's blueprint, as in `celery worker`.
    assert any(isinstance(step, DjangoStructLogInitStep) for step in worker.blueprint.steps.values())


def test_health_check_runs_on_the_worker_and_reaches_the_database(worker, clean_log_context) -> None:  # type: ignore[no-untyped-def]
    result = health_check.delay()
    answer = result.get(timeout=RESULT_TIMEOUT)
    assert answer == {"database": True, "request_id": None}
    assert result.successful()
    assert result.state == "SUCCESS"


def test_request_id_bound_at_publish_time_reaches_the_task(worker, clean_log_context) -> None:  # type: ignore[no-untyped-def]
    structlog.contextvars.bind_contextvars(request_id="req-3f1c9e")
    with_id = health_check.delay()
    structlog.contextvars.clear_contextvars()
    without_id = health_check.delay()

    assert with_id.get(timeout=RESULT_TIMEOUT) == {"database": True, "request_id": "req-3f1c9e"}
    # The worker starts every task from a clean context: the previous task's request id does not leak.
    assert without_id.get(timeout=RESULT_TIMEOUT) == {"database": True, "request_id": None}
