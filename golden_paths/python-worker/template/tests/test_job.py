import threading

import pytest

from app.job import JobResult, run_job


def test_processes_every_pending_item():
    done = []

    result = run_job(threading.Event(), fetch=lambda: ["a", "b", "c"], process=done.append)

    assert result == JobResult(processed=3, remaining=0)
    assert done == ["a", "b", "c"]


def test_nothing_to_do_is_a_successful_empty_run():
    assert run_job(threading.Event()) == JobResult(processed=0, remaining=0)


def test_stops_between_items_when_the_worker_is_stopping():
    stop = threading.Event()
    done = []

    def process(item):
        done.append(item)
        stop.set()  # SIGTERM arrives while the first item is processed

    result = run_job(stop, fetch=lambda: [1, 2, 3], process=process)

    assert done == [1]
    assert result == JobResult(processed=1, remaining=2)


def test_a_failing_item_fails_the_run():
    def process(item):
        raise RuntimeError("downstream unavailable")

    with pytest.raises(RuntimeError, match="downstream unavailable"):
        run_job(threading.Event(), fetch=lambda: [1], process=process)
