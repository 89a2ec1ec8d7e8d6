"""Celery adapters for the catalog: an id in, one service call."""

from celery import shared_task


@shared_task(name="catalog.run_import", acks_late=True)
def run_import(run_id: int) -> None:
    """Import one uploaded archive. A second delivery is harmless: only a QUEUED run can be claimed."""
    from catalog import imports

    run = imports.import_claim(run_id=run_id)
    if run is None:
        return
    imports.import_execute(run=run)


@shared_task(name="catalog.fail_stale_imports")
def fail_stale_imports() -> int:
    """Periodic: end imports whose worker died mid-run, so no run stays RUNNING for ever."""
    from catalog import imports

    return imports.import_fail_stale()
