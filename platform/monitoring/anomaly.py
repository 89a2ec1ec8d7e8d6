"""Streaming anomaly detection: one detector per metric series, and one across the metrics of a service.

A `SeriesDetector` sees a series one point at a time (never the future) and keeps a week of its own past. Normal
behaviour is what that week held, at three time scales, so a metric's own noise, bursts, trend and its daily and
weekly swings set its bounds rather than a fixed threshold:

- **extreme**: the value lies beyond everything the week held, by more than `extreme_margin` of the distance from
  the median to that edge (a new peak, a new trough, a step to a level never seen);
- **level**: the median of the last `level_points` (an hour at a 5-minute step) lies beyond the week's 1st or 99th
  percentile by `level_margin` of the distance from the median, so a sustained shift is caught even when single
  points stay inside the range;
- **volatility**: the mean absolute change between successive points over the last `volatility_points` (3 hours)
  exceeds every such figure of the week, so a quiet series that starts to oscillate is caught even at normal levels.

An alert opens an *episode*; the episode closes after `quiet_points` without any of the three, and only a new episode
alerts again, so a long incident is one alert and not one per point. Nothing alerts during the first `warmup_points`
(a day), while the week is still mostly unknown.

`ServiceDetector` adds *correlated* deviations across a service's metrics: the mean of the last `joint_points` points
of every metric is compared with the week's such means by their Mahalanobis distance, which learns how the metrics
normally move together (request rate and latency rising at the daily peak is normal), and a chi-squared tail
(`scipy.stats.chi2`) below `joint_alpha` alerts even when no single metric crossed its own bounds: four metrics
each a little off together are rarer than any of them alone.

Why order statistics on a ring buffer rather than a fitted model: statsmodels' seasonal models (STL, ETS, SARIMAX)
fit a whole window at a time — refitting per point costs milliseconds to seconds, far over the 1 ms a point the
issue allows — and their Gaussian residuals call the bursty, heavy-tailed CloudWatch series of the benchmark
anomalous all the time. The quantiles, medians and maxima here are numpy's, the tail combination is scipy's; the
shipped configuration (`DEFAULT_CONFIG`, one for every series) was chosen on the NAB AWS benchmark (docs/monitoring.md
gives its score against a rolling median/MAD detector).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DetectorConfig:
    """Every knob of the detector, in points of the series' step (5 minutes in the benchmark and the defaults)."""

    history_points: int = 2016  # a week at 5 minutes
    warmup_points: int = 288  # a day
    extreme_margin: float = 0.1
    level_points: int = 12
    level_quantile: float = 0.99
    level_margin: float = 0.5
    volatility_points: int = 36
    volatility_margin: float = 0.03
    quiet_points: int = 72
    joint_alpha: float = 1e-6
    joint_points: int = 6

    @classmethod
    def for_step(cls, step_seconds: float) -> DetectorConfig:
        """The default durations (a week, a day, an hour, three hours, six hours) at another sampling step."""
        scale = 300 / max(step_seconds, 1.0)
        base = cls()

        def points(value: int, least: int = 2) -> int:
            return max(least, round(value * scale))

        return cls(
            history_points=points(base.history_points, 10),
            warmup_points=points(base.warmup_points, 5),
            level_points=points(base.level_points),
            volatility_points=points(base.volatility_points),
            quiet_points=points(base.quiet_points),
            extreme_margin=base.extreme_margin,
            level_quantile=base.level_quantile,
            level_margin=base.level_margin,
            volatility_margin=base.volatility_margin,
            joint_alpha=base.joint_alpha,
            joint_points=points(base.joint_points),
        )


DEFAULT_CONFIG = DetectorConfig()

EXTREME, LEVEL, VOLATILITY, JOINT = "extreme", "level", "volatility", "correlated"


@dataclass(frozen=True)
class Alert:
    """The start of an anomalous episode: when, the value, why (which test), and the normal range it left."""

    at: float
    value: float
    reason: str
    low: float
    high: float


class _Ring:
    """A fixed-size window of the latest floats, readable as a numpy array in no particular order."""

    def __init__(self, size: int) -> None:
        self.data = np.empty(size)
        self.count = 0

    def push(self, value: float) -> None:
        self.data[self.count % len(self.data)] = value
        self.count += 1

    def values(self) -> np.ndarray:
        return self.data[: min(self.count, len(self.data))]


@dataclass
class _Episode:
    open: bool = False
    calm: int = 0

    def step(self, deviating: bool, quiet_points: int) -> bool:
        """Feed one point's verdict; True when it opens a new episode (the only point that alerts)."""
        if deviating:
            self.calm = 0
            opened = not self.open
            self.open = True
            return opened
        self.calm += 1
        if self.calm >= quiet_points:
            self.open = False
        return False


class SeriesDetector:
    """Learns one series' normal behaviour as it streams and flags the points where an anomalous episode starts."""

    def __init__(self, config: DetectorConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.values = _Ring(config.history_points)
        self.volatilities = _Ring(config.history_points)
        self.recent: deque[float] = deque(maxlen=max(config.level_points, config.volatility_points))
        self.changes: deque[float] = deque(maxlen=config.volatility_points - 1)
        self.change_sum = 0.0
        self.episode = _Episode()

    def update(self, at: float, value: float) -> Alert | None:
        """Feed the next point (time in seconds, any origin); an Alert when it starts an anomalous episode."""
        config = self.config
        if not math.isfinite(value):
            return None  # a gap or a bad scrape says nothing about the service's behaviour
        if self.recent:
            change = abs(value - self.recent[-1])
            if len(self.changes) == self.changes.maxlen:
                self.change_sum -= self.changes[0]
            self.changes.append(change)
            self.change_sum += change
        self.recent.append(value)
        volatility = self.change_sum / len(self.changes) if self.changes else 0.0

        reason = ""
        low = high = value
        history = self.values.values()
        if len(history) >= config.warmup_points:
            q_low, median, q_high = np.quantile(history, (1 - config.level_quantile, 0.5, config.level_quantile))
            lowest, highest = float(history.min()), float(history.max())
            low = lowest - config.extreme_margin * (median - lowest)
            high = highest + config.extreme_margin * (highest - median)
            tolerance = 1e-9 * max(abs(lowest), abs(highest), 1.0)
            if value > high + tolerance or value < low - tolerance:
                reason = EXTREME
            else:
                recent_level = float(np.median(list(self.recent)[-config.level_points :]))
                level_high = q_high + config.level_margin * (q_high - median)
                level_low = q_low - config.level_margin * (median - q_low)
                if recent_level > level_high + tolerance or recent_level < level_low - tolerance:
                    reason = LEVEL
                elif volatility > float(self.volatilities.values().max()) * (1 + config.volatility_margin) + 1e-12:
                    reason = VOLATILITY
        self.values.push(value)
        self.volatilities.push(volatility)
        if self.episode.step(bool(reason), config.quiet_points):
            return Alert(at=at, value=value, reason=reason, low=float(low), high=float(high))
        return None

    def state(self) -> bytes:
        """Everything this detector learnt, as bytes for `SeriesDetector.restore` (a few tens of kB at most)."""
        return _pack("series", self.config, self._scalars(), self._arrays())

    @classmethod
    def restore(cls, blob: bytes, config: DetectorConfig = DEFAULT_CONFIG) -> SeriesDetector:
        """The detector `state()` saved; StateError when it was saved by another version or configuration, or is
        damaged, and the series must be replayed instead."""
        scalars, arrays = _unpack(blob, "series", config)
        detector = cls(config)
        detector._load(scalars, arrays)
        return detector

    def _scalars(self) -> dict:
        return {
            "count": self.values.count,
            "volatility_count": self.volatilities.count,
            "episode": [self.episode.open, self.episode.calm],
        }

    def _arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            f"{prefix}values": self.values.values(),
            f"{prefix}volatilities": self.volatilities.values(),
            f"{prefix}recent": np.array(self.recent, dtype=float),
            f"{prefix}changes": np.array(self.changes, dtype=float),
            # The running sum is not recomputed from `changes`: summing in another order could differ in the last bit.
            f"{prefix}change_sum": np.array([self.change_sum]),
        }

    def _load(self, scalars: dict, arrays: dict[str, np.ndarray], prefix: str = "") -> None:
        try:
            _ring_restore(self.values, int(scalars["count"]), arrays[f"{prefix}values"])
            _ring_restore(self.volatilities, int(scalars["volatility_count"]), arrays[f"{prefix}volatilities"])
            self.recent.extend(float(value) for value in arrays[f"{prefix}recent"])
            self.changes.extend(float(value) for value in arrays[f"{prefix}changes"])
            self.change_sum = float(arrays[f"{prefix}change_sum"][0])
            self.episode = _Episode(open=bool(scalars["episode"][0]), calm=int(scalars["episode"][1]))
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise StateError(f"damaged state: {error}") from error


class ServiceDetector:
    """One detector per metric of a service, plus the joint test that catches deviations no single metric shows."""

    def __init__(self, metrics: Sequence[str], config: DetectorConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.names = list(metrics)
        self.series = {name: SeriesDetector(config) for name in self.names}
        self.recent: deque[np.ndarray] = deque(maxlen=config.joint_points)
        self.means = np.empty((config.history_points, len(self.names)))
        self.count = 0
        self.joint_episode = _Episode()
        self.last_distance = 0.0

    def update(self, at: float, values: dict[str, float]) -> list[tuple[str, Alert]]:
        """Feed one point of every metric; the alerts it raises, as (metric name, or "" for the joint test, alert).

        A point missing a metric (or with a non-finite value) feeds the metrics it has and skips the joint test.
        """
        alerts: list[tuple[str, Alert]] = []
        for name, detector in self.series.items():
            if name in values:
                alert = detector.update(at, values[name])
                if alert is not None:
                    alerts.append((name, alert))
        vector = np.array([values.get(name, math.nan) for name in self.names], dtype=float)
        if len(self.names) < 2 or not np.isfinite(vector).all():
            return alerts
        self.recent.append(vector)
        if len(self.recent) < self.recent.maxlen:  # type: ignore[operator]
            return alerts
        mean = np.mean(self.recent, axis=0)
        joint = False
        history = self.means[: min(self.count, len(self.means))]
        if len(history) >= self.config.warmup_points:
            joint = self._deviates(mean, history) and not any(d.episode.open for d in self.series.values())
        self.means[self.count % len(self.means)] = mean
        self.count += 1
        if self.joint_episode.step(joint, self.config.quiet_points):
            alerts.append(("", Alert(at=at, value=self.last_distance, reason=JOINT, low=0.0, high=0.0)))
        return alerts

    def _deviates(self, mean: np.ndarray, history: np.ndarray) -> bool:
        """Whether the recent mean vector is far from the history's, given how the metrics normally move together.

        The squared Mahalanobis distance of a mean of `joint_points` points against the week's means of as many
        points (so autocorrelation is in the covariance, not assumed away) is compared with the chi-squared tail
        for as many degrees of freedom as metrics.
        """
        centre = history.mean(axis=0)
        spread = history.std(axis=0)
        spread[spread == 0] = 1.0
        covariance = np.atleast_2d(np.cov((history - centre) / spread, rowvar=False))
        # A small ridge keeps metrics that always move in lockstep from making the covariance singular.
        covariance += np.eye(len(covariance)) * 1e-6
        offset = (mean - centre) / spread
        self.last_distance = float(offset @ np.linalg.solve(covariance, offset))
        return float(stats.chi2.sf(self.last_distance, df=len(offset))) < self.config.joint_alpha

    def state(self) -> bytes:
        """Everything this detector and its metrics' detectors learnt, as bytes for `ServiceDetector.restore`."""
        scalars: dict = {
            "names": self.names,
            "count": self.count,
            "joint_episode": [self.joint_episode.open, self.joint_episode.calm],
            "last_distance": self.last_distance,
            "series": {},
        }
        arrays: dict[str, np.ndarray] = {
            "joint_recent": np.array(self.recent, dtype=float).reshape(-1, len(self.names)),
            "means": self.means[: min(self.count, len(self.means))],
        }
        for index, detector in enumerate(self.series.values()):
            scalars["series"][str(index)] = detector._scalars()
            arrays.update(detector._arrays(prefix=f"{index}."))
        return _pack("service", self.config, scalars, arrays)

    @classmethod
    def restore(cls, blob: bytes, metrics: Sequence[str], config: DetectorConfig = DEFAULT_CONFIG) -> ServiceDetector:
        """The detector `state()` saved for the same metrics; StateError when it cannot be resumed from."""
        scalars, arrays = _unpack(blob, "service", config)
        if scalars.get("names") != list(metrics):
            raise StateError("the state was kept for other metrics")
        detector = cls(metrics, config)
        try:
            detector.count = int(scalars["count"])
            means = arrays["means"]
            if detector.count < 0 or means.shape != (min(detector.count, len(detector.means)), len(detector.names)):
                raise StateError("joint history does not match its count")
            detector.means[: len(means)] = means
            detector.recent.extend(row.copy() for row in arrays["joint_recent"])
            detector.joint_episode = _Episode(
                open=bool(scalars["joint_episode"][0]), calm=int(scalars["joint_episode"][1])
            )
            detector.last_distance = float(scalars["last_distance"])
            for index, series in enumerate(detector.series.values()):
                series._load(scalars["series"][str(index)], arrays, prefix=f"{index}.")
        except (KeyError, IndexError, TypeError, ValueError) as error:
            if isinstance(error, StateError):
                raise
            raise StateError(f"damaged state: {error}") from error
        return detector


# --- keeping a detector between runs -------------------------------------------------------------------------------

# Bumped whenever what a detector keeps changes shape or meaning: a stored state of another version is not read (the
# caller replays the stored week instead), so a deployment never resumes from a state it would misread.
STATE_VERSION = 1
_MAGIC = b"RWDS"
_HEADER = struct.Struct("<4sII")  # magic, version, length of the JSON header


class StateError(ValueError):
    """A stored detector state that cannot be resumed from: another version or configuration, or damaged bytes."""


def _pack(kind: str, config: DetectorConfig, scalars: dict, arrays: dict[str, np.ndarray]) -> bytes:
    # Float64 bytes rather than JSON numbers: a resumed detector must compute bit for bit what a continuous one would.
    header = {
        "kind": kind,
        "config": dataclasses.asdict(config),
        "scalars": scalars,
        "arrays": {name: list(array.shape) for name, array in arrays.items()},
    }
    text = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join(np.ascontiguousarray(array, dtype="<f8").tobytes() for array in arrays.values())
    return _HEADER.pack(_MAGIC, STATE_VERSION, len(text)) + text + body


def _unpack(blob: bytes, kind: str, config: DetectorConfig) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        magic, version, length = _HEADER.unpack_from(blob)
    except struct.error as error:
        raise StateError(f"not a detector state: {error}") from error
    if magic != _MAGIC:
        raise StateError("not a detector state")
    if version != STATE_VERSION:
        raise StateError(f"state version {version}, this detector reads {STATE_VERSION}")
    start = _HEADER.size
    try:
        header = json.loads(blob[start : start + length])
        shapes = {name: tuple(shape) for name, shape in header["arrays"].items()}
        scalars = header["scalars"]
        stored_kind, stored_config = header["kind"], header["config"]
    except (ValueError, KeyError, TypeError) as error:
        raise StateError(f"damaged state header: {error}") from error
    if stored_kind != kind:
        raise StateError(f"a {stored_kind} state, not a {kind}")
    if stored_config != dataclasses.asdict(config):
        raise StateError("the state was kept under another configuration")
    offset = start + length
    arrays: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        size = 8 * math.prod(shape)
        if offset + size > len(blob):
            raise StateError("truncated state")
        arrays[name] = np.frombuffer(blob, dtype="<f8", count=size // 8, offset=offset).reshape(shape).copy()
        offset += size
    if offset != len(blob):
        raise StateError("trailing bytes after the state")
    return scalars, arrays


def _ring_restore(ring: _Ring, count: int, values: np.ndarray) -> None:
    if count < 0 or len(values) != min(count, len(ring.data)):
        raise StateError("ring buffer does not match its count")
    ring.data[: len(values)] = values
    ring.count = count


@dataclass
class Score:
    """A detector's figures on labelled series, as the NAB README scores them."""

    windows: int = 0
    detected: int = 0
    false_alarms: int = 0
    points: int = 0
    delays_minutes: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def false_alarms_per_1k(self) -> float:
        return 1000 * self.false_alarms / self.points if self.points else 0.0

    @property
    def median_delay_minutes(self) -> float:
        return float(np.median(self.delays_minutes)) if self.delays_minutes else 0.0

    @property
    def ms_per_point(self) -> float:
        return 1000 * self.seconds / self.points if self.points else 0.0

    def line(self) -> str:
        return (
            f"windows detected {self.detected}/{self.windows}, false alarms {self.false_alarms_per_1k:.2f} per 1k "
            f"points, median delay {self.median_delay_minutes:.0f} min, {self.ms_per_point:.3f} ms per point"
        )


class Detector(Protocol):
    def update(self, at: float, value: float) -> Alert | None: ...


def score_series(
    *,
    times: Sequence[float],
    values: Sequence[float],
    windows: Iterable[tuple[float, float]],
    into: Score,
    detector: Callable[[float], Detector] | None = None,
) -> None:
    """Feed one labelled series point by point to a fresh detector and add its hits and false alarms to `into`.

    `detector` makes one for a sampling step in seconds; the shipped `SeriesDetector` by default.
    """
    spans = sorted(windows)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 300.0
    make = detector or (lambda step: SeriesDetector(DetectorConfig.for_step(step)))
    series = make(step)
    started = time.perf_counter()
    alerts = [at for at, value in zip(times, values, strict=True) if series.update(at, value) is not None]
    into.seconds += time.perf_counter() - started
    into.points += len(values)
    first: dict[int, float] = {}
    for at in alerts:
        inside = [index for index, (start, end) in enumerate(spans) if start <= at <= end]
        if not inside:
            into.false_alarms += 1
        for index in inside:
            first.setdefault(index, at)
    into.windows += len(spans)
    into.detected += len(first)
    into.delays_minutes.extend((at - spans[index][0]) / 60 for index, at in first.items())


def score_folder(folder: Path, *, detector: Callable[[float], Detector] | None = None) -> Score:
    """Score the shipped configuration on a folder of `timestamp,value` CSV series and their `labels.json`.

    The format is the NAB benchmark's: `labels.json` maps a file name to its anomaly windows `[[start, end], ...]`;
    a file it does not list has no window (every alert on it is a false alarm). Raises ValueError naming the file
    and line of anything unreadable.
    """
    labels_path = folder / "labels.json"
    try:
        labels = json.loads(labels_path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{labels_path}: {error}") from error
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_path}: expected an object mapping file names to windows")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise ValueError(f"{folder}: no .csv series")
    score = Score()
    for path in files:
        times: list[float] = []
        values: list[float] = []
        with path.open(newline="") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if number == 1 and row and row[0].strip().lower() == "timestamp":
                    continue
                try:
                    times.append(_seconds(row[0]))
                    values.append(float(row[1]))
                except (IndexError, ValueError) as error:
                    raise ValueError(f"{path.name} line {number}: {error}") from error
        try:
            windows = [(_seconds(start), _seconds(end)) for start, end in labels.get(path.name, [])]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{labels_path}: windows of {path.name}: {error}") from error
        score_series(times=times, values=values, windows=windows, into=score, detector=detector)
    return score


def _seconds(text: str) -> float:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
