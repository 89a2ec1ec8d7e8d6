"""The Celery app: `celery --workdir platform -A portal worker` and `... beat`; tasks are discovered per app."""

import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.dev")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Rebinds the publishing request's log context (request_id, user_id) inside each task.
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect
def _logging_from_django(**_kwargs: object) -> None:
    """Let Django's LOGGING (structlog) configure the worker instead of Celery's own handlers."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_process_init.connect
def _warm_up(**_kwargs: object) -> None:
    """Import scipy.stats (seconds) when a worker process starts, not during a deployment's first analysis."""
    import scipy.stats  # noqa: F401
