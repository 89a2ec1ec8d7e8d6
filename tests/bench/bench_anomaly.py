"""Anomaly detector benchmark: the shipped configuration on the NAB AWS series, against a rolling median/MAD baseline.

Each of the 17 labelled CloudWatch series (bench-data/nab-aws, 67,740 points at 5 minutes) is fed point by point to a
fresh detector, as `manage.py anomaly_score` does; the baseline is the naive detector the issue compares with (a point
more than 5 scaled MADs from the median of the last week alerts, then nothing for a day). Targets (issue 15):
≥ 80 % of windows detected, ≤ 1.0 false alarm per 1,000 points, ≤ 1 ms per point, and better than the baseline.

Needs no database. ANOMALY_BENCH_DATA points at another folder in the same format. Writes var/bench/anomaly.json;
exit status 0 when every target is met, 1 when one is missed.
"""

import json
import os
import sys
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "platform"))

from monitoring import anomaly  # noqa: E402 - platform/ goes on sys.path first

OUT = ROOT / "var" / "bench"
DATA = Path(os.environ.get("ANOMALY_BENCH_DATA", ROOT.parents[1] / "shared" / "bench-data" / "nab-aws"))
if not DATA.is_dir():
    DATA = Path("/work/shared/bench-data/nab-aws")


class RollingMad:
    """The naive baseline: |x - median| > 5 × 1.4826 × MAD over the last week, then a day without alerts."""

    def __init__(self, config: anomaly.DetectorConfig = anomaly.DEFAULT_CONFIG) -> None:
        self.history: deque[float] = deque(maxlen=config.history_points)
        self.warmup, self.cooldown, self.since = config.warmup_points, config.warmup_points, 10**9

    def update(self, at: float, value: float) -> anomaly.Alert | None:
        alert = None
        self.since += 1
        if len(self.history) >= self.warmup:
            window = np.fromiter(self.history, float)
            median = float(np.median(window))
            scale = max(1.4826 * float(np.median(np.abs(window - median))), 0.2 * float(window.std()), 1e-6)
            if abs(value - median) / scale > 5 and self.since > self.cooldown:
                alert, self.since = anomaly.Alert(at=at, value=value, reason="mad", low=0, high=0), 0
        self.history.append(value)
        return alert


def main() -> int:
    shipped = anomaly.score_folder(DATA)
    baseline = anomaly.score_folder(DATA, detector=lambda step: RollingMad(anomaly.DetectorConfig.for_step(step)))
    print(f"Data: {DATA} ({shipped.points} points)")
    print(f"shipped detector   {shipped.line()}")
    print(f"rolling median/MAD {baseline.line()}")
    share = shipped.detected / shipped.windows if shipped.windows else 0.0
    checks = {
        "windows detected ≥ 80 %": share >= 0.8,
        "false alarms ≤ 1.0 per 1k points": shipped.false_alarms_per_1k <= 1.0,
        "≤ 1 ms per point": shipped.ms_per_point <= 1.0,
        "more windows and fewer false alarms than the baseline": shipped.detected > baseline.detected
        and shipped.false_alarms_per_1k < baseline.false_alarms_per_1k,
    }
    for name, met in checks.items():
        print(f"  {name:<56}{'met' if met else 'MISSED'}")
    OUT.mkdir(parents=True, exist_ok=True)

    def figures(score: anomaly.Score) -> dict[str, float | int]:
        return {
            "windows": score.windows,
            "detected": score.detected,
            "false_alarms": score.false_alarms,
            "points": score.points,
            "false_alarms_per_1k": round(score.false_alarms_per_1k, 3),
            "median_delay_minutes": score.median_delay_minutes,
            "ms_per_point": round(score.ms_per_point, 4),
        }

    result = {"data": str(DATA), "shipped": figures(shipped), "baseline": figures(baseline), "targets": checks}
    (OUT / "anomaly.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
