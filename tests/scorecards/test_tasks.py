"""Rescoring on change: signals ask once per burst, a real worker rescores, beat's nightly task scores everyone."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.test import override_settings

from catalog.models import Service
from portal.celery import app
from scorecards import services, tasks
from scorecards.models import Score
from techdocs.models import ADR, Runbook
from tests.factories import service_make


@pytest.mark.django_db
def test_a_burst_of_changes_asks_for_one_rescoring(world, mocker, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    cache.clear()
    apply = mocker.patch("scorecards.tasks.rescore_service.apply_async")
    with django_capture_on_commit_callbacks(execute=True):
        world.service.description = "changed"
        world.service.save()
        Runbook.objects.create(service=world.service, slug="restart", title="Restart")
        ADR.objects.create(service=world.service, number=1, title="Use Postgres")
        world.service.tags.create(name="pci")
    apply.assert_called_once()
    assert apply.call_args.args[0] == (world.service.pk,)
    tasks.rescore_service(world.service.pk)  # the task clears the mark: the next change asks again
    with django_capture_on_commit_callbacks(execute=True):
        Runbook.objects.filter(service=world.service).delete()
    assert apply.call_count == 2


@pytest.mark.django_db
def test_nothing_is_asked_before_the_change_commits(world, mocker, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    cache.clear()
    apply = mocker.patch("scorecards.tasks.rescore_service.apply_async")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        Runbook.objects.create(service=world.service, slug="restart", title="Restart")
    apply.assert_not_called()
    assert callbacks


@pytest.mark.django_db
def test_the_nightly_task_scores_every_service(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    others = [service_make(owner=world.owner_team, lifecycle=Service.Lifecycle.PRODUCTION) for _ in range(3)]
    tasks.rescore_all()
    assert set(Score.objects.values_list("service_id", flat=True)) == {service.pk for service in others}


@pytest.mark.django_db(transaction=True)
@override_settings(SCORECARDS={"RESCORE_DELAY_SECONDS": 0, "DIR": None, "REMIND_DAYS_BEFORE": 7})
def test_a_real_worker_rescores_a_service_after_its_change_commits(world, scorecard) -> None:  # type: ignore[no-untyped-def]
    cache.clear()
    service = service_make(owner=world.owner_team, lifecycle=Service.Lifecycle.PRODUCTION)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        services.scores_compute(service_ids=[service.pk])
        assert Score.objects.get(service=service).level == ""
        Runbook.objects.create(service=service, slug="restart", title="Restart")  # autocommit: commits at once
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and Score.objects.get(service=service).level != "Bronze":
            time.sleep(0.1)
    assert Score.objects.get(service=service).level == "Bronze"


@pytest.mark.django_db
def test_verifying_ownership_rescores_the_service(world, mocker, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from reviews import services as review_services
    from scorecards.models import Scorecard
    from tests.scorecards.conftest import basic

    cache.clear()
    rule = "service.last_ownership_review != null && !service.orphaned"
    card: Scorecard = services.scorecard_save(user=world.staff, raw=basic(filter="true", levels=[{"name": "Owned",
        "rules": [{"key": "verified", "name": "Verified", "rule": rule, "why": "w", "fix": "f"}]}]))  # fmt: skip
    services.scores_compute(scorecards=[card], service_ids=[world.service.pk])
    assert Score.objects.get(scorecard=card, service=world.service).level == ""
    apply = mocker.patch("scorecards.tasks.rescore_service.apply_async")
    with django_capture_on_commit_callbacks(execute=True):
        review_services.ownership_verify(service=world.service, verified_by=world.staff)
    apply.assert_called_once_with((world.service.pk,), countdown=2)
    tasks.rescore_service(world.service.pk)
    assert Score.objects.get(scorecard=card, service=world.service).level == "Owned"
