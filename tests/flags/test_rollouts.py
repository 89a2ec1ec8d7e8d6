"""Progressive rollouts of a flag: stepped by a real Celery worker, analysed from the service's own /metrics over
real HTTP with the deployments' canary analysis, rolled back on a failing analysis; pause, resume, promote and
abort; the pages and who may use them."""

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from deployments import runtimes
from deployments.models import Environment
from flags import rollouts, services
from flags.models import Flag, FlagRollout, FlagSetting
from portal.celery import app
from portal.errors import Conflict
from tests.deployments.support import ScriptedRuntime, target_make

BOUNDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    """A service's Prometheus /metrics, served over HTTP: cumulative request counts per variant of a flag, and (once
    `timed` is called) the request-duration histogram per variant."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {("off", "200"): 1000, ("off", "500"): 1}
        self.durations: dict[str, list[int]] = {}  # variant -> cumulative count per bound of BOUNDS, then +Inf
        self.lock = threading.Lock()

    def add(self, variant: str, status: str, n: int) -> None:
        with self.lock:
            self.counts[(variant, status)] = self.counts.get((variant, status), 0) + n

    def timed(self, variant: str, seconds: float, n: int) -> None:
        """n requests of `variant` answered 200 in `seconds` each."""
        self.add(variant, "200", n)
        with self.lock:
            counts = self.durations.setdefault(variant, [0] * (len(BOUNDS) + 1))
            for index, bound in enumerate((*BOUNDS, float("inf"))):
                counts[index] += n if seconds <= bound else 0

    def text(self) -> str:
        with self.lock:
            lines = ["# TYPE http_requests_total counter"]
            for (variant, status), n in sorted(self.counts.items()):
                lines.append(f'http_requests_total{{flag="new-checkout",variant="{variant}",status="{status}"}} {n}')
            lines.append("# TYPE http_request_duration_seconds histogram")
            for variant, counts in sorted(self.durations.items()):
                for bound, n in zip((*(str(b) for b in BOUNDS), "+Inf"), counts, strict=True):
                    labels = f'flag="new-checkout",variant="{variant}",le="{bound}"'
                    lines.append(f"http_request_duration_seconds_bucket{{{labels}}} {n}")
        return "\n".join(lines) + "\n"


@pytest.fixture
def metrics() -> Iterator[tuple[Metrics, str]]:
    served = Metrics()
    with _served(served) as url:
        yield served, url


@contextlib.contextmanager
def _served(served: Metrics) -> Iterator[str]:
    """`served`'s exposition on a real HTTP server of its own; yields its /metrics URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = served.text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def _flag(world) -> tuple[Flag, Environment]:  # type: ignore[no-untyped-def]
    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    flag = services.flag_create(actor=None, service=world.service, key="new-checkout", default_variant="off")
    return flag, staging


def _start(world, flag: Flag, staging: Environment, url: str, *, steps: list[float]) -> FlagRollout:  # type: ignore[no-untyped-def]
    """The owner starts releasing "on", analysed every 5 s from `url`."""
    return rollouts.rollout_start(
        actor=world.owner,
        flag=flag,
        environment=staging,
        variant="on",
        steps=steps,
        interval_seconds=5,
        metrics_url=url,
    )


def _step(rollout: FlagRollout) -> FlagRollout:
    """Run the rollout's next step here, its wait over (the tests that call this patch the task's queueing)."""
    FlagRollout.objects.filter(pk=rollout.pk).update(next_run_at=None)
    current = FlagRollout.objects.get(pk=rollout.pk)
    rollouts.run_step(current.pk, current.version)
    return FlagRollout.objects.get(pk=rollout.pk)


def _wait_for(predicate, seconds: float = 40.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.django_db(transaction=True)
def test_a_failing_analysis_rolls_the_flag_back_on_a_real_worker(world, metrics) -> None:
    served, url = metrics
    flag, staging = _flag(world)
    rollout = _start(world, flag, staging, url, steps=[10, 50, 100])
    setting = lambda: FlagSetting.objects.get(flag=flag, environment=staging)  # noqa: E731
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        _wait_for(lambda: FlagRollout.objects.get(pk=rollout.pk).step == 0)  # the worker took the first step
        assert setting().enabled and setting().rollout == {"on": 10.0, "off": 90.0}
        # The new variant errs: 20 % of its requests are 5xx, against 0.1 % for everyone else.
        served.add("on", "200", 160)
        served.add("on", "500", 40)
        served.add("off", "200", 1440)
        _wait_for(lambda: FlagRollout.objects.get(pk=rollout.pk).state != FlagRollout.State.RUNNING)
    rollout.refresh_from_db()
    assert rollout.state == FlagRollout.State.ROLLED_BACK and rollout.step == 0
    assert "canary error rate 20.0 % is above the 1.0 % limit" in rollout.message
    assert not setting().enabled and setting().rollout == {}  # back to how it was: off
    timeline = [event.message for event in rollout.events.all()]
    assert timeline[0].startswith("Started: on to 10 % → 50 % → 100 %")
    assert timeline[1].startswith("Step 1 of 3: 10 % get on")
    assert timeline[2].startswith("Analysis at 10 % (variants) failed: canary error rate 20.0 %")
    assert timeline[2].endswith("Measured: canary 200 requests, 20.0 % errors; baseline 1,440 requests, 0.0 % errors.")
    assert timeline[3].startswith("Rolled back (off): ")
    failed = rollout.events.get(level="error", message__startswith="Analysis")
    assert failed.data["canary"]["requests"] == 200 and failed.data["baseline"]["errors"] == 0
    assert list(
        AuditEvent.objects.filter(action__startswith="flag_rollout.").order_by("id").values_list("action", flat=True)
    ) == [
        "flag_rollout.started",
        "flag_rollout.rolled_back",
    ]
    versions = [version.note for version in flag.versions.order_by("number")]
    assert versions[-1].startswith(f"progressive rollout #{rollout.pk} rolled back: canary error rate")


@pytest.mark.django_db
def test_a_healthy_rollout_steps_to_100_percent(world, metrics, django_capture_on_commit_callbacks, mocker) -> None:
    served, url = metrics
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")  # the steps are run here, one by one
    rollout = rollouts.rollout_start(
        actor=world.owner,
        flag=flag,
        environment=staging,
        variant="on",
        steps=[50, 100],
        interval_seconds=5,
        metrics_url=url,
    )

    assert _step(rollout).percent == 50
    served.add("on", "200", 500)
    served.add("off", "200", 500)
    assert _step(rollout).percent == 100
    assert FlagSetting.objects.get(flag=flag, environment=staging).rollout == {"on": 100.0, "off": 0.0}
    served.add("on", "200", 1000)
    done = _step(rollout)
    assert done.state == FlagRollout.State.SUCCEEDED and done.message == "Released: on serves everyone."
    # A stale delivery of an old version does nothing.
    rollouts.run_step(done.pk, 1)
    assert FlagRollout.objects.get(pk=done.pk).events.count() == done.events.count()


@pytest.mark.django_db
def test_a_slower_variant_is_rolled_back_from_the_services_histogram(world, metrics, mocker) -> None:
    """Errors alone would pass it: the variant answers every request, but ten times slower than the others."""
    served, url = metrics
    served.timed("off", 0.02, 100)  # the histogram's first reading, before the rollout starts
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")
    rollout = _start(world, flag, staging, url, steps=[10, 50, 100])

    assert _step(rollout).percent == 10
    served.timed("on", 0.02, 200)  # as fast as everyone else: it passes
    served.timed("off", 0.02, 1800)
    assert _step(rollout).percent == 50
    passed = rollout.events.get(message__startswith="Analysis at 10 %")
    assert passed.data["canary"]["latency_samples"] == 200 and passed.data["baseline"]["latency_samples"] == 1800
    assert passed.message.endswith(
        "Measured: canary 200 requests, 0.0 % errors, p95 24 ms; baseline 1,800 requests, 0.0 % errors, p95 24 ms."
    )
    served.timed("on", 0.3, 1000)  # now ten times slower
    served.timed("off", 0.02, 1000)
    done = _step(rollout)
    assert done.state == FlagRollout.State.ROLLED_BACK
    assert "the canary is slower than the baseline: median 375.0 ms against 17.5 ms" in done.message
    assert not FlagSetting.objects.get(flag=flag, environment=staging).enabled


def test_without_variant_labels_the_window_is_compared_with_before_the_rollout_latencies_included() -> None:
    fast, slow = [["0.05", 100], ["+Inf", 100]], [["0.05", 100], ["+Inf", 150]]
    before = {"total": [100, 0], "variants": {}, "buckets": {"total": fast, "variants": {}}}
    now = {"total": [150, 0], "variants": {}, "buckets": {"total": slow, "variants": {}}}
    rollout = FlagRollout(variant="on", counters=before, started_counters=before)
    observation, comparison = rollouts.observe(rollout, now)
    assert comparison == "before/after"
    assert observation.canary.requests == 50 and observation.canary.latencies_ms == [50.0] * 50  # past the last bound
    assert observation.baseline is not None and len(observation.baseline.latencies_ms) == 100
    # A reading kept from before Runway read histograms has no buckets: that window compares errors only.
    old = FlagRollout(variant="on", counters={"total": [100, 0], "variants": {}}, started_counters=before)
    assert rollouts.observe(old, now)[0].canary.latencies_ms == []


def test_the_baselines_latencies_stay_bounded_however_many_variants_the_service_labels() -> None:
    """Fifty other variants of 1,000 requests each are one histogram of 50,000, drawn as 20,000 latencies."""
    names = ["on", *(f"v{index}" for index in range(50))]

    def reading(count: int) -> dict:  # type: ignore[type-arg]
        variants = {name: [count, 0] for name in names}
        buckets = {name: [["0.1", count], ["+Inf", count]] for name in names}
        return {"total": [count * 51, 0], "variants": variants, "buckets": {"total": [], "variants": buckets}}

    rollout = FlagRollout(variant="on", counters=reading(0), started_counters=reading(0))
    observation, comparison = rollouts.observe(rollout, reading(1000))
    assert comparison == "variants" and observation.baseline is not None
    assert observation.baseline.requests == 50_000 and len(observation.baseline.latencies_ms) == 20_000
    assert len(observation.canary.latencies_ms) == 1000


@pytest.mark.django_db
def test_silence_is_never_health(world, mocker) -> None:
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")
    rollout = rollouts.rollout_start(
        actor=world.owner,
        flag=flag,
        environment=staging,
        variant="on",
        interval_seconds=5,
        metrics_url="http://127.0.0.1:9/metrics",  # nothing listens there
    )
    for _ in range(1 + rollouts.MAX_INCONCLUSIVE):  # the first step needs no analysis, then three silent windows
        FlagRollout.objects.filter(pk=rollout.pk).update(next_run_at=None)
        current = FlagRollout.objects.get(pk=rollout.pk)
        rollouts.run_step(current.pk, current.version)
    rollout.refresh_from_db()
    assert rollout.state == FlagRollout.State.ROLLED_BACK
    assert "no usable analysis in 3 windows" in rollout.message and "metrics could not be read" in rollout.message
    levels = list(rollout.events.values_list("level", flat=True))
    assert levels == ["info", "warning", "info", "warning", "warning", "error", "error"]
    assert not FlagSetting.objects.get(flag=flag, environment=staging).enabled  # off again, as before


@pytest.mark.django_db
def test_pause_resume_promote_abort(world, metrics, mocker) -> None:
    served, url = metrics
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")
    kwargs = {"actor": world.owner, "flag": flag, "environment": staging, "variant": "on", "metrics_url": url}
    first = rollouts.rollout_start(**kwargs)
    with pytest.raises(Exception, match="already has a rollout under way"):
        rollouts.rollout_start(**kwargs)
    paused = rollouts.rollout_pause(rollout_id=first.pk, actor=world.owner)
    rollouts.run_step(paused.pk, paused.version)  # a paused rollout is not stepped
    assert FlagRollout.objects.get(pk=first.pk).step == -1
    with pytest.raises(Conflict):
        rollouts.rollout_pause(rollout_id=first.pk, actor=world.owner)
    rollouts.rollout_resume(rollout_id=first.pk, actor=world.owner)
    promoted = rollouts.rollout_promote(rollout_id=first.pk, actor=world.owner)
    assert promoted.state == FlagRollout.State.SUCCEEDED
    assert FlagSetting.objects.get(flag=flag, environment=staging).rollout == {"on": 100.0, "off": 0.0}

    services.setting_update(actor=None, flag=flag, environment=staging, rollout={"on": 5, "off": 95})
    second = rollouts.rollout_start(**kwargs)
    aborted = rollouts.rollout_abort(rollout_id=second.pk, actor=world.owner)
    assert aborted.state == FlagRollout.State.ABORTED
    assert FlagSetting.objects.get(flag=flag, environment=staging).rollout == {"on": 5.0, "off": 95.0}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": [10, 5, 100]}, "steps"),
        ({"steps": [10, 50]}, "steps"),
        ({"variant": "maybe"}, "variant"),
        ({"interval_seconds": 1}, "interval_seconds"),
        ({"metrics_url": "not a url"}, "metrics_url"),
    ],
)
def test_a_bad_rollout_is_a_field_error(world, body, field) -> None:
    from django.core.exceptions import ValidationError

    flag, staging = _flag(world)
    kwargs = {"variant": "on", "metrics_url": "http://127.0.0.1:9/metrics"} | body
    with pytest.raises(ValidationError) as raised:
        rollouts.rollout_start(actor=world.owner, flag=flag, environment=staging, **kwargs)
    assert field in raised.value.message_dict
    assert not FlagRollout.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "expected"), [("owner", 302), ("staff", 302), ("outsider", 403), ("anonymous", 302)])
def test_the_pages_start_and_control_rollouts_for_the_owner_team(client, world, role, expected, mocker) -> None:
    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    if role != "anonymous":
        client.force_login(getattr(world, role))
    start = reverse("flags:rollout-start", args=[world.service.slug, flag.key])
    body = {
        "rollout-environment": "staging",
        "rollout-variant": "on",
        "rollout-steps": "1, 10, 100",
        "rollout-interval_seconds": "60",
        "rollout-metrics_url": "http://127.0.0.1:9/metrics",
    }
    response = client.post(start, body)
    assert response.status_code == expected
    started = FlagRollout.objects.first()
    assert (started is not None) is (role in ("owner", "staff"))
    if role == "anonymous":
        assert response["Location"].startswith("/accounts/login/")
    if started is None:
        return
    assert started.steps == [1.0, 10.0, 100.0]
    page = client.get(reverse("flags:flag-detail", args=[world.service.slug, flag.key])).content.decode()
    assert "Progressive rollouts" in page and reverse("flags:rollout-control", args=[started.pk, "pause"]) in page
    fragment = client.get(reverse("flags:rollout", args=[started.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 3s"' in fragment and "Started: on to 1 % → 10 % → 100 %" in fragment
    response = client.post(reverse("flags:rollout-control", args=[started.pk, "abort"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Aborted" in response.content.decode()
    bad = client.post(start, body | {"rollout-steps": "1, 10"})
    assert bad.status_code == 400 and "The last step is 100 %" in bad.content.decode()


@pytest.mark.django_db
def test_an_outsider_reads_but_cannot_control_a_rollout(client, world, mocker) -> None:
    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    started = rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", metrics_url="http://127.0.0.1:9/metrics"
    )
    client.force_login(world.outsider)
    fragment = client.get(reverse("flags:rollout", args=[started.pk])).content.decode()
    assert "Started" in fragment and "Abort" not in fragment
    assert client.post(reverse("flags:rollout-control", args=[started.pk, "abort"])).status_code == 403
    assert FlagRollout.objects.get(pk=started.pk).state == FlagRollout.State.RUNNING


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "expected"), [("owner", 201), ("staff", 201), ("outsider", 403), ("anonymous", 401)])
def test_the_api_starts_reads_and_controls_rollouts_for_the_owner_team(world, role, expected, mocker) -> None:
    from rest_framework.test import APIClient

    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    api = APIClient()
    if role != "anonymous":
        api.force_authenticate(getattr(world, role))
    body = {"environment": "staging", "variant": "on", "steps": [5, 100], "metrics_url": "http://127.0.0.1:9/metrics"}
    response = api.post(f"/api/v1/flags/{flag.pk}/rollouts/", body, format="json")
    assert response.status_code == expected, response.content
    if expected != 201:
        assert not FlagRollout.objects.exists()
        started = rollouts.rollout_start(
            actor=world.owner, flag=flag, environment=staging, variant="on", metrics_url=body["metrics_url"]
        )
    else:
        assert response.json()["steps"] == [5.0, 100.0] and response.json()["state"] == "running"
        assert response.json()["events"][0]["message"].startswith("Started: on to 5 % → 100 %")
        started = FlagRollout.objects.get()
        again = api.post(f"/api/v1/flags/{flag.pk}/rollouts/", body, format="json")
        assert again.status_code == 409
        bad = api.post(f"/api/v1/flags/{flag.pk}/rollouts/", body | {"environment": "moon"}, format="json")
        assert bad.status_code == 400 and "environment" in bad.json()
    listed = api.get("/api/v1/flag-rollouts/", {"state": "running"})
    assert listed.status_code == (401 if role == "anonymous" else 200)
    for control in ("pause", "resume", "promote"):
        answer = api.post(f"/api/v1/flag-rollouts/{started.pk}/{control}/")
        assert answer.status_code == {201: 200}.get(expected, expected), (control, answer.content)
    final = FlagRollout.objects.get(pk=started.pk).state
    assert final == (FlagRollout.State.SUCCEEDED if expected == 201 else FlagRollout.State.RUNNING)
    if expected == 201:
        assert api.post(f"/api/v1/flag-rollouts/{started.pk}/abort/").status_code == 409  # it has ended


@pytest.mark.django_db
def test_the_polled_timeline_reads_in_constant_queries(client, world, mocker, django_assert_max_num_queries) -> None:
    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    started = rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", metrics_url="http://127.0.0.1:9/metrics"
    )
    for _ in range(5):
        rollouts.rollout_pause(rollout_id=started.pk, actor=world.owner)
        rollouts.rollout_resume(rollout_id=started.pk, actor=world.owner)
    client.force_login(world.outsider)
    with django_assert_max_num_queries(8):
        page = client.get(reverse("flags:rollout", args=[started.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert page.count("— olivia") == 11


@pytest.mark.django_db
def test_the_kill_switch_stops_a_rollout_so_no_step_turns_the_flag_on_again(world, metrics, mocker) -> None:
    served, url = metrics
    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    started = rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", interval_seconds=5, metrics_url=url
    )
    rollouts.run_step(started.pk, started.version)  # the first step: 1 % on
    assert FlagSetting.objects.get(flag=flag, environment=staging).enabled
    services.kill(actor=world.owner, flag=flag)
    stopped = FlagRollout.objects.get(pk=started.pk)
    assert stopped.state == FlagRollout.State.ABORTED and stopped.message.startswith("Stopped by the kill switch")
    served.add("on", "200", 500)
    rollouts.run_step(stopped.pk, stopped.version)  # a step already queued does nothing
    assert not FlagSetting.objects.get(flag=flag, environment=staging).enabled
    assert AuditEvent.objects.filter(action="flag_rollout.aborted").count() == 1


@pytest.mark.django_db
def test_turning_the_flag_off_by_hand_stops_its_rollout_there(world, metrics, mocker) -> None:
    served, url = metrics
    mocker.patch("flags.tasks.rollout_step.apply_async")
    flag, staging = _flag(world)
    started = rollouts.rollout_start(
        actor=world.owner, flag=flag, environment=staging, variant="on", interval_seconds=5, metrics_url=url
    )
    rollouts.run_step(started.pk, started.version)
    services.setting_change(actor=world.owner, flag=flag, environment=staging, enabled=False)
    stopped = FlagRollout.objects.get(pk=started.pk)
    assert stopped.state == FlagRollout.State.ABORTED
    assert stopped.message == "Stopped: olivia changed the setting by hand."
    served.add("on", "200", 500)
    rollouts.run_step(stopped.pk, stopped.version)
    assert not FlagSetting.objects.get(flag=flag, environment=staging).enabled  # off, as she set it


class Replicas(ScriptedRuntime):
    """A runtime that says where the service's replicas run: each a real HTTP server with its own counters."""

    lists_replicas = True

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    def endpoints(self, service: str, environment: str) -> list[dict]:
        return list(self.rows)


@pytest.mark.django_db
def test_without_a_url_every_deployed_replica_is_read_each_from_its_own_counters(world, mocker) -> None:
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")
    with pytest.raises(ValidationError) as refused:
        _start(world, flag, staging, "", steps=[50, 100])
    assert refused.value.message_dict["metrics_url"] == [
        "Payments API has no deploy target in Staging: add one, or give the rollout the URL of its metrics."
    ]

    target_make(world.service, staging, runtime="scripted")
    a, b, c = Metrics(), Metrics(), Metrics()
    runtime = Replicas()
    runtimes.REGISTRY["scripted"] = lambda: runtime
    with _served(a) as url_a, _served(b) as url_b, _served(c) as url_c:
        try:
            row = {"version": "1.0.0", "state": "RUNNING"}
            runtime.rows = [row | {"program": "a", "metrics_url": url_a}, row | {"program": "b", "metrics_url": url_b}]
            rollout = _start(world, flag, staging, "", steps=[50, 100])
            assert rollout.events.get().message.endswith("analysing every replica of payments-api in staging.")
            assert _step(rollout).percent == 50  # both replicas' counters are the window's start

            a.add("on", "200", 300)
            a.add("off", "200", 300)
            b.counts = {("on", "200"): 100, ("off", "200"): 10}  # b restarted: all it counts is since the last step
            c.add("on", "200", 50)  # c started since: the same
            c.add("off", "200", 49)  # with the 1,001 every Metrics starts with: 1,050 off
            runtime.rows.append(row | {"program": "c", "metrics_url": url_c})
            assert _step(rollout).percent == 100
            passed = rollout.events.get(message__startswith="Analysis at 50 %")
            assert passed.data["canary"]["requests"] == 300 + 100 + 50
            assert passed.data["baseline"]["requests"] == 300 + 10 + 1050

            a.add("on", "500", 200)  # the variant fails on one replica, the others are fine
            a.add("on", "200", 100)
            b.add("on", "200", 100)
            b.add("off", "200", 300)
            runtime.rows = [r for r in runtime.rows if r["program"] != "c"]  # c went away: in neither reading
            done = _step(rollout)
            assert done.state == FlagRollout.State.ROLLED_BACK and "canary error rate" in done.message
            failed = done.events.get(message__startswith="Analysis at 100 %")
            assert (failed.data["canary"]["requests"], failed.data["canary"]["errors"]) == (400, 200)
        finally:
            runtimes.REGISTRY.pop("scripted", None)


@pytest.mark.django_db
def test_a_replica_that_cannot_be_read_makes_the_window_inconclusive(world, metrics, mocker) -> None:
    served, url = metrics
    flag, staging = _flag(world)
    mocker.patch("flags.tasks.rollout_step.apply_async")
    target_make(world.service, staging, runtime="scripted")
    runtime = Replicas()
    runtimes.REGISTRY["scripted"] = lambda: runtime
    try:
        row = {"version": "1.0.0", "state": "RUNNING"}
        runtime.rows = [row | {"program": "a", "metrics_url": url}]
        rollout = _start(world, flag, staging, "", steps=[50, 100])
        assert _step(rollout).percent == 50
        served.add("on", "200", 500)
        runtime.rows.append(row | {"program": "b", "metrics_url": "http://127.0.0.1:9/metrics"})  # nothing listens
        waiting = _step(rollout)
        assert waiting.percent == 50 and waiting.inconclusive == 1
        assert "metrics could not be read: replica b: ConnectError" in waiting.events.last().message
    finally:
        runtimes.REGISTRY.pop("scripted", None)
