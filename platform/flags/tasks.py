"""Celery adapters for flags: ids in, one call each. The OFREP evaluation counts gathered in Redis move into the
database (beat, every minute); progressive rollouts are stepped (flags/rollouts.py)."""

from celery import shared_task

from flags import counts


@shared_task(name="flags.flush_evaluation_counts", acks_late=True)
def flush_evaluation_counts() -> int:
    """Drain the shared counts hash into the daily rows; a second delivery finds the hash empty and does nothing."""
    return counts.evaluation_counts_flush()


@shared_task(name="flags.rollout_step", acks_late=True, ignore_result=True)
def rollout_step(rollout_id: int, version: int) -> None:
    """One step of a progressive rollout; a stale or duplicate delivery finds another version and does nothing."""
    from flags import rollouts

    rollouts.run_step(rollout_id, version)


@shared_task(name="flags.rollouts_sweep", ignore_result=True)
def rollouts_sweep() -> int:
    """Periodic: enqueue the rollouts whose wait is over or whose worker's lease ran out."""
    from flags import rollouts

    return rollouts.rollouts_sweep()


@shared_task(name="flags.expire_changes", ignore_result=True)
def expire_changes() -> int:
    """Periodic: close the held flag changes past their time."""
    from flags import changes

    return changes.flag_changes_expire()
