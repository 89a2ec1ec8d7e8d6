"""Canary analysis: verdicts on hand-made windows, the exposition parser and the Prometheus client (faked HTTP)."""

import json
import random
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from deployments.analysis import (
    Evidence,
    MetricsError,
    Thresholds,
    evaluate,
    parse_prometheus_requests,
    percent,
    query_prometheus,
)
from deployments.models import DeployTarget
from deployments.runtimes.base import Observation, Samples

LIMITS = Thresholds()


def normal(mean: float, sd: float, count: int = 40, *, seed: int) -> list[float]:
    """Latencies drawn from a seeded normal distribution, so every run sees the same numbers."""
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(count)]


def healthy(latencies: list[float] | None = None, **overrides: int) -> Samples:
    values = {"requests": 400, "errors": 2, "probes": 20, "probes_ok": 20} | overrides
    return Samples(latencies_ms=latencies if latencies is not None else normal(20, 2, seed=1), **values)


# Verdicts


def test_a_healthy_canary_beside_a_similar_baseline_passes() -> None:
    verdict = evaluate(Observation(canary=healthy(), baseline=healthy(normal(20, 2, seed=2))), LIMITS)

    assert verdict.result == "pass"
    assert verdict.reasons == ["the canary is within every limit"]
    assert verdict.figures["mann_whitney"]["p_value"] >= LIMITS.alpha


def test_an_error_rate_above_the_limit_fails() -> None:
    verdict = evaluate(Observation(canary=healthy(requests=100, errors=12)), LIMITS)

    assert verdict.result == "fail"
    assert verdict.reasons[0] == "canary error rate 12.0 % is above the 1.0 % limit"
    assert verdict.reasons[1].startswith("over this deployment's windows the canary failed 12 of 100 requests")
    assert verdict.figures["canary"]["error_rate"] == 0.12


def test_without_metrics_the_error_rate_comes_from_the_analysis_requests() -> None:
    """`requests` 0 means no metrics endpoint: `errors` are then failed analysis requests out of the latencies."""
    verdict = evaluate(Observation(canary=healthy(normal(20, 2, count=20, seed=1), requests=0, errors=5)), LIMITS)

    assert verdict.result == "fail"
    assert verdict.figures["canary"]["requests"] == 20
    assert verdict.figures["canary"]["error_rate"] == 0.25


def test_a_canary_refusing_every_connection_fails_rather_than_counting_as_no_traffic() -> None:
    verdict = evaluate(Observation(canary=Samples(errors=30, probes=10, probes_ok=0)), LIMITS)

    assert verdict.result == "fail"
    assert "canary error rate 100.0 % is above the 1.0 % limit" in verdict.reasons


def test_more_errors_than_counted_requests_caps_the_error_rate_at_one() -> None:
    """Two counters scraped at slightly different times can disagree; the comparison must still run."""
    verdict = evaluate(Observation(canary=healthy(requests=10, errors=12), baseline=healthy()), LIMITS)

    assert verdict.result == "fail"
    assert verdict.figures["canary"]["error_rate"] == 1.0
    assert verdict.figures["error_rate_test"]["p_value"] < LIMITS.alpha


def test_a_p95_latency_above_the_limit_fails() -> None:
    latencies = [100.0] * 90 + [900.0] * 10

    verdict = evaluate(Observation(canary=healthy(latencies)), LIMITS)

    assert verdict.result == "fail"
    assert verdict.reasons == ["canary p95 latency 900.0 ms is above the 500 ms limit"]
    assert verdict.figures["canary"]["p50_ms"] == 100.0


def test_failing_health_probes_fail() -> None:
    verdict = evaluate(Observation(canary=healthy(probes=20, probes_ok=17)), LIMITS)

    assert verdict.result == "fail"
    assert verdict.reasons == ["canary health probes succeeded 85.0 % of the time, below the 95.0 % minimum"]


def test_a_clearly_slower_canary_fails_the_mann_whitney_comparison() -> None:
    observation = Observation(canary=healthy(normal(60, 5, seed=3)), baseline=healthy(normal(20, 2, seed=4)))

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "fail"
    assert len(verdict.reasons) == 1
    assert verdict.reasons[0].startswith("the canary is slower than the baseline: median ")
    assert verdict.figures["mann_whitney"]["p_value"] < 1e-6
    assert verdict.figures["mann_whitney"]["u"] == 40 * 40  # every canary latency above every baseline one
    assert verdict.figures["mann_whitney"]["slowdown"] > 2.5


def test_a_canary_as_fast_as_the_baseline_passes() -> None:
    observation = Observation(canary=healthy(normal(20, 2, seed=5)), baseline=healthy(normal(20, 2, seed=6)))

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "pass"
    assert 0.8 < verdict.figures["mann_whitney"]["slowdown"] < 1.2


def test_a_significant_but_small_slowdown_passes() -> None:
    """Significance alone is not enough: 10 % slower is within the tolerated 1.2 ratio."""
    observation = Observation(
        canary=healthy(normal(22, 1, count=200, seed=7)), baseline=healthy(normal(20, 1, count=200, seed=8))
    )

    verdict = evaluate(observation, LIMITS)

    assert verdict.figures["mann_whitney"]["p_value"] < LIMITS.alpha
    assert verdict.result == "pass"


def test_a_canary_erring_far_more_than_the_baseline_fails_even_below_the_limit() -> None:
    observation = Observation(canary=healthy(requests=1000, errors=9), baseline=healthy(requests=1000, errors=0))

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "fail"
    assert verdict.reasons == [
        "canary error rate 0.9 % is significantly above the baseline's 0.0 % (Fisher exact test p = 0.0019 < 0.01)",
        "over this deployment's windows the canary failed 9 of 1000 requests (0.9 %), significantly more than the "
        "baseline's 0 of 1000 (Fisher exact test p = 0.0019 < 0.01)",
    ]


def test_a_single_extra_error_in_a_small_window_is_not_significant() -> None:
    observation = Observation(canary=healthy(requests=40, errors=1), baseline=healthy(requests=40, errors=0))

    verdict = evaluate(observation, Thresholds(max_error_rate=0.05))

    assert verdict.result == "pass"
    assert verdict.figures["error_rate_test"]["p_value"] >= LIMITS.alpha


def test_the_default_limits_fail_a_canary_erring_2_5_percent_beside_a_clean_baseline() -> None:
    """Flagger's examples ask for a 99 % success rate: one error in 40 requests is above the default limit."""
    observation = Observation(canary=healthy(requests=40, errors=1), baseline=healthy(requests=40, errors=0))

    verdict = evaluate(observation, Thresholds())

    assert verdict.result == "fail"
    assert verdict.reasons == ["canary error rate 2.5 % is above the 1.0 % limit"]


def test_deploy_targets_default_to_the_analysis_limits() -> None:
    """A target made without settings gets the same limits as an analysis without a config."""
    target = DeployTarget()
    config = {name: getattr(target, name) for name in ("max_error_rate", "max_p95_ms", "min_probe_success")}

    assert Thresholds.from_config(config) == Thresholds()
    assert Thresholds().max_error_rate == 0.01


def test_the_baseline_comparison_keeps_its_own_margin_whatever_the_absolute_limit() -> None:
    """A lenient absolute limit does not make the comparison with the baseline lenient too."""
    observation = Observation(canary=healthy(requests=1000, errors=40), baseline=healthy(requests=1000, errors=1))

    verdict = evaluate(observation, Thresholds(max_error_rate=0.5))

    assert verdict.result == "fail"
    assert verdict.reasons[0].startswith("canary error rate 4.0 % is significantly above the baseline's 0.1 %")


def test_percent_rounds_one_way_for_every_page() -> None:
    assert [percent(rate) for rate in (0.025, 0.0, 0.01, 0.12345, 1)] == [
        "2.5 %",
        "0.0 %",
        "1.0 %",
        "12.3 %",
        "100.0 %",
    ]


@pytest.mark.parametrize(
    "canary",
    [Samples(), Samples(requests=9, latencies_ms=[20.0] * 9, probes=5, probes_ok=5)],
    ids=["nothing", "under-min-requests"],
)
def test_a_canary_without_traffic_is_inconclusive(canary: Samples) -> None:
    verdict = evaluate(Observation(canary=canary, baseline=healthy()), LIMITS)

    assert verdict.result == "inconclusive"
    assert verdict.reasons == ["the canary got no traffic (fewer than 10 requests in the window)"]


def test_enough_metric_requests_count_as_traffic_without_latencies() -> None:
    verdict = evaluate(Observation(canary=Samples(requests=50, errors=0)), LIMITS)

    assert verdict.result == "pass"
    assert verdict.figures["canary"]["p95_ms"] is None


def test_a_metric_error_is_inconclusive_even_when_the_samples_look_healthy() -> None:
    observation = Observation(canary=healthy(), baseline=healthy(), metric_error="Prometheus timed out")

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "inconclusive"
    assert verdict.reasons == ["metrics could not be read: Prometheus timed out"]


def test_a_canary_that_fails_its_health_probes_fails_even_without_metrics() -> None:
    dead = Samples(requests=0, errors=0, latencies_ms=[], probes=3, probes_ok=0)
    observation = Observation(canary=dead, baseline=healthy(), metric_error="connection refused on :41234")

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "fail"
    assert verdict.reasons[0].startswith("canary health probes succeeded 0")
    assert "connection refused" in verdict.reasons[1]


def test_a_first_deployment_is_judged_on_its_own_limits() -> None:
    passed = evaluate(Observation(canary=healthy()), LIMITS)
    failed = evaluate(Observation(canary=healthy(normal(700, 20, seed=9))), LIMITS)

    assert passed.result == "pass"
    assert "no baseline to compare with (first deployment)" in passed.reasons
    assert passed.figures["baseline"] is None
    assert "mann_whitney" not in passed.figures
    assert failed.result == "fail"


def test_a_baseline_with_too_few_latencies_is_not_compared() -> None:
    observation = Observation(canary=healthy(), baseline=healthy(normal(80, 2, count=5, seed=10)))

    verdict = evaluate(observation, LIMITS)

    assert verdict.result == "pass"
    assert "mann_whitney" not in verdict.figures
    assert "too few latency samples to compare with the baseline" in verdict.reasons


def test_the_figures_are_complete_and_json_ready() -> None:
    observation = Observation(canary=healthy(normal(60, 5, seed=3)), baseline=healthy(normal(20, 2, seed=4)))

    document = json.loads(json.dumps(evaluate(observation, LIMITS).as_dict(), allow_nan=False))

    assert document["result"] == "fail"
    for name in ("canary", "baseline"):
        figures = document["figures"][name]
        assert set(figures) >= {"error_rate", "p50_ms", "p95_ms", "probe_success", "requests"}
        assert figures["requests"] == 400
        assert figures["probe_success"] == 1.0
        assert figures["error_rate"] == 0.005
    assert document["figures"]["canary"]["p95_ms"] > document["figures"]["canary"]["p50_ms"] > 50
    assert set(document["figures"]["mann_whitney"]) == {"u", "p_value", "slowdown"}
    assert isinstance(document["figures"]["error_rate_test"]["p_value"], float)


def test_thresholds_from_config_reads_the_limits_and_ignores_other_settings() -> None:
    thresholds = Thresholds.from_config({"max_error_rate": "0.1", "max_p95_ms": 250, "replicas": 3, "alpha": 0.5})

    assert thresholds == Thresholds(max_error_rate=0.1, max_p95_ms=250.0)
    assert Thresholds.from_config({}) == Thresholds()


# The exposition parser

EXPOSITION = """\
# HELP http_requests_total Requests answered, by method and status.
# TYPE http_requests_total counter
http_requests_total{method="GET",status="200"} 1027
http_requests_total{method="POST",status="201"} 3
http_requests_total{method="GET",status="404"} 12
http_requests_total{method="GET",status="500"} 4
http_requests_total{method="POST",status="503"} 2
# HELP http_requests_created Requests answered, by method and status.
# TYPE http_requests_created gauge
http_requests_created{method="GET",status="200"} 1.7e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
"""


def test_parse_prometheus_requests_counts_the_total_and_the_5xx() -> None:
    assert parse_prometheus_requests(EXPOSITION) == (1048, 6)


def test_parse_prometheus_requests_reads_what_prometheus_client_writes() -> None:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "Requests answered.", ["status"], registry=registry)
    requests.labels(status="200").inc(30)
    requests.labels(status="502").inc(5)

    assert parse_prometheus_requests(generate_latest(registry).decode()) == (35, 5)


def test_an_exposition_without_the_counter_counts_nothing() -> None:
    assert parse_prometheus_requests("process_cpu_seconds_total 12.5\n") == (0, 0)


@pytest.mark.parametrize("text", ["<html><body>502 Bad Gateway</body></html>", 'http_requests_total{status="500"} NaN'])
def test_parse_prometheus_requests_rejects_what_is_not_an_exposition(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus exposition"):
        parse_prometheus_requests(text)


# The Prometheus client, against a fake Prometheus HTTP API

SELECTOR = 'service="shop\\"} or vector(1) #",environment="prod\\\\",version="1.2.0"'
EXPECTED_QUERIES = [
    f"sum(increase(http_requests_total{{{SELECTOR}}}[300s]))",
    f'sum(increase(http_requests_total{{{SELECTOR},status=~"5.."}}[300s]))',
    f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{SELECTOR}}}[300s])))",
]


def vector(value: str | None) -> dict[str, object]:
    result = [] if value is None else [{"metric": {}, "value": [1_700_000_000.0, value]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def fake_prometheus(answers: list[httpx.Response], seen: list[httpx.Request]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    return httpx.Client(transport=httpx.MockTransport(handle))


def ask(client: httpx.Client) -> Samples:
    return query_prometheus(
        "http://prometheus:9090/",
        service='shop"} or vector(1) #',
        environment="prod\\",
        version="1.2.0",
        window_seconds=300,
        client=client,
    )


def test_query_prometheus_sends_escaped_queries_and_reads_the_answers() -> None:
    seen: list[httpx.Request] = []
    answers = [httpx.Response(200, json=vector(value)) for value in ("1200.4", "30", "0.25")]

    samples = ask(fake_prometheus(answers, seen))

    assert [request.url.params["query"] for request in seen] == EXPECTED_QUERIES
    assert {str(request.url.copy_with(query=None)) for request in seen} == {"http://prometheus:9090/api/v1/query"}
    assert samples == Samples(requests=1200, errors=30, latencies_ms=[250.0])


def test_query_prometheus_reads_empty_answers_as_no_traffic() -> None:
    answers = [httpx.Response(200, json=vector(None)), httpx.Response(200, json=vector(None))]
    answers.append(httpx.Response(200, json=vector("NaN")))

    samples = ask(fake_prometheus(answers, []))

    assert samples == Samples()
    assert evaluate(Observation(canary=samples), LIMITS).result == "inconclusive"


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"), "HTTP 502 with something that is not JSON"),
        # Nested past Python's recursion limit: json raises RecursionError, not ValueError.
        (httpx.Response(200, text="[" * 100_000), "HTTP 200 with something that is not JSON"),
        (
            httpx.Response(400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "refused the query .* \\(HTTP 400\\): parse error",
        ),
        (httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix"}}), "unexpected shape"),
        (httpx.Response(200, json=vector("many")), "unexpected shape"),
        (refused, "could not be reached: connection refused"),
    ],
    ids=["not-json", "too-deep", "status-error", "wrong-shape", "bad-value", "unreachable"],
)
def test_query_prometheus_raises_metrics_error_on_unusable_answers(
    answer: httpx.Response | Callable[[httpx.Request], httpx.Response], message: str
) -> None:
    handler = answer if callable(answer) else (lambda request: answer)
    client = httpx.Client(transport=httpx.MockTransport(handler))

    with pytest.raises(MetricsError, match=message):
        ask(client)


def test_query_prometheus_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="window must be positive"):
        query_prometheus("http://prometheus:9090", service="s", environment="e", version="v", window_seconds=0)


def test_errors_too_few_for_one_window_add_up_over_the_deployment() -> None:
    """A canary erring now and then: no window alone breaks a limit or differs significantly from the baseline, but
    5 errors in 800 requests are more than a 0.1 % background explains."""
    evidence = Evidence()
    results, reasons = [], []
    for errors in (2, 3, 4):  # the old release's two replicas get as many requests each as the canary's one
        observation = Observation(canary=healthy(requests=400, errors=errors), baseline=healthy(requests=800, errors=0))
        verdict = evaluate(observation, LIMITS, evidence)
        results.append(verdict.result)
        reasons.append(verdict.reasons)
        evidence = Evidence.from_dict(verdict.figures["evidence"])

    assert results == ["pass", "fail", "fail"]
    assert reasons[1] == [
        "over this deployment's windows the canary failed 5 of 800 requests (0.6 %), significantly more than the "
        "baseline's 0 of 1600 (Fisher exact test p = 0.0041 < 0.01)"
    ]
    assert evidence == Evidence(canary_requests=1200, canary_errors=9, baseline_requests=2400, baseline_errors=0)


def test_a_healthy_canary_with_a_few_more_background_errors_than_its_baseline_passes() -> None:
    """The demo's simulated releases fail 0 to 2 requests in 400: a canary with 5 in 1,200 against a baseline's 1 is
    not significantly worse than its baseline."""
    before = Evidence(canary_requests=800, canary_errors=3, baseline_requests=800, baseline_errors=1)
    observation = Observation(canary=healthy(requests=400, errors=2), baseline=healthy(requests=400, errors=0))

    verdict = evaluate(observation, LIMITS, before)

    assert verdict.result == "pass", verdict.reasons
    assert verdict.figures["error_evidence"]["p_value"] > LIMITS.alpha
    assert verdict.figures["error_evidence"]["allowed_rate"] == round(1 / 1200, 6)


def test_with_no_baseline_the_errors_are_weighed_against_a_background_allowance() -> None:
    """A first deployment: 4 failures in 1,200 requests (0.33 %) are within what a 0.25 % background explains; 12
    (1 %) are not."""
    background = evaluate(Observation(canary=healthy(requests=1200, errors=4)), LIMITS)
    one_percent = evaluate(Observation(canary=healthy(requests=1200, errors=12)), LIMITS)

    assert background.result == "pass", background.reasons
    assert one_percent.result == "fail"
    assert one_percent.reasons[-1] == (
        "over this deployment's windows the canary failed 12 of 1200 requests (1.0 %), more than a 0.25 % background "
        "explains with no baseline to compare (binomial test p = 6.9e-05 < 0.01)"
    )


def test_evidence_from_a_damaged_runtime_state_starts_from_nothing() -> None:
    assert Evidence.from_dict(None) == Evidence()
    assert Evidence.from_dict({"canary_requests": -5, "canary_errors": "x", "baseline_requests": 7}) == Evidence(
        baseline_requests=7
    )
