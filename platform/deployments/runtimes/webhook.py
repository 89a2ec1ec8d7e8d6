"""A runtime that hands each step to an external CD system (GitHub Actions, Argo CD, Jenkins) by signed webhook.

Every step is two halves. The first call POSTs a signed request naming the action and a step key, and records it
as sent in `ctx.state`, so a repeated call never asks twice. The CD system does the work at its own pace and
reports on the step by posting a signed callback (`deployments.webhooks.callback_receive`); until a final report
("succeeded" or "failed") is stored, the runtime raises `Waiting` and the engine asks again a few seconds later.

A failed report is final for its step key: a retried step (the engine retries rollbacks) is sent again under a
new key (`rollback#2`), since the CD system would otherwise answer the old key's failure forever. The same holds
for `observe`, whose every analysis window is a new measurement. The shared secret is read from the deploy target
at each call, never from the deployment's config, which is shown on pages and copied into audit events.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from django.conf import settings
from django.urls import reverse

from deployments import analysis, webhooks
from deployments.models import DeployTarget, WebhookCallback
from deployments.runtimes.base import Context, Observation, Runtime, Samples, StepFailed, Waiting

TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 5.0
MIN_WINDOW_SECONDS = 30  # Prometheus rates over shorter windows hold too few scrapes to mean anything
MAX_ANSWER = 500  # characters of a CD system's refusal kept in the failure reason


class CDSystemUnavailable(RuntimeError):
    """The CD system could not be reached or broke (5xx); the engine retries the step."""


def callback_url(deployment_id: int) -> str:
    """Where the CD system reports on this deployment's steps."""
    path = reverse("api:deployment-callback", args=[deployment_id])
    return f"{settings.PORTAL_URL}{path}"


def _target(service: str, environment: str) -> tuple[str, str]:
    """The deploy target's webhook URL and secret."""
    row = (
        DeployTarget.objects.filter(service__slug=service, environment__slug=environment)
        .values_list("webhook_url", "webhook_secret")
        .first()
    )
    if row is None or not row[1]:
        raise StepFailed(
            f"{service} has no webhook secret for {environment}; set one on its deploy target so Runway can sign."
        )
    return row


def _key(ctx: Context, base: str) -> str:
    """The step key of the current round for `base` (see the module docstring on rounds)."""
    rounds = int(ctx.state.get("rounds", {}).get(base, 0))
    return base if rounds == 0 else f"{base}#{rounds + 1}"


def _next_round(ctx: Context, base: str) -> None:
    rounds = ctx.state.setdefault("rounds", {})
    rounds[base] = int(rounds.get(base, 0)) + 1


def _samples(metrics: dict[str, Any]) -> Samples:
    """Samples from a callback's metrics, which `webhooks.report_parse` already checked."""
    return Samples(
        requests=int(metrics.get("requests", 0)),
        errors=int(metrics.get("errors", 0)),
        latencies_ms=[float(value) for value in metrics.get("latencies_ms", [])],
        probes=int(metrics.get("probes", 0)),
        probes_ok=int(metrics.get("probes_ok", 0)),
    )


class WebhookRuntime(Runtime):
    name = "webhook"

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client

    def prepare(self, ctx: Context) -> None:
        self._step(ctx, "prepare", {})

    def scale(self, ctx: Context, *, replicas: int) -> None:
        self._step(ctx, "scale", {"replicas": replicas})

    def retire_old(self, ctx: Context, *, keep: int) -> None:
        self._step(ctx, "retire_old", {"keep": keep})

    def route(self, ctx: Context, *, share: int) -> None:
        self._step(ctx, "route", {"share": share})

    def finalize(self, ctx: Context) -> None:
        self._step(ctx, "finalize", {})

    def rollback(self, ctx: Context) -> None:
        self._step(ctx, "rollback", {})

    def observe(self, ctx: Context) -> Observation:
        window = max(int(ctx.config.get("bake_seconds") or 0), MIN_WINDOW_SECONDS)
        if settings.PROMETHEUS_URL:
            return self._observe_prometheus(ctx, window)
        base = ctx.step or "observe"
        callback = self._step(
            ctx,
            "observe",
            {"window_seconds": window, "canary_version": ctx.version, "baseline_version": ctx.previous_version},
        )
        # The report is used up: measuring again (after an inconclusive window) must ask for a new one.
        _next_round(ctx, base)
        metrics = callback.payload.get("metrics")
        if not isinstance(metrics, dict):
            return Observation(canary=Samples(), metric_error="the CD system reported no metrics")
        baseline = metrics.get("baseline")
        return Observation(
            canary=_samples(metrics), baseline=_samples(baseline) if isinstance(baseline, dict) else None
        )

    def stop_all(self, *, service: str, environment: str) -> None:
        url, secret = _target(service, environment)
        body = {"service": service, "environment": environment, "action": "stop", "step": "stop", "params": {}}
        # Decommissioning waits for nobody: the CD system is told, and its report (if any) is only kept.
        self._post(url, secret, body, idempotency_key=f"stop:{service}:{environment}", action="stop")

    def _observe_prometheus(self, ctx: Context, window: int) -> Observation:
        def query(version: str) -> Samples:
            return analysis.query_prometheus(
                settings.PROMETHEUS_URL,
                service=ctx.service,
                environment=ctx.environment,
                version=version,
                window_seconds=window,
                client=self._client,
            )

        try:
            canary = query(ctx.version)
            baseline = query(ctx.previous_version) if ctx.previous_version else None
        except analysis.MetricsError as error:
            return Observation(canary=Samples(), metric_error=str(error))
        return Observation(canary=canary, baseline=baseline)

    def _step(self, ctx: Context, action: str, params: dict[str, Any]) -> WebhookCallback:
        """Ask the CD system for `action` once, then return its success report or raise until there is one."""
        base = ctx.step or action
        key = _key(ctx, base)
        sent = ctx.state.setdefault("sent", {})
        if key not in sent:
            url, secret = _target(ctx.service, ctx.environment)
            url = str(ctx.config.get("webhook_url") or url)
            body = {
                "deployment": ctx.deployment_id,
                "service": ctx.service,
                "environment": ctx.environment,
                "version": ctx.version,
                "commit_sha": ctx.commit_sha,
                "previous_version": ctx.previous_version,
                "previous_commit_sha": ctx.previous_commit_sha,
                "action": action,
                "params": params,
                "step": key,
                "callback_url": callback_url(ctx.deployment_id),
            }
            self._post(url, secret, body, idempotency_key=f"{ctx.deployment_id}:{key}", action=action)
            sent[key] = int(time.time())
        reports = WebhookCallback.objects.filter(deployment_id=ctx.deployment_id, step=key)
        # A final report wins over a "running" one that arrived late (CD systems do not promise order).
        final = (
            reports.filter(status__in=[WebhookCallback.Status.SUCCEEDED, WebhookCallback.Status.FAILED])
            .order_by("-received_at", "-id")
            .first()
        )
        if final is None:
            ctx.state["waiting"] = key
            raise Waiting(f"waiting for the CD system to report {action}", seconds=POLL_SECONDS)
        ctx.state.pop("waiting", None)
        if final.status == WebhookCallback.Status.FAILED:
            _next_round(ctx, base)
            raise StepFailed(f"The CD system reported that {action} failed: {final.message or 'it gave no reason'}")
        return final

    def _post(self, url: str, secret: str, body: dict[str, Any], *, idempotency_key: str, action: str) -> None:
        if not url.startswith(("https://", "http://")):
            raise StepFailed(f"The deploy target's webhook URL {url!r} is not an http(s) URL.")
        content = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers = webhooks.signed_headers(secret, content, idempotency_key=idempotency_key)
        client = self._client or httpx.Client(timeout=TIMEOUT_SECONDS)
        try:
            response = client.post(url, content=content, headers=headers, timeout=TIMEOUT_SECONDS)
        except httpx.HTTPError as error:
            raise CDSystemUnavailable(f"the CD system at {url} could not be reached: {error}") from error
        finally:
            if self._client is None:
                client.close()
        answer = response.text.strip()[:MAX_ANSWER] or "no answer given"
        if response.status_code >= 500:
            raise CDSystemUnavailable(f"the CD system at {url} answered HTTP {response.status_code}: {answer}")
        if response.status_code >= 400:
            raise StepFailed(f"The CD system refused {action} (HTTP {response.status_code}): {answer}")
        if not response.is_success:
            # httpx does not follow redirects here on purpose: a signed request must not wander to another host.
            raise StepFailed(f"The CD system answered {action} with HTTP {response.status_code}; expected 2xx.")
