"""The job: what one run of the worker does. Replace the example work with yours.

A run may be cut short (SIGTERM during a deploy) and may be retried, so make each item's processing idempotent:
doing it twice must have the same effect as doing it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("app.job")


@dataclass(frozen=True)
class JobResult:
    processed: int
    remaining: int  # items left for the next run because the worker was asked to stop


def fetch_pending() -> list[Any]:
    """The work to do in this run: read it from a queue, a table or an API. The example has none."""
    return []


def process_item(item: Any) -> None:
    """Do the work for one item. Raise to fail the run (it is retried or counted as failed)."""
    log.info("processed item", extra={"item": item})


def run_job(
    stop: threading.Event,
    *,
    fetch: Callable[[], Iterable[Any]] = fetch_pending,
    process: Callable[[Any], None] = process_item,
) -> JobResult:
    """One run: process every pending item, stopping early (between items) when the worker is stopping."""
    items = list(fetch())
    processed = 0
    for item in items:
        if stop.is_set():
            log.info("stopping mid-run", extra={"processed": processed, "remaining": len(items) - processed})
            break
        process(item)
        processed += 1
    return JobResult(processed=processed, remaining=len(items) - processed)
