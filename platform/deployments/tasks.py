"""Celery adapters for deployments: ids in, one engine or service call each."""

from celery import shared_task


@shared_task(name="deployments.step", acks_late=True, ignore_result=True)
def deployment_step(deployment_id: int, version: int) -> None:
    """Run one step. Duplicates and stale deliveries are harmless: the version check drops them."""
    from deployments import engine

    engine.run_step(deployment_id, version)


@shared_task(name="deployments.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Periodic: resume deployments and decommissions whose worker died or whose wait is over; end deployments
    past their deadline."""
    from deployments import decommission, services

    swept = services.deployments_sweep()
    swept["decommissions"] = decommission.decommissions_sweep()
    return swept


@shared_task(name="deployments.decommission_step", acks_late=True, ignore_result=True)
def decommission_step(decommission_id: int, version: int) -> None:
    """Run one step of a decommission; like deployment steps, a stale or duplicate delivery does nothing."""
    from deployments import decommission

    decommission.run_step(decommission_id, version)
