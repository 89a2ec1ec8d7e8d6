"""The job loop: runs the job at a fixed rate, every `interval` seconds from start to start.

A run that takes longer than the interval is not followed by a burst of catch-up runs: the slots it overlapped
are skipped (and counted), and the next run starts on the next slot of the grid. Time comes from `clock` and
waiting from `wait`, so tests can drive the loop without sleeping.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from app.metrics import Metrics

log = logging.getLogger("app.scheduler")


def next_slot(scheduled: float, now: float, interval: float) -> tuple[float, int]:
    """The first time on the grid `scheduled + k * interval` (k >= 1) that is not in the past, and how many
    slots were missed to get there."""
    slots = max(1, math.ceil((now - scheduled) / interval))
    return scheduled + slots * interval, slots - 1


class Scheduler:
    def __init__(
        self,
        job: Callable[[], object],
        interval: float,
        *,
        metrics: Metrics,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.job = job
        self.interval = interval
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self._clock = clock
        self._wall_clock = wall_clock
        self._wait = wait or self.stop.wait  # wait(seconds) -> True when stopping
        self.running = False

    def run(self, max_runs: int | None = None) -> None:
        """Run the job now, then on every slot, until `stop` is set (or after `max_runs` runs)."""
        self.running = True
        runs = 0
        scheduled = self._clock()
        try:
            while not self.stop.is_set():
                delay = scheduled - self._clock()
                if delay > 0 and self._wait(delay):
                    break
                if self.stop.is_set():
                    break
                self.run_once()
                runs += 1
                if max_runs is not None and runs >= max_runs:
                    break
                scheduled, missed = next_slot(scheduled, self._clock(), self.interval)
                if missed:
                    self.metrics.runs_skipped(missed)
                    log.warning("run overran the interval", extra={"skipped_runs": missed})
        finally:
            self.running = False

    def run_once(self) -> bool:
        """One run of the job; a failure is logged and counted, never raised."""
        started = self._clock()
        try:
            result = self.job()
        except Exception:
            duration = self._clock() - started
            self.metrics.run_finished(ok=False, duration=duration, at=self._wall_clock())
            log.exception("run failed", extra={"duration_seconds": round(duration, 3)})
            return False
        duration = self._clock() - started
        self.metrics.run_finished(ok=True, duration=duration, at=self._wall_clock())
        log.info("run succeeded", extra={"duration_seconds": round(duration, 3), "result": result})
        return True
