"""Celery adapters for scaffolding: an id in, one service call."""

from celery import shared_task


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
    """Periodic: end runs whose worker died mid-run (a redelivery cannot claim a RUNNING run)."""
    from scaffolder import services

    return services.scaffold_fail_stale()
