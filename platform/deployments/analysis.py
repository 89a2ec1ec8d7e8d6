"""Canary analysis: decide from an analysis window's samples whether a new release is healthy.

The verdict is one of "pass", "fail" or "inconclusive". Missing data is never healthy: a window in which metrics
could not be read, or in which the canary got (almost) no traffic, is inconclusive, so the engine can wait or
roll back but never promote on silence.

Error rate: the replicas' own metrics (`Samples.requests` / `Samples.errors`) are preferred, since they count all
real traffic. A runtime without a metrics endpoint leaves `requests` at 0 and reports instead the analysis
requests it sent itself: one latency per request in `latencies_ms`, and the failed ones in `errors`. A request
refused before it got an answer has no latency, so the denominator is never taken below the error count. The canary
got "no traffic" when both its latency samples and that denominator are under `min_requests`: a canary that
refuses every connection did get traffic, and fails on its error rate.

Checks on the canary, each against a limit in `Thresholds`: error rate, p95 latency, health probe success. With a
baseline (the previous release, serving beside the canary) two comparisons follow:
- latency: a one-sided Mann-Whitney U test (is the canary slower?) that must be significant AND show a median
  slowdown above `max_slowdown`, so a tiny but significant difference does not roll a release back;
- errors: a one-sided Fisher exact test on the error counts that must be significant AND show a canary error
  rate more than `max_error_increase` (relatively) above the baseline's. This catches a release that stays below
  the absolute limit but errs far more than the release it replaces; the test keeps a handful of errors in a small
  window from failing it.

Then the evidence of the whole deployment (`Evidence`, the counts of every window so far): a one-sided Fisher exact
test of the canary's summed errors against the baseline's summed errors, or, with no baseline, an exact binomial test
against `error_allowance` (0.25 %). One window of a few hundred requests
cannot tell 1 % errors from a healthy background; three can (docs/safe-delivery.md has the arithmetic and the
benchmark that chose these numbers).

The defaults are a careful operator's: Flagger's examples ask for a 99 % request success rate (at most 1 %
errors). Flagger's latency example is p99 under 500 ms over a minute of traffic; an analysis window here is a few
hundred requests, whose p99 is a handful of requests, so the limit is on the p95. Every page shows a rate through
`percent()`, so the timeline, the table and the chart round it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import numpy
from prometheus_client.parser import text_string_to_metric_families

from deployments.runtimes.base import Observation, Samples

Result = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Thresholds:
    """The limits a canary must stay within; the defaults suit a web service (see the module docstring)."""

    max_error_rate: float = 0.01
    max_p95_ms: float = 500.0
    # The local runtime probes each replica three times a window: below 100 % is already one failed probe in six.
    min_probe_success: float = 0.95
    min_requests: int = 10  # fewer canary samples than this is "no data"
    alpha: float = 0.01  # significance level of the comparisons with the baseline
    max_slowdown: float = 1.2  # canary median / baseline median tolerated even when significant
    # Canary error rate / baseline error rate - 1 tolerated even when significant. Its own setting, so a target
    # that loosens its absolute limit does not loosen the comparison with the release it replaces too.
    max_error_increase: float = 0.05
    # The error rate a healthy release may have in the background when there is no baseline to compare with (a first
    # deployment): the evidence test (below) asks whether the canary's errors over the whole deployment are more
    # than this explains. With a baseline, the baseline's own counts are the background.
    error_allowance: float = 0.0025
    min_baseline_requests: int = 200  # the baseline's counts are the background once it has served this many

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Thresholds:
        """Read the limits a deploy target may override; its other settings are not ours to check."""
        defaults = cls()

        def read(key: str, default: float) -> float:
            value = config.get(key)
            return default if value is None else float(value)

        return cls(
            max_error_rate=read("max_error_rate", defaults.max_error_rate),
            max_p95_ms=read("max_p95_ms", defaults.max_p95_ms),
            min_probe_success=read("min_probe_success", defaults.min_probe_success),
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome of an analysis window, with reasons a person can read and the figures behind them."""

    result: Result
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Stats:
    """One set's figures, computed once and shared by the checks and the report."""

    requests: int  # the error rate's denominator (see the module docstring)
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    probe_success: float | None
    latencies_ms: list[float]

    @classmethod
    def of(cls, samples: Samples) -> _Stats:
        requests = max(samples.requests or len(samples.latencies_ms), samples.errors)
        latencies = samples.latencies_ms
        return cls(
            requests=requests,
            errors=samples.errors,
            error_rate=samples.errors / requests if requests else None,
            p50_ms=float(numpy.percentile(latencies, 50)) if latencies else None,
            p95_ms=float(numpy.percentile(latencies, 95)) if latencies else None,
            probe_success=samples.probes_ok / samples.probes if samples.probes else None,
            latencies_ms=latencies,
        )

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            # Six places, so a page rounding the stored rate to one decimal of a percent gets the reasons' figure.
            "error_rate": _round(self.error_rate, 6),
            "p50_ms": _round(self.p50_ms, 2),
            "p95_ms": _round(self.p95_ms, 2),
            "probe_success": _round(self.probe_success, 4),
            "latency_samples": len(self.latencies_ms),
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class Evidence:
    """Request and error counts of the canary and the baseline, summed over a deployment's analysis windows so far.

    One window of a few hundred requests cannot tell a 1 % error rate from a healthy 0.1 %; the windows of one
    deployment together can. The engine keeps this between windows (in the deployment's runtime state) and passes it
    to `evaluate`, which returns the sum including the current window in `figures["evidence"]`.
    """

    canary_requests: int = 0
    canary_errors: int = 0
    baseline_requests: int = 0
    baseline_errors: int = 0

    @classmethod
    def from_dict(cls, data: object) -> Evidence:
        if not isinstance(data, dict):
            return cls()
        values = {key: data.get(key) for key in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in values.items() if isinstance(value, int) and value >= 0})

    def plus(self, canary: _Stats, baseline: _Stats | None) -> Evidence:
        return Evidence(
            canary_requests=self.canary_requests + canary.requests,
            canary_errors=self.canary_errors + canary.errors,
            baseline_requests=self.baseline_requests + (baseline.requests if baseline else 0),
            baseline_errors=self.baseline_errors + (baseline.errors if baseline else 0),
        )


def percent(rate: float) -> str:
    """A rate (0.025) as every page shows it (2.5 %): the timeline's reasons, the analysis table and the charts."""
    return f"{rate * 100:.1f} %"


def evaluate(observation: Observation, thresholds: Thresholds, evidence: Evidence | None = None) -> Verdict:
    """Judge the canary on its own limits, then against the baseline when there is one with enough data, then on the
    evidence of every window of the deployment so far (`evidence`: the earlier windows' counts)."""
    canary = _Stats.of(observation.canary)
    figures: dict[str, Any] = {"canary": canary.figures(), "baseline": None}
    if observation.metric_error:
        # The health probes are the portal's own measurement: a canary that fails them is bad whatever its
        # metrics endpoint says. Without metrics and with passing probes there is no verdict, never a pass.
        probes = [f for f in _absolute_failures(canary, thresholds) if f.startswith("canary health probes")]
        if probes:
            return Verdict("fail", [*probes, f"its metrics could not be read: {observation.metric_error}"], figures)
        return Verdict("inconclusive", [f"metrics could not be read: {observation.metric_error}"], figures)
    if len(canary.latencies_ms) < thresholds.min_requests and canary.requests < thresholds.min_requests:
        return Verdict(
            "inconclusive",
            [f"the canary got no traffic (fewer than {thresholds.min_requests} requests in the window)"],
            figures,
        )

    failures = _absolute_failures(canary, thresholds)
    notes: list[str] = []
    baseline = None
    if observation.baseline is None:
        notes.append("no baseline to compare with (first deployment)")
    else:
        baseline = _Stats.of(observation.baseline)
        figures["baseline"] = baseline.figures()
        failures += _latency_comparison(canary, baseline, thresholds, figures, notes)
        failures += _error_comparison(canary, baseline, thresholds, figures, notes)
    total = (evidence or Evidence()).plus(canary, baseline)
    figures["evidence"] = asdict(total)
    failures += _error_evidence(total, thresholds, figures)

    if failures:
        return Verdict("fail", failures, figures)
    return Verdict("pass", ["the canary is within every limit", *notes], figures)


def _absolute_failures(canary: _Stats, thresholds: Thresholds) -> list[str]:
    """The canary's own limits; a figure that could not be measured (no probes, no latencies) is not checked."""
    failures = []
    if canary.error_rate is not None and canary.error_rate > thresholds.max_error_rate:
        failures.append(
            f"canary error rate {percent(canary.error_rate)} is above the {percent(thresholds.max_error_rate)} limit"
        )
    if canary.p95_ms is not None and canary.p95_ms > thresholds.max_p95_ms:
        failures.append(f"canary p95 latency {canary.p95_ms:.1f} ms is above the {thresholds.max_p95_ms:g} ms limit")
    if canary.probe_success is not None and canary.probe_success < thresholds.min_probe_success:
        failures.append(
            f"canary health probes succeeded {percent(canary.probe_success)} of the time, "
            f"below the {percent(thresholds.min_probe_success)} minimum"
        )
    return failures


def _latency_comparison(
    canary: _Stats, baseline: _Stats, thresholds: Thresholds, figures: dict[str, Any], notes: list[str]
) -> list[str]:
    """Is the canary slower than the baseline, significantly and by more than the tolerated ratio?"""
    if min(len(canary.latencies_ms), len(baseline.latencies_ms)) < thresholds.min_requests:
        notes.append("too few latency samples to compare with the baseline")
        return []
    from scipy.stats import mannwhitneyu  # scipy.stats takes seconds to import: only workers that analyse pay

    test = mannwhitneyu(canary.latencies_ms, baseline.latencies_ms, alternative="greater")
    u, p_value = float(test.statistic), float(test.pvalue)
    canary_median = float(numpy.median(canary.latencies_ms))
    baseline_median = float(numpy.median(baseline.latencies_ms))
    slowdown = canary_median / baseline_median if baseline_median else math.inf
    figures["mann_whitney"] = {
        "u": u,
        "p_value": p_value,
        "slowdown": round(slowdown, 3) if math.isfinite(slowdown) else None,
    }
    if p_value < thresholds.alpha and canary_median > thresholds.max_slowdown * baseline_median:
        return [
            f"the canary is slower than the baseline: median {canary_median:.1f} ms against "
            f"{baseline_median:.1f} ms (Mann-Whitney p = {p_value:.2g} < {thresholds.alpha:g}, "
            f"more than {thresholds.max_slowdown:g} times slower)"
        ]
    return []


def _error_comparison(
    canary: _Stats, baseline: _Stats, thresholds: Thresholds, figures: dict[str, Any], notes: list[str]
) -> list[str]:
    """Does the canary err significantly more than the baseline, by more than `max_error_increase` relatively?"""
    if canary.error_rate is None or baseline.error_rate is None or baseline.requests < thresholds.min_requests:
        notes.append("too few baseline requests to compare error rates")
        return []
    p_value = _more_errors_p(canary.errors, canary.requests, baseline.errors, baseline.requests)
    figures["error_rate_test"] = {"p_value": p_value}
    if p_value < thresholds.alpha and canary.error_rate > baseline.error_rate * (1 + thresholds.max_error_increase):
        return [
            f"canary error rate {percent(canary.error_rate)} is significantly above the baseline's "
            f"{percent(baseline.error_rate)} (Fisher exact test p = {p_value:.2g} < {thresholds.alpha:g})"
        ]
    return []


def _more_errors_p(errors: int, requests: int, baseline_errors: int, baseline_requests: int) -> float:
    """p-value of a one-sided Fisher exact test: does the canary fail a larger share of its requests?"""
    from scipy.stats import fisher_exact  # scipy.stats takes seconds to import: only workers that analyse pay

    table = [[errors, requests - errors], [baseline_errors, baseline_requests - baseline_errors]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def _error_evidence(evidence: Evidence, thresholds: Thresholds, figures: dict[str, Any]) -> list[str]:
    """Are the canary's errors over the whole deployment more than a healthy background explains?

    With a baseline that has served enough requests beside it, a one-sided Fisher exact test of the summed counts
    against the baseline's: it knows that the baseline's rate is an estimate too, so a healthy canary with a few more
    background errors than its baseline, by chance, is not a regression. Without one (a first deployment), an exact
    binomial test against `error_allowance`. Repeated at each window, it is a sequential test that stops early on a
    clear excess and builds up evidence on a small one.
    """
    errors, requests = evidence.canary_errors, evidence.canary_requests
    if not errors:
        return []
    from scipy.stats import binomtest

    rate = errors / requests
    if evidence.baseline_requests >= thresholds.min_baseline_requests:
        baseline_errors, baseline_requests = evidence.baseline_errors, evidence.baseline_requests
        allowed = baseline_errors / baseline_requests
        p_value = _more_errors_p(errors, requests, baseline_errors, baseline_requests)
        against = (
            f"significantly more than the baseline's {baseline_errors} of {baseline_requests} "
            f"(Fisher exact test p = {p_value:.2g} < {thresholds.alpha:g})"
        )
    else:
        allowed = thresholds.error_allowance
        p_value = float(binomtest(errors, requests, allowed, alternative="greater").pvalue)
        against = (
            f"more than a {allowed * 100:g} % background explains with no baseline to compare "
            f"(binomial test p = {p_value:.2g} < {thresholds.alpha:g})"
        )
    figures["error_evidence"] = {"p_value": p_value, "allowed_rate": round(allowed, 6), "rate": round(rate, 6)}
    if p_value < thresholds.alpha and rate > allowed * (1 + thresholds.max_error_increase):
        failed = f"over this deployment's windows the canary failed {errors} of {requests} requests ({percent(rate)})"
        return [f"{failed}, {against}"]
    return []


def counter_samples(text: str, names: frozenset[str]) -> Iterator[tuple[str, dict[str, str], float]]:
    """The samples of a Prometheus exposition named in `names`, in one reading of it: (name, labels, value). Raises
    ValueError on a text that is not an exposition or a value no counter can hold."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name not in names:
                continue
            if not math.isfinite(sample.value) or sample.value < 0:
                raise ValueError(f"{sample.name} has an impossible value {sample.value}")
            yield sample.name, sample.labels, sample.value


def failed(labels: dict[str, str]) -> int:
    """1 for an `http_requests_total` series of 5xx answers, else 0."""
    return 1 if labels.get("status", "").startswith("5") else 0


def request_samples(text: str) -> Iterator[tuple[dict[str, str], float, int]]:
    """The `http_requests_total` series of a Prometheus exposition: (labels, value, `failed`). Raises ValueError as
    `counter_samples` does."""
    for _name, labels, value in counter_samples(text, frozenset({"http_requests_total"})):
        yield labels, value, failed(labels)


def parse_prometheus_requests(text: str) -> tuple[int, int]:
    """Total and 5xx counts of `http_requests_total` in a Prometheus exposition (a replica's /metrics).

    Series without a `status` label count in the total only. A text without the counter gives (0, 0), which the
    analysis reads as no traffic rather than as health.
    """
    total = errors = 0.0
    try:
        for _labels, value, failed in request_samples(text):
            total += value
            errors += value * failed
    except ValueError as error:
        raise ValueError(f"not a Prometheus exposition: {error or 'unparsable line'}") from error
    return round(total), round(errors)


class MetricsError(Exception):
    """Prometheus could not be asked or gave an answer we cannot use; the analysis must not read it as health."""


def _promql_string(value: str) -> str:
    """A PromQL double-quoted string literal: label values come from users and must not change the query."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def query_prometheus(
    base_url: str,
    *,
    service: str,
    environment: str,
    version: str,
    window_seconds: int,
    client: httpx.Client | None = None,
) -> Samples:
    """One release's request and 5xx counts over the window, and its p95 latency, from a Prometheus server.

    Prometheus keeps histograms, not single requests, so `latencies_ms` holds just the p95 (empty when the
    histogram has no data in the window): the p95 limit still applies, the Mann-Whitney comparison does not
    (it needs `min_requests` samples). Probes are not Prometheus's business and stay at 0 (not checked).
    """
    if window_seconds <= 0:
        raise ValueError(f"the analysis window must be positive, not {window_seconds} s")
    selector = ",".join(
        f"{label}={_promql_string(value)}"
        for label, value in (("service", service), ("environment", environment), ("version", version))
    )
    window = f"[{int(window_seconds)}s]"
    queries = {
        "requests": f"sum(increase(http_requests_total{{{selector}}}{window}))",
        "errors": f'sum(increase(http_requests_total{{{selector},status=~"5.."}}{window}))',
        "p95": (
            f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{selector}}}{window})))"
        ),
    }
    own_client = client is None
    http = client or httpx.Client(timeout=10.0)
    try:
        values = {name: query_scalar(http, base_url, query) for name, query in queries.items()}
    finally:
        if own_client:
            http.close()
    p95_seconds = values["p95"]
    return Samples(
        requests=round(values["requests"] or 0.0),
        errors=round(values["errors"] or 0.0),
        latencies_ms=[p95_seconds * 1000] if p95_seconds is not None else [],
    )


def query_scalar(client: httpx.Client, base_url: str, query: str) -> float | None:
    """The single value of an instant query; None when the result is empty or NaN (no data in the window)."""
    url = base_url.rstrip("/") + "/api/v1/query"
    try:
        response = client.get(url, params={"query": query})
    except httpx.HTTPError as error:
        raise MetricsError(f"Prometheus at {base_url} could not be reached: {error}") from error
    try:
        body = response.json()
    except (ValueError, RecursionError) as error:  # RecursionError: nesting deeper than the parser can follow
        raise MetricsError(
            f"Prometheus answered HTTP {response.status_code} with something that is not JSON"
        ) from error
    if response.is_error or not isinstance(body, dict) or body.get("status") != "success":
        detail = body.get("error", "no error given") if isinstance(body, dict) else "unexpected answer"
        raise MetricsError(f"Prometheus refused the query {query!r} (HTTP {response.status_code}): {detail}")
    try:
        result = body["data"]["result"]
        if body["data"]["resultType"] != "vector" or len(result) > 1:
            raise ValueError("expected at most one sample of an instant vector")
        value = float(result[0]["value"][1]) if result else math.nan
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise MetricsError(f"Prometheus's answer to {query!r} has an unexpected shape: {error}") from error
    return value if math.isfinite(value) else None
