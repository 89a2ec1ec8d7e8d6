import threading

import pytest

from app.metrics import Metrics
from app.scheduler import Scheduler, next_slot
from tests.conftest import FakeClock


def make(job_seconds, interval=60.0, fail_on=(), stop=None, wait=None):
    """A scheduler on a fake clock whose job takes `job_seconds[i]` on its i-th run."""
    clock = FakeClock()
    starts = []

    def job():
        run = len(starts)
        starts.append(clock.now - 1000.0)
        clock.now += job_seconds[run]
        if run in fail_on:
            raise RuntimeError("boom")
        return {"run": run}

    metrics = Metrics(interval_seconds=interval)
    scheduler = Scheduler(
        job,
        interval,
        metrics=metrics,
        stop=stop,
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0 + clock.now,
        wait=wait or clock.wait,
    )
    return scheduler, starts, metrics


def test_runs_at_once_then_every_interval_from_start_to_start():
    scheduler, starts, metrics = make([5, 10, 1, 1])

    scheduler.run(max_runs=4)

    assert starts == [0, 60, 120, 180]
    assert metrics.runs == {"success": 4, "failure": 0}
    assert metrics.skipped == 0


def test_a_run_longer_than_the_interval_skips_the_slots_it_overlapped():
    scheduler, starts, metrics = make([130, 1, 1])

    scheduler.run(max_runs=3)

    assert starts == [0, 180, 240]  # 60 and 120 were missed while the first run was going
    assert metrics.skipped == 2


def test_a_run_ending_exactly_on_the_next_slot_starts_the_next_at_once():
    scheduler, starts, _ = make([60, 1])

    scheduler.run(max_runs=2)

    assert starts == [0, 60]


def test_a_failed_run_is_counted_and_the_loop_goes_on():
    scheduler, starts, metrics = make([1, 1, 1], fail_on={1})

    scheduler.run(max_runs=3)

    assert starts == [0, 60, 120]
    assert metrics.runs == {"success": 2, "failure": 1}
    assert metrics.last_success == 1_700_000_000.0 + 1000.0 + 121


def test_stop_ends_the_loop_during_the_wait():
    stop = threading.Event()

    def wait(seconds):
        stop.set()  # SIGTERM while waiting for the next slot
        return True

    scheduler, starts, _ = make([1, 1], stop=stop, wait=wait)
    scheduler.run()

    assert starts == [0]
    assert scheduler.running is False


def test_stop_set_before_start_runs_nothing():
    scheduler, starts, _ = make([1])
    scheduler.stop.set()

    scheduler.run()

    assert starts == []


@pytest.mark.parametrize(
    ("scheduled", "now", "expected"),
    [(0, 5, (60, 0)), (0, 60, (60, 0)), (0, 61, (120, 1)), (0, 180, (180, 2)), (0, 181, (240, 3))],
)
def test_next_slot(scheduled, now, expected):
    assert next_slot(scheduled, now, 60) == expected


def test_really_waits_on_the_stop_event_by_default():
    stop = threading.Event()
    scheduler = Scheduler(lambda: None, 3600, metrics=Metrics(interval_seconds=3600), stop=stop)
    thread = threading.Thread(target=scheduler.run)
    thread.start()
    stop.set()
    thread.join(timeout=2)

    assert not thread.is_alive()
