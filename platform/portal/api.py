"""API plumbing shared by every app: pagination with a hard maximum page size, JSON bodies and query parameters
that cannot crash a view, error mapping, staff writes, and the error responses every operation documents."""

import json
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, parsers, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings

from portal import validators
from portal.errors import Conflict

logger = structlog.get_logger(__name__)

# Deeper than any document Runway takes (golden path answers, reports); Python's parser would recurse ~1,000 levels
# and then raise RecursionError, and every later walk over the data (validation, json.dumps) recurses again.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"the body is nested too deeply (more than {MAX_JSON_DEPTH} levels)"
NUL_REFUSED = "Null characters (\\u0000) are not allowed: PostgreSQL cannot store them."


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, with its answer for the Accept headers API clients send
    (no header or `*/*`, `application/json`) given without parsing them: the same answer, at a tenth of the cost."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        if format_suffix is None and renderers and type(renderers[0]) is JSONRenderer and plain_json_asked(request):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)


# The Accept headers that API clients send and that mean plain JSON, answered without parsing them.
PLAIN_ACCEPT = frozenset({"*/*", "application/json"})


def plain_json_asked(request: Any) -> bool:
    """Whether a request (Django's or DRF's) asks for plain JSON: no Accept header, `*/*` or `application/json`, and
    no `?format=` (whose query string is parsed only if it names the parameter at all)."""
    meta = request.META
    if meta.get("HTTP_ACCEPT", "*/*") not in PLAIN_ACCEPT:
        return False
    override = api_settings.URL_FORMAT_OVERRIDE
    return not (override and override in meta.get("QUERY_STRING", "") and override in request.GET)


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M`; M is capped so that no client can ask for the whole table at once."""

    page_size = settings.API_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


def json_too_deep(data: Any) -> bool:
    """Whether parsed JSON nests lists and objects more than MAX_JSON_DEPTH levels deep; walks without recursion."""
    stack = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def json_nul_errors(data: Any) -> dict[str, list[str]]:
    """A field error for the first string or key holding a NUL character, keyed by the top-level field it is in
    ("non_field_errors" for the document itself) and naming where below it."""
    path = validators.nul_path(data)
    if path is None:
        return {}
    cut = min((at for at in (path.find("."), path.find("[")) if at >= 0), default=len(path))
    field, below = path[:cut], path[cut:].lstrip(".")
    if not isinstance(data, dict) or not field:
        field, below = "non_field_errors", path
    return {field: [f"{below}: {NUL_REFUSED}" if below else NUL_REFUSED]}


def json_loads(body: bytes | str) -> Any:
    """`json.loads` for untrusted bodies: ValueError (with a message to show) for malformed JSON, NaN or Infinity,
    nesting too deep to parse or to store, and NUL characters, which PostgreSQL cannot store."""
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        data = None
        too_deep = True
    else:
        too_deep = json_too_deep(data)
    if too_deep:
        raise ValueError(TOO_DEEP)
    if errors := json_nul_errors(data):
        field, messages = next(iter(errors.items()))
        raise ValueError(f"{field}: {messages[0]}" if field != "non_field_errors" else messages[0])
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing with 400 a body nested too deeply to parse (a RecursionError, a 500 before) or to
    walk safely afterwards (validation and json.dumps recurse too)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - {TOO_DEEP}.") from None
        if json_too_deep(data):
            raise exceptions.ParseError(f"JSON parse error - {TOO_DEEP}.")
        # NUL characters are left to the fields, which say where they are (CharField, SlugRelatedField below, the
        # scaffolder's answers); a value that still reaches the database is a 400 through exception_handler.
        return data


def nul_refused(params: Any) -> dict[str, list[str]]:
    """Query parameters (a QueryDict) holding a NUL character, which no stored value can match."""
    return {name: [NUL_REFUSED] for name, values in params.lists() if any("\x00" in value for value in values)}


class FilterBackend(DjangoFilterBackend):
    """django-filter, after refusing (400, naming the parameter) any query parameter with a NUL character: every list
    and detail view filters through here, whether its parameters are a FilterSet's or read by hand."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        if problems := nul_refused(request.query_params):
            raise exceptions.ValidationError(problems)
        return super().filter_queryset(request, queryset, view)


class SlugRelatedField(serializers.SlugRelatedField):
    """DRF's SlugRelatedField, refusing a NUL character as a field error before it reaches the lookup (where
    PostgreSQL would refuse it with a DataError, a 500)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            raise serializers.ValidationError(NUL_REFUSED)
        return super().to_internal_value(data)


class LookupMixin:
    """Detail routes whose lookup value (a slug in the URL) has a NUL character are 404s: no stored slug has one,
    and PostgreSQL would refuse the query (a 500)."""

    def get_object(self) -> Any:
        kwarg = self.lookup_url_kwarg or self.lookup_field  # type: ignore[attr-defined]
        if "\x00" in str(self.kwargs.get(kwarg, "")):  # type: ignore[attr-defined]
            raise exceptions.NotFound()
        return super().get_object()  # type: ignore[misc]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: Django's ValidationError from a service as field errors (400), a service's Conflict as a
    409 that names what is in the way, a delete refused by protected history as a 409 that says so, and a value the
    database refused (DataError: a NUL byte, a number out of range) as a 400 rather than a 500."""
    if isinstance(exc, Conflict):
        return Response({"detail": exc.message, "existing": exc.existing_url or None}, status=409)
    if isinstance(exc, ProtectedError | RestrictedError):
        return Response({"detail": protected_message(exc), "existing": None}, status=409)
    if isinstance(exc, TooManyFieldsSent):
        # Django refuses the form body before DRF sees it and would answer with its HTML 400 page; say what to do.
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        exc = exceptions.ParseError(f"The form has more than {limit:,} fields. Send the request as JSON instead.")
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "The request body is too large."}, status=413)
    if isinstance(exc, DataError):
        logger.warning("api_data_error", error=str(exc).splitlines()[0] if str(exc) else "")
        exc = exceptions.ValidationError({"non_field_errors": ["A value in the request cannot be stored."]})
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    from rest_framework.views import exception_handler as drf_exception_handler  # its APIView reads our parser

    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, list):
        exc.detail = {"non_field_errors": exc.detail}  # one shape for every 400: field -> messages
    return drf_exception_handler(exc, context)


def protected_message(exc: ProtectedError | RestrictedError) -> str:
    """'<thing> cannot be deleted: 3 deployments refer to it.', naming the kinds of record in the way."""
    objects = list(exc.protected_objects if isinstance(exc, ProtectedError) else exc.restricted_objects)
    kinds: dict[str, int] = {}
    for obj in objects:
        name = str(obj._meta.verbose_name_plural)
        kinds[name] = kinds.get(name, 0) + 1
    names = ", ".join(f"{count} {name}" for name, count in sorted(kinds.items()))
    return f"It cannot be deleted: {names} refer to it and are kept as history."


@csrf_exempt  # answers every method the same way; a POST to nowhere should not be a CSRF page
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """A path under /api/ that no route matches (an id that is not a number, a slug with a slash): a 404 in the
    API's own shape, which clients and the schema expect, instead of the HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


class StaffWritePermission(BasePermission):
    """Anyone signed in may read; only platform admins (staff) may write."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.method in SAFE_METHODS or (request.user and request.user.is_staff))


# The error responses of every operation, for the OpenAPI schema (drf-spectacular documents only successes).

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "Why the request was refused.",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    "ValidationError": {
        "type": "object",
        "description": "What to fix: each field (or non_field_errors) with its messages.",
        "additionalProperties": {},
    },
    "ConflictError": {
        "type": "object",
        "description": "What is in the way, and where it is.",
        "properties": {"detail": {"type": "string"}, "existing": {"type": "string", "nullable": True}},
        "required": ["detail"],
    },
}
ERROR_RESPONSES = {
    "400": ("ValidationError", "Invalid input: field errors, a malformed body or query parameter."),
    "401": ("Error", "Not signed in: no valid token or session."),
    "403": ("Error", "Signed in, but not allowed to do this."),
    "404": ("Error", "No such object (or page)."),
    "409": ("ConflictError", "The request clashes with the current state of something else."),
    "415": ("Error", "The body's Content-Type is not one this operation reads."),
    "429": ("Error", "Too many requests with this token; retry after the Retry-After header's seconds."),
}


def _error_codes(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    in_path = any(p.get("in") == "path" for p in parameters)
    in_query = any(p.get("in") == "query" for p in parameters)
    codes = ["401", "403", "429"]
    if operation.get("requestBody") or in_query:
        codes.append("400")
    if operation.get("requestBody"):
        codes.append("415")
    if in_path or any(p.get("name") == "page" for p in parameters):
        codes.append("404")
    if method not in ("get", "head", "options"):
        codes.append("409")
    if not operation.get("security", [{}]) or operation.get("security") == [{}]:
        codes = [code for code in codes if code not in ("401", "429")]  # open endpoints (signed webhooks)
    return codes


def schema_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: documents the errors each operation can answer with (400 where it takes
    input, 404 where it looks something up or pages, 409 on writes, 401/403/429 wherever a caller is authenticated),
    leaving alone any response a view documented itself."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in ERROR_SCHEMAS.items():
        schemas.setdefault(name, schema)
    for path, methods in result.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(path, method, operation):
                component, description = ERROR_RESPONSES[code]
                if code in responses and responses[code].get("content"):
                    continue
                responses[code] = {
                    "description": responses.get(code, {}).get("description") or description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                }
    return result
