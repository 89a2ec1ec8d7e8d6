"""The webhook runtime against a real HTTP receiver standing in for an external CD system.

The receiver only records requests and answers them; the test thread plays the CD system's other half, reporting
on steps through `webhooks.callback_receive` (the receiver's thread cannot see the test's database transaction).
"""

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings

from deployments import tasks, webhooks
from deployments.models import TERMINAL_STATES, Deployment, Environment, State, WebhookCallback
from deployments.runtimes.base import Context
from deployments.runtimes.webhook import WebhookRuntime
from deployments.services import deployment_request
from tests.deployments.support import release_make, step, target_make

pytestmark = pytest.mark.django_db

SECRET = "a-shared-secret-for-tests"
HEALTHY = {"requests": 40, "errors": 0, "latencies_ms": [10.0 + i % 7 for i in range(40)], "probes": 2, "probes_ok": 2}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class CDSystem:
    """What the receiver saw, and how it answers: scripted (status, text) pairs first, then 202."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: deque[tuple[int, str]] = field(default_factory=deque)
    queries: list[str] = field(default_factory=list)  # Prometheus queries, when it plays Prometheus too

    @property
    def posts(self) -> list[Received]:
        return [request for request in self.requests if request.method == "POST"]


def _handler(cd: CDSystem) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                cd.requests.append(Received("POST", self.path, dict(self.headers.items()), body))
                status, text = cd.answers.popleft() if cd.answers else (202, '{"accepted": true}')
            self._reply(status, text)

        def do_GET(self) -> None:
            # Prometheus's instant query API: 2 errors and a p95 of 50 ms out of 40 requests, for any release.
            query = parse_qs(urlparse(self.path).query)["query"][0]
            with lock:
                cd.queries.append(query)
            value = "0.05" if "histogram_quantile" in query else "2" if 'status=~"5.."' in query else "40"
            result = [{"metric": {}, "value": [time.time(), value]}]
            self._reply(200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}))

        def _reply(self, status: int, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def cd() -> Iterator[CDSystem]:
    system = CDSystem()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(system))
    system.url = f"http://127.0.0.1:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for one, and every test stops its receiver.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield system
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def production() -> Environment:
    return Environment.objects.create(name="Production", slug="production", order=2, protected=True)


@pytest.fixture
def deployment(world, production, cd) -> Deployment:  # type: ignore[no-untyped-def]
    """A canary at 10 % then full, on the webhook runtime, requested and not yet started."""
    target_make(
        world.service,
        production,
        runtime="webhook",
        canary_steps=[10],
        webhook_url=f"{cd.url}/hooks/runway",
        webhook_secret=SECRET,
    )
    return deployment_request(
        service=world.service, environment=production, user=world.owner, release=release_make(world.service)
    )


def callback_body(step_key: str, status: str = "succeeded", **fields: Any) -> bytes:
    return json.dumps({"step": step_key, "status": status, "nonce": uuid.uuid4().hex, **fields}).encode()


def report(deployment_id: int, step_key: str, status: str = "succeeded", **fields: Any) -> WebhookCallback:
    """Post a properly signed report, as the CD system would."""
    body = callback_body(step_key, status, **fields)
    return webhooks.callback_receive(
        deployment_id=deployment_id, body=body, headers=webhooks.signed_headers(SECRET, body)
    )


def last_step(cd: CDSystem) -> str:
    return cd.posts[-1].json["step"]


def run_until_asked(deployment: Deployment, cd: CDSystem, *, limit: int = 10) -> Deployment:
    """Run steps until the CD system gets a new request (or the deployment ends)."""
    seen = len(cd.posts)
    for _ in range(limit):
        deployment = step(deployment)
        if len(cd.posts) > seen or deployment.state in TERMINAL_STATES:
            return deployment
    raise AssertionError(f"no request reached the CD system in {limit} steps ({deployment.state})")


def answer_everything(deployment: Deployment, cd: CDSystem, *, limit: int = 60) -> Deployment:
    """Play a healthy CD system: report success on every request once it arrives, metrics on `observe`."""
    answered = 0
    for _ in range(limit):
        deployment = step(deployment)
        if deployment.state in TERMINAL_STATES:
            return deployment
        for request in cd.posts[answered:]:
            metrics = HEALTHY if request.json["action"] == "observe" else None
            report(deployment.pk, request.json["step"], **({"metrics": metrics} if metrics else {}))
        answered = len(cd.posts)
    raise AssertionError(f"deployment stuck in {deployment.state}")


def test_a_canary_runs_each_step_through_the_cd_system(deployment, cd) -> None:
    deployment = answer_everything(deployment, cd)

    assert deployment.state == State.SUCCEEDED and deployment.traffic_share == 100
    sent = [(request.json["action"], request.json["step"]) for request in cd.posts]
    assert sent == [
        ("prepare", "prepare"), ("scale", "0:scale"), ("route", "1:shift"), ("observe", "2:analyse"),
        ("scale", "3:scale"), ("route", "4:shift"), ("scale", "scale"), ("route", "route"), ("finalize", "finalize"),
    ]  # fmt: skip
    for request in cd.posts:
        assert request.path == "/hooks/runway"
        webhooks.verify(SECRET, request.headers, request.body, now=time.time())  # raises when it does not verify
        assert request.headers["Idempotency-Key"] == f"{deployment.pk}:{request.json['step']}"
        assert request.json["deployment"] == deployment.pk and request.json["version"] == "1.0.0"
        assert request.json["callback_url"].endswith(f"/api/v1/deployments/{deployment.pk}/callback/")
        assert SECRET not in request.body.decode()
    assert [request.json["params"] for request in cd.posts[1:3]] == [{"replicas": 1}, {"share": 10}]
    assert SECRET not in json.dumps(deployment.config)
    figures = deployment.events.filter(message="Analysis figures").get()
    assert figures.data["verdict"] == "pass" and figures.data["figures"]["canary"]["requests"] == 40


def test_a_step_waits_for_the_report_and_asks_only_once(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    assert deployment.state == State.POLICY_CHECK and last_step(cd) == "prepare"
    assert deployment.events.filter(message="waiting for the CD system to report prepare").exists()

    deployment = step(deployment)
    report(deployment.pk, "prepare", "running", message="job 1234 started")
    deployment = step(deployment)
    assert deployment.state == State.POLICY_CHECK
    assert len(cd.posts) == 1  # polled three times, asked once

    report(deployment.pk, "prepare", message="image built")
    assert step(deployment).state == State.ROLLING_OUT


def test_a_report_wakes_the_waiting_step(deployment, cd, monkeypatch, django_capture_on_commit_callbacks) -> None:
    deployment = run_until_asked(deployment, cd)
    assert deployment.next_run_at is not None  # polling: the engine asks again in a few seconds
    rung: list[tuple[int, int]] = []
    monkeypatch.setattr(tasks.deployment_step, "delay", lambda *args: rung.append(args))

    with django_capture_on_commit_callbacks(execute=True):
        report(deployment.pk, "prepare")

    assert rung == [(deployment.pk, deployment.version)]
    assert Deployment.objects.get(pk=deployment.pk).next_run_at is None


def test_a_failed_report_fails_the_deployment_and_rolls_back_through_the_cd_system(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    report(deployment.pk, "prepare")
    deployment = run_until_asked(deployment, cd)
    assert last_step(cd) == "0:scale"

    report(deployment.pk, "0:scale", "failed", message="pods crash-looping: exit code 3")
    deployment = step(deployment)
    assert deployment.state == State.FAILED
    assert "pods crash-looping: exit code 3" in deployment.failure_reason

    deployment = run_until_asked(deployment, cd)
    assert deployment.state == State.ROLLING_BACK and cd.posts[-1].json["action"] == "rollback"
    report(deployment.pk, "rollback", message="previous release restored")
    deployment = step(deployment)
    assert deployment.state == State.ROLLED_BACK
    assert "finalize" not in [request.json["action"] for request in cd.posts]


def test_a_failed_rollback_is_asked_again_under_a_new_key(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    report(deployment.pk, "prepare")
    deployment = run_until_asked(deployment, cd)
    report(deployment.pk, "0:scale", "failed", message="pods crash-looping")
    deployment = run_until_asked(step(deployment), cd)
    assert deployment.state == State.ROLLING_BACK and last_step(cd) == "rollback"

    report(deployment.pk, "rollback", "failed", message="cluster busy")
    deployment = run_until_asked(deployment, cd)
    assert deployment.rollback_attempts == 1 and last_step(cd) == "rollback#2"
    assert cd.posts[-1].headers["Idempotency-Key"] == f"{deployment.pk}:rollback#2"

    report(deployment.pk, "rollback#2")
    assert step(deployment).state == State.ROLLED_BACK


def test_a_report_without_metrics_is_inconclusive_and_measured_again(deployment, cd) -> None:
    for expected in ("prepare", "0:scale", "1:shift"):
        deployment = run_until_asked(deployment, cd)
        assert last_step(cd) == expected
        report(deployment.pk, expected)
    deployment = run_until_asked(deployment, cd)
    assert deployment.state == State.ANALYSING and last_step(cd) == "2:analyse"

    report(deployment.pk, "2:analyse")  # succeeded, but says nothing about the release's health
    deployment = run_until_asked(deployment, cd)
    warning = deployment.events.filter(level="warning", message__startswith="Analysis inconclusive").get()
    assert "the CD system reported no metrics" in warning.message
    assert deployment.state == State.ANALYSING and last_step(cd) == "2:analyse#2"

    report(deployment.pk, "2:analyse#2", metrics={**HEALTHY, "errors": 20})
    deployment = step(deployment)
    assert deployment.state == State.FAILED and "canary error rate" in deployment.failure_reason


def test_a_refusal_from_the_cd_system_fails_the_step_with_its_answer(deployment, cd) -> None:
    cd.answers.append((422, '{"message": "workflow deploy.yml has no input named version"}'))
    deployment = run_until_asked(deployment, cd)
    # Refused at prepare, before anything rolled out: cancelled, with nothing to roll back.
    assert deployment.state == State.CANCELLED and "rollback" not in [r.json["action"] for r in cd.posts]
    assert "HTTP 422" in deployment.failure_reason
    assert "workflow deploy.yml has no input named version" in deployment.failure_reason


def test_a_broken_cd_system_is_retried_with_the_same_idempotency_key(deployment, cd) -> None:
    cd.answers.append((503, "down for maintenance"))
    deployment = run_until_asked(deployment, cd)
    assert deployment.state == State.POLICY_CHECK and deployment.attempts == 1
    note = deployment.events.filter(level="warning").last()
    assert "HTTP 503" in note.message and "trying again" in note.message
    assert "prepare" not in deployment.runtime_state.get("sent", {})

    deployment = run_until_asked(deployment, cd)
    assert [request.headers["Idempotency-Key"] for request in cd.posts] == [f"{deployment.pk}:prepare"] * 2
    assert "prepare" in deployment.runtime_state["sent"]


def test_an_unreachable_cd_system_is_a_retried_crash(world, production) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target_make(
        world.service, production, runtime="webhook", webhook_url=f"http://127.0.0.1:{port}/", webhook_secret=SECRET
    )
    deployment = deployment_request(
        service=world.service, environment=production, user=world.owner, release=release_make(world.service)
    )
    deployment = step(step(deployment))
    assert deployment.state == State.POLICY_CHECK
    assert "could not be reached" in deployment.events.filter(level="warning").last().message


def _signed(body: bytes, *, secret: str = SECRET, skew: float = 0) -> tuple[bytes, dict[str, str]]:
    return body, webhooks.signed_headers(secret, body, now=time.time() + skew)


def _tampered() -> tuple[bytes, dict[str, str]]:
    body, headers = _signed(callback_body("prepare"))
    return body.replace(b"succeeded", b"failed"), headers  # changed after signing


def _malformed() -> tuple[bytes, dict[str, str]]:
    body, headers = _signed(callback_body("prepare"))
    return body, {**headers, "X-Runway-Signature": "sha1=deadbeef"}


Refused = webhooks.CallbackRefused
# Each case: how to build (body, headers) for the deployment, the exception expected and words of its reason.
BAD_CALLBACKS: dict[str, tuple[Callable[[int], tuple[bytes, dict[str, str]]], type[Exception], str]] = {
    "unsigned": (lambda pk: (callback_body("prepare"), {}), Refused, "missing header X-Runway-Timestamp"),
    "forged": (lambda pk: _signed(callback_body("prepare"), secret="guessed"), Refused, "bad signature"),
    "tampered": (lambda pk: _tampered(), Refused, "bad signature"),
    "malformed signature": (lambda pk: _malformed(), Refused, "malformed X-Runway-Signature"),
    "stale": (lambda pk: _signed(callback_body("prepare"), skew=-301), Refused, "stale timestamp"),
    "from the future": (lambda pk: _signed(callback_body("prepare"), skew=400), Refused, "stale timestamp"),
    "for another deployment": (lambda pk: _signed(callback_body("prepare", deployment=pk + 1)), Refused, "not #"),
    "unknown status": (lambda pk: _signed(callback_body("prepare", "done")), ValidationError, "status must be one of"),
    "not JSON": (lambda pk: _signed(b"status=succeeded"), ValidationError, "The body is not JSON"),
    "short nonce": (lambda pk: _signed(callback_body("prepare", nonce="abc")), ValidationError, "nonce must be 8"),
}


@pytest.mark.parametrize("case", BAD_CALLBACKS)
def test_bad_callbacks_are_refused_and_change_nothing(deployment, cd, case) -> None:
    deployment = run_until_asked(deployment, cd)
    build, error, reason = BAD_CALLBACKS[case]
    body, headers = build(deployment.pk)

    with pytest.raises(error, match=reason) as refused:
        webhooks.callback_receive(deployment_id=deployment.pk, body=body, headers=headers)

    if error is ValidationError:  # a field error names the field to fix
        assert set(refused.value.message_dict) <= {"body", "status", "nonce"}
    assert not WebhookCallback.objects.exists()
    after = Deployment.objects.get(pk=deployment.pk)
    assert (after.version, after.state, after.next_run_at) == (
        deployment.version,
        State.POLICY_CHECK,
        deployment.next_run_at,
    )
    assert step(after).state == State.POLICY_CHECK  # still waiting: nothing was believed


def test_a_replayed_report_is_refused(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    body = callback_body("prepare", "running")
    webhooks.callback_receive(deployment_id=deployment.pk, body=body, headers=webhooks.signed_headers(SECRET, body))

    # Same nonce, freshly and correctly signed, now claiming success: a captured report must not count twice.
    replay = body.replace(b'"running"', b'"succeeded"')
    with pytest.raises(webhooks.CallbackRefused, match="replayed"):
        webhooks.callback_receive(
            deployment_id=deployment.pk, body=replay, headers=webhooks.signed_headers(SECRET, replay)
        )
    assert list(WebhookCallback.objects.values_list("status", flat=True)) == ["running"]
    assert step(deployment).state == State.POLICY_CHECK


def test_a_finished_deployment_takes_no_reports(deployment, cd) -> None:
    deployment = answer_everything(deployment, cd)
    rows = WebhookCallback.objects.count()
    with pytest.raises(webhooks.CallbackRefused, match="has finished"):
        report(deployment.pk, "finalize")
    assert WebhookCallback.objects.count() == rows


def test_a_late_running_report_does_not_hide_the_final_one(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    report(deployment.pk, "prepare")
    report(deployment.pk, "prepare", "running")  # delivered out of order
    assert step(deployment).state == State.ROLLING_OUT


def test_signatures_verify_whatever_the_header_case() -> None:
    body = b'{"step":"prepare"}'
    headers = webhooks.signed_headers(SECRET, body, now=1_700_000_000)
    assert headers["X-Runway-Signature"] == webhooks.sign(SECRET, 1_700_000_000, body)
    assert headers["X-Runway-Signature"].startswith("sha256=") and len(headers["X-Runway-Signature"]) == 71
    webhooks.verify(SECRET, {name.lower(): value for name, value in headers.items()}, body, now=1_700_000_100)
    with pytest.raises(webhooks.CallbackRefused, match="no webhook secret"):
        webhooks.verify("", headers, body, now=1_700_000_000)


def test_observe_reads_prometheus_when_it_is_configured(world, production, cd) -> None:
    target_make(world.service, production, runtime="webhook", webhook_url=cd.url, webhook_secret=SECRET)
    ctx = Context(
        deployment_id=1,
        service=world.service.slug,
        environment="production",
        version="1.1.0",
        commit_sha="a" * 40,
        repository="",
        previous_version="1.0.0",
        previous_commit_sha="b" * 40,
        config={"webhook_url": cd.url, "bake_seconds": 0},
        step="2:analyse",
    )
    with override_settings(PROMETHEUS_URL=cd.url):
        observation = WebhookRuntime().observe(ctx)
    assert observation.metric_error == ""
    assert (observation.canary.requests, observation.canary.errors) == (40, 2)
    assert observation.canary.latencies_ms == [50.0]
    assert observation.baseline is not None and observation.baseline.requests == 40
    assert any('version="1.1.0"' in query for query in cd.queries)
    assert any('version="1.0.0"' in query for query in cd.queries)
    assert cd.posts == []  # the CD system is not asked for metrics Prometheus has

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with override_settings(PROMETHEUS_URL=dead):
        broken = WebhookRuntime().observe(ctx)
    assert "could not be reached" in broken.metric_error


def test_stop_all_tells_the_cd_system_without_waiting(world, production, cd) -> None:
    target_make(world.service, production, runtime="webhook", webhook_url=f"{cd.url}/stop", webhook_secret=SECRET)
    WebhookRuntime().stop_all(service=world.service.slug, environment="production")
    (request,) = cd.posts
    webhooks.verify(SECRET, request.headers, request.body, now=time.time())
    assert request.json["action"] == "stop" and request.json["service"] == world.service.slug


def test_the_callback_endpoint_takes_signed_reports_over_http(deployment, cd, api_client) -> None:
    deployment = run_until_asked(deployment, cd)
    url = cd.posts[-1].json["callback_url"].removeprefix(settings.PORTAL_URL)
    assert url == f"/api/v1/deployments/{deployment.pk}/callback/"

    def post(body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        http_headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
        return api_client.post(url, data=body, content_type="application/json", **http_headers)

    forged = callback_body("prepare")
    refused = post(forged, webhooks.signed_headers("guessed", forged))
    assert refused.status_code == 403 and "bad signature" in refused.json()["detail"]
    malformed = b'{"step": "prepare", "status": "done", "nonce": "0123456789abcdef"}'
    invalid = post(malformed, webhooks.signed_headers(SECRET, malformed))
    assert invalid.status_code == 400 and "status" in invalid.json()
    assert not WebhookCallback.objects.exists()

    body = callback_body(last_step(cd))
    accepted = post(body, webhooks.signed_headers(SECRET, body))
    assert accepted.status_code == 202, accepted.content
    assert WebhookCallback.objects.get().status == "succeeded"
    assert post(body, webhooks.signed_headers(SECRET, body)).status_code == 403  # the same report again


def test_waiting_is_on_the_timeline_once_not_on_every_poll(deployment, cd) -> None:
    deployment = run_until_asked(deployment, cd)
    for _ in range(3):
        deployment = step(deployment)
    assert deployment.state == State.POLICY_CHECK
    waits = [event.message for event in deployment.events.all() if event.message.startswith("waiting for")]
    assert len(waits) == 1, waits
