"""Celery adapters for deployments: ids in, one engine or service call each."""

from celery import shared_task


@shared_task(name="deployments.step", acks_late=True, ignore_result=True)
def deployment_step(deployment_id: int, version: int) -> None:
    """Run one step. Duplicates and stale deliveries are harmless: the version check drops them."""
    from deployments import engine

    engine.run_step(deployment_id, version)


@shared_task(name="deployments.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Periodic: resume deployments whose worker died or whose wait is over, and end those past their deadline."""
    from deployments import services

    return services.deployments_sweep()
