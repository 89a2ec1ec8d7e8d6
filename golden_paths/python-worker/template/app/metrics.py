"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand: no client library needed."""

from __future__ import annotations

import threading
import time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """The worker's counters. Thread-safe: the job loop writes them while the HTTP thread reads them."""

    def __init__(self, *, interval_seconds: float, retries: bool = False, start_time: float | None = None) -> None:
        self.interval_seconds = interval_seconds
        self.retries_enabled = retries
        self.start_time = time.time() if start_time is None else start_time
        self.runs = {"success": 0, "failure": 0}
        self.retries = 0
        self.skipped = 0
        self.last_success = 0.0  # Unix time of the end of the last successful run; 0 before the first one
        self.duration_sum = 0.0
        self.duration_buckets = [0] * len(DURATION_BUCKETS)
        self._lock = threading.Lock()

    def run_finished(self, *, ok: bool, duration: float, at: float) -> None:
        with self._lock:
            self.runs["success" if ok else "failure"] += 1
            self.duration_sum += duration
            for index, bound in enumerate(DURATION_BUCKETS):
                if duration <= bound:
                    self.duration_buckets[index] += 1
            if ok:
                self.last_success = at

    def retry_observed(self) -> None:
        with self._lock:
            self.retries += 1

    def runs_skipped(self, count: int) -> None:
        with self._lock:
            self.skipped += count

    def render(self) -> str:
        with self._lock:
            runs, retries, skipped = dict(self.runs), self.retries, self.skipped
            last_success, duration_sum, buckets = self.last_success, self.duration_sum, list(self.duration_buckets)
        total = sum(runs.values())
        lines = [
            "# HELP worker_job_runs_total Runs of the job, by outcome.",
            "# TYPE worker_job_runs_total counter",
            *(f'worker_job_runs_total{{outcome="{outcome}"}} {count}' for outcome, count in sorted(runs.items())),
            "# HELP worker_job_duration_seconds How long runs of the job took, retries included.",
            "# TYPE worker_job_duration_seconds histogram",
            *(
                f'worker_job_duration_seconds_bucket{{le="{_number(bound)}"}} {count}'
                for bound, count in zip(DURATION_BUCKETS, buckets, strict=True)
            ),
            f'worker_job_duration_seconds_bucket{{le="+Inf"}} {total}',
            f"worker_job_duration_seconds_sum {duration_sum:.6f}",
            f"worker_job_duration_seconds_count {total}",
            "# HELP worker_job_last_success_timestamp_seconds When the last successful run ended (0: none yet).",
            "# TYPE worker_job_last_success_timestamp_seconds gauge",
            f"worker_job_last_success_timestamp_seconds {last_success:.3f}",
            "# HELP worker_job_skipped_runs_total Runs skipped because the previous run overran the interval.",
            "# TYPE worker_job_skipped_runs_total counter",
            f"worker_job_skipped_runs_total {skipped}",
        ]
        if self.retries_enabled:
            lines += [
                "# HELP worker_job_retries_total Failed attempts that were retried.",
                "# TYPE worker_job_retries_total counter",
                f"worker_job_retries_total {retries}",
            ]
        lines += [
            "# HELP worker_job_interval_seconds Configured time between the starts of two runs.",
            "# TYPE worker_job_interval_seconds gauge",
            f"worker_job_interval_seconds {_number(self.interval_seconds)}",
            "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.start_time:.3f}",
        ]
        return "\n".join(lines) + "\n"
