"""Celery adapters for scaffolding: an id in, one service call."""

from typing import Any

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="scaffolder.run_scaffold", acks_late=True)
def run_scaffold(run_id: int) -> None:
    """Run one scaffold. A second delivery is harmless: only a QUEUED run can be claimed."""
    from scaffolder import services

    run = services.scaffold_claim(run_id=run_id)
    if run is None:
        return
    services.scaffold_execute(run=run)


@shared_task(name="scaffolder.fail_stale_runs")
def fail_stale_runs() -> int:
    """Periodic: retry or fail runs and golden path updates whose worker died mid-way (their lease lapsed)."""
    from scaffolder import drift, services

    return services.scaffold_sweep() + drift.update_sweep()


@worker_ready.connect
def _work_folders_sweep(**_kwargs: Any) -> None:
    """A worker starting (after a crash, say) removes the work folders that dead workers left."""
    from scaffolder import leases

    leases.work_sweep()


@shared_task(name="scaffolder.run_golden_path_update", acks_late=True)
def run_golden_path_update(update_id: int) -> None:
    """Make one golden path update's branch. A second delivery is harmless: only a QUEUED update can be claimed."""
    from scaffolder import drift

    update = drift.update_claim(update_id=update_id)
    if update is None:
        return
    drift.update_execute(update=update)
