"""Scoring from kept detector state: N series × 1 new point each, as the scheduled detector run does for a batch.

For each of N checks, a kept `ServiceDetector` state (three metrics, a full week of 10-minute buckets learnt, ~74 kB)
is read from PostgreSQL in one query, restored, fed one new point, serialised again, and every state is written back
in one statement (`INSERT … ON CONFLICT DO UPDATE`), as `monitoring.series.metrics_anomalies_detect_many` does with its
`DetectorState` rows. The rows live in a temporary table on DATABASE_URL's server (gone when the script ends); every
row holds the same learnt week, which costs what distinct ones would. N is 1,000 (BENCH_STATE_SERIES), not 10,000:
10,000 states are ~740 MB in one process, so the figure for 10,000 is extrapolated linearly (the work is per series).
Not measured here: reading each check's new samples (one small query per check in the task).

Target (issue 15): scoring 10,000 series every minute fits in one worker, i.e. ≤ 60 s of CPU for 10,000. Prints the
figures with the load average; writes var/bench/detector_state.json; exit status 1 when the target is missed.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "platform"))

from monitoring import anomaly  # noqa: E402 - platform/ goes on sys.path first

OUT = ROOT / "var" / "bench"
SERIES = int(os.environ.get("BENCH_STATE_SERIES", "1000"))
TARGET_SERIES = 10_000
STEP = 600.0
NAMES = ["request_rate", "error_rate", "latency_p95"]


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _learnt_week(config: anomaly.DetectorConfig) -> anomaly.ServiceDetector:
    rng = np.random.default_rng(7)
    detector = anomaly.ServiceDetector(NAMES, config)
    day = 86400 / STEP
    for index in range(config.history_points + int(day)):
        cycle = math.sin(2 * math.pi * index / day)
        detector.update(
            index * STEP,
            {
                "request_rate": 100 + 40 * cycle + rng.normal(0, 2),
                "error_rate": 0.01 + rng.normal(0, 0.002),
                "latency_p95": 200 + 30 * cycle + rng.normal(0, 3),
            },
        )
    return detector


def main() -> int:
    config = anomaly.DetectorConfig.for_step(STEP)
    learnt = _learnt_week(config)
    blob = learnt.state()
    next_at = (config.history_points + 86400 / STEP) * STEP
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    load_before = _load()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TEMP TABLE detector_state (id integer PRIMARY KEY, state bytea NOT NULL)")
        connection.execute("ALTER TABLE detector_state ALTER COLUMN state SET STORAGE EXTERNAL")
        with connection.cursor() as cursor, cursor.copy("COPY detector_state (id, state) FROM STDIN") as copy:
            for pk in range(SERIES):
                copy.write_row((pk, blob))
        wall, cpu = time.perf_counter(), time.process_time()
        rows = connection.execute("SELECT id, state FROM detector_state ORDER BY id").fetchall()
        read_wall = time.perf_counter() - wall
        ids, states, alerts = [], [], 0
        for pk, state in rows:
            detector = anomaly.ServiceDetector.restore(bytes(state), NAMES, config)
            alerts += len(detector.update(next_at, {"request_rate": 101.0, "error_rate": 0.01, "latency_p95": 201.0}))
            ids.append(pk)
            states.append(detector.state())
        score_wall = time.perf_counter() - wall - read_wall
        connection.execute(
            # The statement Django's bulk_create(update_conflicts=True) sends for DetectorState, in one round trip.
            "INSERT INTO detector_state (id, state) SELECT * FROM unnest(%s::integer[], %s::bytea[]) "
            "ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state",
            (ids, states),
        )
        total_wall, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    load_after = _load()
    scale = TARGET_SERIES / SERIES
    figures = {
        "series": SERIES,
        "state_bytes": len(blob),
        "read_seconds": round(read_wall, 3),
        "restore_feed_serialise_seconds": round(score_wall, 3),
        "write_seconds": round(total_wall - read_wall - score_wall, 3),
        "wall_seconds": round(total_wall, 3),
        "cpu_seconds": round(total_cpu, 3),
        "cpu_ms_per_series": round(1000 * total_cpu / SERIES, 3),
        "extrapolated_cpu_seconds_for_10000": round(total_cpu * scale, 1),
        "extrapolated_wall_seconds_for_10000": round(total_wall * scale, 1),
        "replay_cpu_seconds_per_check_before": 0.27,
        "alerts": alerts,
        "load_average": {"before": load_before, "after": load_after},
    }
    met = figures["extrapolated_cpu_seconds_for_10000"] <= 60.0
    print(
        f"bench_detector_state: {SERIES} series × 1 new point from kept state ({len(blob) / 1024:.0f} kB each): "
        f"read {read_wall:.2f} s, restore+feed+serialise {score_wall:.2f} s, write {figures['write_seconds']:.2f} s; "
        f"{total_wall:.2f} s wall, {total_cpu:.2f} s CPU of this process ({figures['cpu_ms_per_series']:.2f} ms a "
        f"series, against ~270 ms replaying a week); extrapolated to {TARGET_SERIES:,}: "
        f"{figures['extrapolated_cpu_seconds_for_10000']} s CPU, {figures['extrapolated_wall_seconds_for_10000']} s "
        f"wall; load average (1/5/15 min) {load_before} before, {load_after} after"
    )
    print(f"  10,000 series a minute within one worker (≤ 60 s CPU)      {'met' if met else 'MISSED'}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "detector_state.json").write_text(json.dumps({**figures, "target_met": met}, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
