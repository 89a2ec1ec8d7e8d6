"""OpenFeature's Remote Evaluation Protocol (OFREP 0.3): any OpenFeature SDK with the OFREP provider evaluates a
service's flags here. Plain Django views rather than DRF: the protocol has its own error bodies, and SDKs poll often.

Clients present a per-service, per-environment SDK key (`Authorization: Bearer …` or `X-API-Key`); the key decides
which flags they see, and nothing else. Bodies follow the protocol's OpenAPI document: success
`{key, value, reason, variant, metadata}`, failure `{key, errorCode, errorDetails}`; the bulk answer carries an
ETag and answers 304 to a matching `If-None-Match`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.throttling import window_count
from flags import counts, evaluation, selectors
from flags.models import sdk_key_digest

MAX_BODY_BYTES = evaluation.MAX_CONTEXT_BYTES


def _error(status: int, code: str, details: str, key: str | None = None) -> JsonResponse:
    body: dict[str, Any] = {"errorCode": code, "errorDetails": details}
    if key is not None:
        body = {"key": key} | body
    return JsonResponse(body, status=status)


def _authenticate(request: HttpRequest) -> tuple[int, int, str] | HttpResponse:
    """(service id, environment id, the compiled sets' generation) for the request's SDK key.

    One cache round trip counts the key's rate (by its digest, before it is known to be valid: a wrong key counts
    against a counter of its own, as API tokens do) and reads the key's cached entry and the generation with it."""
    header = request.headers.get("Authorization", "")
    raw = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("X-API-Key", "").strip()
    if not raw or len(raw) > 200:
        return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="ofrep"'})
    digest = sdk_key_digest(raw)
    window = int(time.time() // 60)
    key_name = selectors.sdk_key_name(digest)
    count, cached = window_count(f"ratelimit:flags:{digest[:32]}:{window}", [key_name, selectors.GENERATION])
    if count > settings.FLAGS_SDK_RATE_LIMIT:
        retry = math.ceil((window + 1) * 60 - time.time())
        return HttpResponse(status=429, headers={"Retry-After": str(max(1, retry))})
    found = selectors.sdk_key_lookup(digest, cached.get(key_name))
    if found is None:
        return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer realm="ofrep"'})
    return found[0], found[1], str(cached.get(selectors.GENERATION) or selectors.generation())


def _context(request: HttpRequest) -> dict[str, Any]:
    if len(request.body) > MAX_BODY_BYTES:
        raise evaluation.ContextError("INVALID_CONTEXT", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError) as error:
        raise evaluation.ContextError("PARSE_ERROR", f"The request body is not JSON: {error}"[:300]) from error
    return evaluation.context_read(body)


@csrf_exempt
@require_POST
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    found = _authenticate(request)
    if isinstance(found, HttpResponse):
        return found
    try:
        context = _context(request)
    except evaluation.ContextError as error:
        return _error(400, error.code, error.details, key)
    service_id, environment_id, current = found
    flags = selectors.flag_set(service_id, environment_id, current=current)["flags"]
    flag = flags.get(key)
    status, body = evaluation.evaluate(key, flag, context)
    if flag is not None:  # an unknown key is not counted: any client could invent keys without end
        counts.record(service_id, environment_id, [(key, body.get("variant") or counts.DEFAULT)], whole_set=False)
    return JsonResponse(body, status=status)


@csrf_exempt
@require_POST
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    found = _authenticate(request)
    if isinstance(found, HttpResponse):
        return found
    service_id, environment_id, current = found
    compiled = selectors.flag_set(service_id, environment_id, current=current)
    # The ETag covers the flag set; the answer also depends on the context, so it joins the set's ETag with the
    # context's digest: a client polling with the same context gets 304 until a flag changes.
    try:
        context = _context(request)
    except evaluation.ContextError as error:
        return _error(400, error.code, error.details)
    etag = _etag(compiled["etag"], request.body)
    if etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        counts.touch(service_id, environment_id)
        return HttpResponse(status=304, headers={"ETag": etag})
    answers = []
    for key, flag in compiled["flags"].items():
        _status, body = evaluation.evaluate(key, flag, context)
        answers.append(body)
    counts.record(
        service_id,
        environment_id,
        [(answer["key"], answer.get("variant") or counts.DEFAULT) for answer in answers],
        whole_set=True,
    )
    return JsonResponse({"flags": answers, "metadata": {}}, headers={"ETag": etag})


def _etag(set_etag: str, body: bytes) -> str:
    return '"' + hashlib.sha256(set_etag.encode() + b"\x00" + body).hexdigest()[:32] + '"'
