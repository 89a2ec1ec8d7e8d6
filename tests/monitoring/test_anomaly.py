"""The streaming detector on synthetic series whose anomalies are known, and the benchmark scorer's arithmetic."""

import math
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from monitoring import anomaly

STEP = 300.0
DAY = 288  # points a day at a 5-minute step


def seasonal(days: float, *, seed: int = 1, noise: float = 1.0) -> np.ndarray:
    """A request rate: a daily cycle between ~60 and ~140, a slow upward trend and Gaussian noise."""
    rng = np.random.default_rng(seed)
    n = int(days * DAY)
    t = np.arange(n)
    return 100 + 40 * np.sin(2 * math.pi * t / DAY) + 0.01 * t + rng.normal(0, noise, n)


def alerts_of(values: np.ndarray) -> list[tuple[int, anomaly.Alert]]:
    detector = anomaly.SeriesDetector()
    found = []
    for index, value in enumerate(values):
        alert = detector.update(index * STEP, float(value))
        if alert is not None:
            found.append((index, alert))
    return found


def test_normal_daily_cycle_with_trend_and_noise_raises_nothing():
    assert alerts_of(seasonal(4)) == []


def test_a_spike_alerts_at_its_point_as_an_extreme_once():
    values = seasonal(3)
    values[700] += 80
    found = alerts_of(values)
    assert [(index, alert.reason) for index, alert in found] == [(700, anomaly.EXTREME)]
    assert found[0][1].high < values[700]


def test_nothing_alerts_during_the_warm_up_day():
    values = seasonal(2)
    values[100] += 500
    assert alerts_of(values) == []


def test_a_long_outage_is_one_episode_and_a_later_one_alerts_again():
    values = seasonal(4)
    values[600:700] = 0.0  # far below any trough, for over eight hours
    values[1000] += 200
    found = alerts_of(values)
    assert [index for index, _ in found] == [600, 1000]


def test_a_sustained_shift_inside_the_range_alerts_as_a_level_change():
    rng = np.random.default_rng(3)
    values = rng.normal(50, 2, 8 * DAY)  # a week of history: the shift's own points barely move its percentiles
    values[::200] = 62  # occasional bursts widen the range, so single points of the shift stay inside it
    values[2100:2160] = rng.normal(59, 0.5, 60)
    found = [(index, alert) for index, alert in alerts_of(values) if index >= 2100]
    assert len(found) == 1
    index, alert = found[0]
    assert alert.reason == anomaly.LEVEL
    assert 2100 < index <= 2100 + 12  # within the hour the level test looks at


def test_oscillation_at_normal_levels_alerts_as_volatility():
    rng = np.random.default_rng(4)
    values = rng.normal(50, 1, 3 * DAY)
    values[::50] = 58  # rare spikes set the range
    values[:: 50 + 1] = 42
    values[700:740] = np.where(np.arange(40) % 2, 56.0, 44.0)  # flapping inside the range, every point
    found = alerts_of(values)
    assert [(index, alert.reason) for index, alert in found][:1] == [(found[0][0], anomaly.VOLATILITY)]
    assert 700 < found[0][0] < 740


def test_gaps_are_skipped_not_learned():
    values = seasonal(3)
    values[500:520] = math.nan
    assert alerts_of(values) == []


def test_for_step_keeps_durations():
    minute = anomaly.DetectorConfig.for_step(60)
    assert minute.history_points == 2016 * 5 and minute.warmup_points == 288 * 5 and minute.quiet_points == 72 * 5


def correlated_service(*, seed: int, shift: float) -> tuple[anomaly.ServiceDetector, list[tuple[int, str, str]]]:
    rng = np.random.default_rng(seed)
    names = ["rate", "errors", "p95", "cpu"]
    n = 5 * DAY
    cycle = np.sin(2 * math.pi * np.arange(n) / DAY)
    # rate, latency and CPU follow the same daily cycle: moving together is normal, the detector must learn it
    data = {
        "rate": 100 + 40 * cycle + rng.normal(0, 2, n),
        "errors": 1 + rng.normal(0, 0.2, n),
        "p95": 200 + 30 * cycle + rng.normal(0, 3, n),
        "cpu": 40 + 20 * cycle + rng.normal(0, 1, n),
    }
    stds = {"rate": 2, "errors": 0.2, "p95": 3, "cpu": 1}
    for name in names:  # each metric a little off, in the same hour, none of them out of its own range
        data[name][1200:1260] += shift * stds[name] * (-1 if name == "rate" else 1)
    detector = anomaly.ServiceDetector(names)
    found = []
    for index in range(n):
        for name, alert in detector.update(index * STEP, {name: float(data[name][index]) for name in names}):
            found.append((index, name, alert.reason))
    return detector, found


def test_correlated_small_deviations_alert_when_no_single_metric_does():
    _, found = correlated_service(seed=6, shift=1.0)
    joint = [index for index, name, reason in found if reason == anomaly.JOINT]
    assert len(joint) == 1 and 1200 < joint[0] < 1260
    assert [index for index, name, _ in found if name and 1200 <= index <= joint[0]] == []


def test_metrics_that_move_together_normally_raise_no_joint_alert():
    # Single metrics of pure noise do set new records now and then (extreme-value tests do); the joint test must
    # not add alerts for the daily cycle that rate, latency and CPU share.
    _, found = correlated_service(seed=6, shift=0.0)
    assert [reason for _, _, reason in found if reason == anomaly.JOINT] == []


def test_score_series_counts_hits_false_alarms_and_delay():
    values = seasonal(4)
    values[700] += 80  # inside the window, 100 minutes after it starts
    values[1000] += 300  # outside every window, and higher than the first: a false alarm
    times = [index * STEP for index in range(len(values))]
    score = anomaly.Score()
    anomaly.score_series(
        times=times, values=list(values), windows=[(680 * STEP, 720 * STEP), (1100 * STEP, 1110 * STEP)], into=score
    )
    assert (score.detected, score.windows, score.false_alarms, score.points) == (1, 2, 1, len(values))
    assert score.delays_minutes == [100.0]


def write_folder(folder: Path, values: np.ndarray, labels: str) -> None:
    lines = ["timestamp,value"]
    for index, value in enumerate(values):
        minutes = index * 5
        lines.append(f"2024-01-{1 + minutes // 1440:02d} {minutes // 60 % 24:02d}:{minutes % 60:02d}:00,{value:.3f}")
    (folder / "series.csv").write_text("\n".join(lines) + "\n")
    (folder / "labels.json").write_text(labels)


def test_anomaly_score_prints_one_summary_line(tmp_path, capsys):
    values = seasonal(3)
    values[700] += 80  # 2024-01-03 10:20
    write_folder(tmp_path, values, '{"series.csv": [["2024-01-03 09:00:00.000000", "2024-01-03 12:00:00.000000"]]}')
    call_command("anomaly_score", str(tmp_path))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith("windows detected 1/1, false alarms 0.00 per 1k points, median delay 80 min, ")
    assert out[0].endswith(" ms per point")


@pytest.mark.parametrize(
    ("labels", "message"),
    [("not json", "labels.json"), ("[]", "expected an object"), ('{"series.csv": [["yesterday", "x"]]}', "series.csv")],
)
def test_anomaly_score_names_what_is_wrong(tmp_path, labels, message):
    write_folder(tmp_path, seasonal(1), labels)
    with pytest.raises(CommandError, match=message):
        call_command("anomaly_score", str(tmp_path))


def test_anomaly_score_names_a_bad_line(tmp_path):
    write_folder(tmp_path, seasonal(1), "{}")
    with (tmp_path / "series.csv").open("a") as handle:
        handle.write("2024-01-02 00:00:00,\x00\n")
    with pytest.raises(CommandError, match="series.csv line 290"):
        call_command("anomaly_score", str(tmp_path))
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("anomaly_score", str(tmp_path / "missing"))


# --- a detector kept between runs ----------------------------------------------------------------------------------


def _service_points(seed: int) -> tuple[list[str], list[dict[str, float]]]:
    """Four days of three metrics with a daily cycle, gaps, a missing metric now and then, a latency step, a spike
    and a correlated shift: every path of the detector (warm-up, episodes, joint test, skipped points) is taken."""
    rng = np.random.default_rng(seed)
    n = 4 * DAY
    cycle = np.sin(2 * math.pi * np.arange(n) / DAY)
    rate = 100 + 40 * cycle + rng.normal(0, 2, n)
    errors = 0.01 + rng.normal(0, 0.002, n)
    p95 = 200 + 30 * cycle + rng.normal(0, 3, n)
    p95[2 * DAY + 100 : 2 * DAY + 140] += 120
    rate[3 * DAY] += 400
    rate[3 * DAY + 150 : 3 * DAY + 200] -= 4
    p95[3 * DAY + 150 : 3 * DAY + 200] += 6
    points = []
    for index in range(n):
        point = {"rate": float(rate[index]), "errors": float(errors[index]), "p95": float(p95[index])}
        if rng.random() < 0.03:
            del point[str(rng.choice(list(point)))]
        if rng.random() < 0.01:
            point["rate"] = math.nan
        points.append(point)
    return ["rate", "errors", "p95"], points


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_restored_service_detector_scores_exactly_as_one_fed_continuously(seed):
    names, points = _service_points(seed)
    config = anomaly.DetectorConfig.for_step(STEP)
    continuous = anomaly.ServiceDetector(names, config)
    resumed = anomaly.ServiceDetector(names, config)
    restarts = set(np.random.default_rng(seed).choice(len(points), 60, replace=False)) | {0, 1, DAY - 1, DAY}
    expected, got = [], []
    for index, point in enumerate(points):
        if index in restarts:  # a run ends here: the state goes to bytes and the next run starts from them
            resumed = anomaly.ServiceDetector.restore(resumed.state(), names, config)
        expected.append(continuous.update(index * STEP, point))
        got.append(resumed.update(index * STEP, point))
        assert resumed.last_distance == continuous.last_distance
    assert got == expected
    assert sum(map(len, expected)) >= 2  # the series has anomalies, so equal alert lists say something
    assert resumed.state() == continuous.state()


def test_a_restored_series_detector_scores_exactly_as_one_fed_continuously():
    values = seasonal(3, seed=4)
    values[500:520] += 90
    continuous, resumed = anomaly.SeriesDetector(), anomaly.SeriesDetector()
    expected, got = [], []
    for index, value in enumerate(values):
        if index % 37 == 0:
            resumed = anomaly.SeriesDetector.restore(resumed.state())
        expected.append(continuous.update(index * STEP, float(value)))
        got.append(resumed.update(index * STEP, float(value)))
    assert got == expected and any(expected)
    assert resumed.state() == continuous.state()


def test_a_state_of_another_version_configuration_or_metrics_or_damaged_is_refused():
    names, points = _service_points(1)
    detector = anomaly.ServiceDetector(names)
    for index, point in enumerate(points[:400]):
        detector.update(index * STEP, point)
    blob = detector.state()
    assert len(blob) < 100_000  # compact enough to read thousands in one query
    other_version = blob[:4] + (anomaly.STATE_VERSION + 1).to_bytes(4, "little") + blob[8:]
    refused = {
        "another version": (other_version, names, anomaly.DEFAULT_CONFIG),
        "another configuration": (blob, names, anomaly.DetectorConfig(quiet_points=10)),
        "other metrics": (blob, ["rate", "p95", "errors"], anomaly.DEFAULT_CONFIG),
        "truncated": (blob[:-8], names, anomaly.DEFAULT_CONFIG),
        "trailing bytes": (blob + b"\0" * 8, names, anomaly.DEFAULT_CONFIG),
        "garbage": (b"not a state at all", names, anomaly.DEFAULT_CONFIG),
        "empty": (b"", names, anomaly.DEFAULT_CONFIG),
        "damaged header": (blob[:12] + b"}" + blob[13:], names, anomaly.DEFAULT_CONFIG),
    }
    for case, (data, metrics, config) in refused.items():
        with pytest.raises(anomaly.StateError):
            anomaly.ServiceDetector.restore(data, metrics, config)
            pytest.fail(case)
    with pytest.raises(anomaly.StateError):
        anomaly.SeriesDetector.restore(blob)  # a service's state is not a series'
    assert anomaly.ServiceDetector.restore(blob, names).state() == blob
