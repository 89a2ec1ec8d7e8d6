"""Workers: move the OFREP evaluation counts gathered in Redis into the database (beat, every minute)."""

from celery import shared_task

from flags import counts


@shared_task(name="flags.flush_evaluation_counts", acks_late=True)
def flush_evaluation_counts() -> int:
    """Drain the shared counts hash into the daily rows; a second delivery finds the hash empty and does nothing."""
    return counts.evaluation_counts_flush()
