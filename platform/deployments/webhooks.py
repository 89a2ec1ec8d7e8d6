"""Signed webhooks between Runway and an external CD system (GitHub Actions, Argo CD, Jenkins...).

Both directions carry the same three headers: `X-Runway-Timestamp` (unix seconds), `X-Runway-Signature`
(`sha256=` and the hex HMAC-SHA256 of `f"{timestamp}.{body}"` keyed with the deploy target's shared secret) and,
on requests Runway sends, `Idempotency-Key` (`<deployment id>:<step key>`), so a CD system that sees a request
twice (Runway retries a step whose worker died) can run the job once.

The timestamp inside the signature bounds how long a captured request stays usable (`MAX_SKEW_SECONDS`); the
callback's nonce, unique in the database, makes each report count once within that window. A callback that fails
any check changes nothing: verification and parsing happen before the single transaction that stores it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments.models import ACTIVE_STATES, Deployment, DeployTarget, RuntimeKind, WebhookCallback
from portal.api import json_loads

log = structlog.get_logger(__name__)

TIMESTAMP_HEADER = "X-Runway-Timestamp"
SIGNATURE_HEADER = "X-Runway-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_SKEW_SECONDS = 300
MAX_MESSAGE = 2000
MAX_LATENCIES = 10_000  # a window's samples; more is a misconfigured sender, not a bigger analysis

_TIMESTAMP = re.compile(r"\A[0-9]{1,12}\Z")
_SIGNATURE = re.compile(r"\Asha256=([0-9a-f]{64})\Z")
_NONCE = re.compile(r"\A[A-Za-z0-9_-]{8,64}\Z")
_STEP = re.compile(r"\A[A-Za-z0-9:_#.-]{1,60}\Z")
_COUNTS = ("requests", "errors", "probes", "probes_ok")


class CallbackRefused(Exception):
    """A callback that must not be believed: unsigned, forged, stale, replayed, or for a finished deployment."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Runway-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, *, idempotency_key: str = "", now: float | None = None) -> dict[str, str]:
    """Every header a signed request needs, the timestamp taken now."""
    timestamp = int(time.time() if now is None else now)
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    if idempotency_key:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    return headers


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Raise `CallbackRefused` unless `body` was signed with `secret` within `MAX_SKEW_SECONDS` of `now`."""
    if not secret:
        # An empty key would make every signature computable by anyone.
        raise CallbackRefused("the deploy target has no webhook secret, so no callback can be trusted")
    # HTTP header names are case-insensitive, and proxies do change their case.
    folded = {name.lower(): value for name, value in headers.items()}
    timestamp_text = folded.get(TIMESTAMP_HEADER.lower())
    signature_text = folded.get(SIGNATURE_HEADER.lower())
    if timestamp_text is None:
        raise CallbackRefused(f"missing header {TIMESTAMP_HEADER}")
    if signature_text is None:
        raise CallbackRefused(f"missing header {SIGNATURE_HEADER}")
    if not _TIMESTAMP.match(timestamp_text.strip()):
        raise CallbackRefused(f"malformed {TIMESTAMP_HEADER}: expected unix seconds")
    if not _SIGNATURE.match(signature_text.strip()):
        raise CallbackRefused(f"malformed {SIGNATURE_HEADER}: expected sha256= and 64 lowercase hex digits")
    timestamp = int(timestamp_text.strip())
    if not hmac.compare_digest(sign(secret, timestamp, body), signature_text.strip()):
        raise CallbackRefused("bad signature: the body was not signed with this deploy target's secret")
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > MAX_SKEW_SECONDS:
        when = "ago" if skew > 0 else "in the future"
        raise CallbackRefused(
            f"stale timestamp: signed {abs(skew):.0f} s {when}; at most {MAX_SKEW_SECONDS} s either way is accepted"
        )


@dataclass(frozen=True)
class Report:
    """A verified callback body, each field checked."""

    step: str
    status: str
    message: str
    nonce: str
    payload: dict[str, Any]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _metrics_errors(metrics: Any, field: str) -> list[str]:
    """What is wrong with one set of samples; empty when it is usable."""
    if not isinstance(metrics, dict):
        return [f"{field} must be an object with requests, errors, latencies_ms, probes and probes_ok."]
    errors = [
        f"{field}.{name} must be a whole number, 0 or more." for name in _COUNTS if not _is_count(metrics.get(name, 0))
    ]
    latencies = metrics.get("latencies_ms", [])
    if (
        not isinstance(latencies, list)
        or len(latencies) > MAX_LATENCIES
        or not all(
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
            for value in latencies
        )
    ):
        errors.append(f"{field}.latencies_ms must be a list of at most {MAX_LATENCIES} latencies in ms, 0 or more.")
    if not errors and metrics.get("probes_ok", 0) > metrics.get("probes", 0):
        errors.append(f"{field}.probes_ok cannot be more than {field}.probes.")
    return errors


def report_parse(body: bytes) -> Report:
    """Check a callback body field by field; `ValidationError` says what to fix in each."""
    try:
        # The API's own bounded parser: NaN, Infinity and NUL characters (which PostgreSQL would refuse to store in
        # the payload) and nesting too deep to parse are refused, not a 500.
        data = json_loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ValidationError({"body": [f"The body is not JSON: {str(error).rstrip('.')}."]}) from None
    if not isinstance(data, dict):
        raise ValidationError({"body": ["The body must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    step = data.get("step")
    if not isinstance(step, str) or not _STEP.match(step):
        errors["step"] = ["Give the step key from Runway's request (its `step` field), unchanged."]
    status = data.get("status")
    if status not in WebhookCallback.Status.values:
        errors["status"] = [f"status must be one of: {', '.join(WebhookCallback.Status.values)}; not {status!r}."]
    message = data.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        errors["message"] = [f"message must be text of at most {MAX_MESSAGE} characters."]
    nonce = data.get("nonce")
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        errors["nonce"] = ["nonce must be 8 to 64 letters, digits, dashes or underscores, new for every callback."]
    metrics = data.get("metrics")
    if metrics is not None:
        problems = _metrics_errors(metrics, "metrics")
        if isinstance(metrics, dict) and metrics.get("baseline") is not None:
            problems += _metrics_errors(metrics["baseline"], "metrics.baseline")
        if problems:
            errors["metrics"] = problems
    if "deployment" in data and not _is_count(data["deployment"]):
        errors["deployment"] = ["deployment must be the deployment's id from Runway's request."]
    if errors:
        raise ValidationError(errors)
    return Report(step=str(step), status=str(status), message=message, nonce=str(nonce), payload=data)


def callback_receive(*, deployment_id: int, body: bytes, headers: Mapping[str, str]) -> WebhookCallback:
    """Store a CD system's signed report on a step and wake the engine, which reads it on its next step.

    Raises `CallbackRefused` (unsigned, forged, stale, replayed, finished deployment) or `ValidationError` (the
    body's fields); in either case nothing is written.
    """
    from deployments import tasks

    deployment = Deployment.objects.filter(pk=deployment_id).first()
    secret = None
    if deployment is not None:
        secret = (
            DeployTarget.objects.filter(service_id=deployment.service_id, environment_id=deployment.environment_id)
            .values_list("webhook_secret", flat=True)
            .first()
        )
    if not secret:
        # An unknown deployment, or one whose target has no secret, is checked against a key nobody holds: the sender
        # gets exactly the answer a bad signature gets, so the endpoint cannot be used to find which deployments exist.
        log.warning("webhook_callback_unverifiable", deployment_id=deployment_id, known=deployment is not None)
        secret = secrets.token_hex(32)
    # Signature first: nothing about the deployment is revealed to a sender who cannot sign.
    verify(secret, headers, body)
    if deployment is None:  # not reached: a key nobody holds verifies nothing
        raise CallbackRefused("bad signature: the body was not signed with this deploy target's secret")
    report = report_parse(body)
    if "deployment" in report.payload and report.payload["deployment"] != deployment.pk:
        # The signature does not cover the URL, so a report for one deployment must not be posted to another.
        raise CallbackRefused(f"the report is for deployment #{report.payload['deployment']}, not #{deployment.pk}")
    if deployment.runtime != RuntimeKind.WEBHOOK:
        raise CallbackRefused(f"deployment #{deployment.pk} does not run on a CD system's webhook")
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if WebhookCallback.objects.filter(nonce=report.nonce).exists():
            raise CallbackRefused("replayed: this nonce was already used")
        if locked.state not in ACTIVE_STATES:
            raise CallbackRefused(f"deployment #{locked.pk} has finished ({locked.get_state_display().lower()})")
        try:
            with transaction.atomic():
                callback = WebhookCallback.objects.create(
                    deployment=locked,
                    step=report.step,
                    status=report.status,
                    message=report.message,
                    payload=report.payload,
                    nonce=report.nonce,
                )
        except IntegrityError:
            # The same report delivered twice at once: the unique nonce lets exactly one in.
            raise CallbackRefused("replayed: this nonce was already used") from None
        if locked.runtime_state.get("waiting") == report.step:
            # The engine polls this step every few seconds; its answer is here, so the wait may end now.
            Deployment.objects.filter(pk=locked.pk, version=locked.version).update(next_run_at=None)
        pk, version = locked.pk, locked.version
        transaction.on_commit(lambda: tasks.deployment_step.delay(pk, version))
    return callback
