"""DRF authentication by personal API token: `Authorization: Bearer rwy_<prefix>_<secret>`."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts import services, throttling, tokens


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = token_words(request)
        if not header:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the token as `Authorization: Bearer rwy_...`.")
        checked = getattr(request._request, "token_checked", None)
        if checked is not None:  # checked (and counted) already on this request: see token_check
            token, counted = checked
        else:
            view: Any = (getattr(request, "parser_context", None) or {}).get("view")
            prefetch = view.throttle_prefetch(request) if hasattr(view, "throttle_prefetch") else []
            token, counted = token_check(header[1], prefetch=prefetch)
        if token is None:
            raise exceptions.AuthenticationFailed("This token is unknown, expired or revoked.")
        if counted is not None:
            request.token_counted = counted  # the throttle's count, taken in the same round trip
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'


def token_words(request: Any) -> list[str]:
    """The words of a request's Authorization header (Django's or DRF's request) when it names a token scheme
    (`Bearer` or `Token`), else none: `[scheme, token]` for a well-formed one."""
    # META, not DRF's get_authorization_header: that reads request.headers, which copies every header the first time
    # it is read, and nothing else on an API read needs it.
    words = request.META.get("HTTP_AUTHORIZATION", "").split()  # WSGI gives header values as str
    return words if words and words[0].lower() in ("bearer", "token") else []


def token_check(presented: str, *, prefetch: list[str]) -> tuple[Any, Any]:
    """The active token presented as `rwy_<prefix>_<secret>` (None if it is not one) and its rate-limit count, taken
    in the same round trip as the token (None when the throttle is left to take it): this counts the request."""
    parsed = services.token_parse(presented)
    if parsed is None:
        return None, None
    prefix, digest = parsed
    cached, counted = throttling.token_round_trip(entry_key=tokens.entry_key(prefix), digest=digest, prefetch=prefetch)
    return services.token_authenticate(prefix=prefix, digest=digest, cached=cached), counted


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents token authentication in the OpenAPI schema as an HTTP bearer scheme."""

    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token: rwy_<prefix>_<secret>"}
