"""Endpoints: `ops` for the platform (health, metrics), `api` for the service's own API."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

log = logging.getLogger("app")

ops = Blueprint("ops", __name__)
api = Blueprint("api", __name__, url_prefix="/api/v1")


@ops.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Ready to serve: 200 when every readiness check passes, 503 (with the failing checks) otherwise."""
    checks = {}
    for name, check in current_app.extensions["health_checks"].items():
        try:
            check()
            checks[name] = "ok"
        except Exception as error:
            log.warning("health check failed", extra={"check": name, "error": repr(error)})
            checks[name] = "failing"
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "unavailable"}
    if checks:
        body["checks"] = checks
    return jsonify(body), 200 if healthy else 503


@ops.get("/metrics")
def metrics() -> Response:
    payload, content_type = current_app.extensions["metrics"].exposition()
    return Response(payload, content_type=content_type)


@api.get("/hello")
def hello() -> tuple[Response, int]:
    """The example endpoint: GET /api/v1/hello?name=Ada. Replace it with your API."""
    name = request.args.get("name", "world").strip()
    if not name or len(name) > 100:
        return jsonify(error="Bad Request", detail="name must be 1 to 100 characters"), 400
    return jsonify(message=f"Hello, {name}!", service=current_app.config["SERVICE_NAME"]), 200
