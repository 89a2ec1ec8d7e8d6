"""The portal's own middleware: refusals that escape a view (RefusalMiddleware), the request's log context
(RequestLogMiddleware) and the Content-Security-Policy header (CSPMiddleware).

Refusals that escape a page's view become a message the person can act on, never a 500. Service functions refuse
bad input and impossible changes with Django's ValidationError (or portal.errors.Conflict); views that show a form
put those on its fields. A view that calls a service from a plain button (remove a dependency, mark reviewed...) has
no form to put them on, and a refusal it did not expect used to reach Django's handler as a 500. RefusalMiddleware
is the one place that answers those for every page, htmx or not:

- a form post from one of our pages: the message is flashed and the browser goes back to that page (303);
- an htmx request: the message fragment, swapped into the page's #messages region (see below);
- anything else: a 400 (409 for a Conflict) page that says what was refused.

The API does not come here: DRF's handler (portal.api.exception_handler) answers its own errors first.
"""

import logging
import uuid
from collections.abc import Callable

import structlog
from csp import constants as csp_constants
from csp import middleware as csp_middleware
from csp.utils import build_policy as csp_build_policy
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django_structlog import signals
from django_structlog.app_settings import app_settings
from django_structlog.middlewares import RequestMiddleware

from portal.errors import Conflict


def refusal_text(error: ValidationError | Conflict) -> str:
    """One sentence (or a few) saying what was refused and why, field names left out: the page has no fields."""
    if isinstance(error, Conflict):
        return error.message
    return " ".join(error.messages)


class RefusalMiddleware:
    """Turn a ValidationError or Conflict raised by a view into a message (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, ProtectedError | RestrictedError):  # a delete that history refuses: a conflict
            from portal.api import protected_message

            exception = Conflict(protected_message(exception))
        if not isinstance(exception, ValidationError | Conflict):
            return None
        text = refusal_text(exception)
        status = 409 if isinstance(exception, Conflict) else 400
        if request.path.startswith("/api/"):  # a plain Django view under the API: answer in the API's shape
            return JsonResponse({"detail": text}, status=status)
        if getattr(request, "htmx", False):
            # htmx swaps only 2xx answers by default, and a 4xx would leave the click silently doing nothing; the
            # refusal is the answer, so it is sent as one, aimed at the page's message region and not at the
            # element the request came from (whose content it must not replace) or the URL bar.
            response = render(request, "portal/_messages.html", {"refusals": [text]})
            response["HX-Retarget"] = "#messages"
            response["HX-Reswap"] = "innerHTML"
            response["HX-Push-Url"] = "false"
            return response
        back = request.headers.get("Referer", "")
        if request.method != "GET" and back and self._ours(request, back):
            messages.error(request, text)
            return HttpResponseRedirect(back, status=303)
        return render(request, "portal/refused.html", {"refusal": text}, status=status)

    @staticmethod
    def _ours(request: HttpRequest, url: str) -> bool:
        """Only a page of this site is a place to send the browser back to (never an open redirect)."""
        return url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's request context (request id, user, address) for logs, audit rows and tasks, with the
    client's address read as sign-in throttling reads it (accounts.throttling.client_address: REMOTE_ADDR, or
    X-Forwarded-For's entries from SIGNIN_TRUSTED_PROXIES proxies). django-structlog asks django-ipware, which believes
    the leftmost X-Forwarded-For entry a client can write itself, and which cost a tenth of a cached API read's CPU.

    The request's start and finish are django-structlog's, but do only the work their log lines need when those lines
    are written: below the level (production logs warnings) and with no receiver of django-structlog's signals, the
    line is neither formatted nor sent. A request without a session cookie has an anonymous session user, which is
    bound without loading a session (an API token's user is bound when the response is). This middleware cost a
    quarter of an API read's CPU (0.24 of 0.9 ms) before."""

    def prepare(self, request: HttpRequest) -> None:
        from accounts.throttling import client_address  # accounts builds on portal, not the other way round

        meta = request.META  # not request.headers, which copies every header the first time it is read
        trusted = app_settings.TRUST_UPSTREAM_REQUEST_ID and meta.get("HTTP_X_REQUEST_ID")
        context: dict[str, object] = {"request_id": trusted or str(uuid.uuid4())}
        if app_settings.TRUST_UPSTREAM_CORRELATION_ID and (correlation := meta.get("HTTP_X_CORRELATION_ID")):
            context["correlation_id"] = correlation
        if app_settings.IP_LOGGING_ENABLED:
            context["ip"] = client_address(request)
        structlog.contextvars.bind_contextvars(**context)
        if settings.SESSION_COOKIE_NAME in request.COOKIES or not hasattr(request, "session"):
            self.bind_user_id(request)
        elif app_settings.USER_ID_FIELD and hasattr(request, "user"):
            structlog.contextvars.bind_contextvars(user_id=None)  # no session: nobody is signed in yet
        level = app_settings.STATUS_START_LOG_LEVEL
        if _enabled(level) or signals.bind_extra_request_metadata.has_listeners():
            log_kwargs = {"request": self.format_request(request), "user_agent": request.META.get("HTTP_USER_AGENT")}
            signals.bind_extra_request_metadata.send(
                sender=self.__class__, request=request, logger=_logger, log_kwargs=log_kwargs
            )
            _logger.log(level, "request_started", **log_kwargs)

    def handle_response(self, request: HttpRequest, response: HttpResponseBase) -> None:  # type: ignore[override]
        quiet = not _enabled(self._log_level_for_status_code(response.status_code))
        if (
            quiet
            and not hasattr(request, "_raised_exception")
            and not isinstance(response, StreamingHttpResponse)
            and not signals.bind_extra_request_finished_metadata.has_listeners()
        ):
            structlog.contextvars.clear_contextvars()
            return
        super().handle_response(request, response)  # type: ignore[arg-type]


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's Content-Security-Policy, whose header texts are built once and kept for every response that used
    no nonce and has no policy of its own (a view's csp_update and the like): building the same texts from the
    settings on every response cost about a twentieth of an API read's CPU. Any other response is django-csp's as
    before; changed settings (tests) build the texts again."""

    _kept: tuple[object, object, list[tuple[str, str, str, tuple[str, ...]]]] | None = None

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(hasattr(response, name) for name in _OWN_POLICY):
            return super().process_response(request, response)
        if response.status_code in (500, 404) and settings.DEBUG:
            return response
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        kept = self._kept
        if kept is None or kept[0] is not policy or kept[1] is not report_only:
            headers = [
                (csp_constants.HEADER, csp_build_policy(), "_csp_exempt", (policy or {}).get("EXCLUDE_URL_PREFIXES")),
                (
                    csp_constants.HEADER_REPORT_ONLY,
                    csp_build_policy(report_only=True),
                    "_csp_exempt_ro",
                    (report_only or {}).get("EXCLUDE_URL_PREFIXES"),
                ),
            ]
            kept = self._kept = (
                policy,
                report_only,
                [(h, text, e, tuple(p or ())) for h, text, e, p in headers if text],
            )
        for header, text, exempt, excluded in kept[2]:
            if (
                header not in response
                and not getattr(response, exempt, False)
                and not request.path_info.startswith(excluded)
            ):
                response[header] = text
        # As django-csp: a nonce asked for after the header was written would be in no policy, so asking is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response


_OWN_POLICY = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro", "_csp_replace_ro")


def _enabled(level: int) -> bool:
    return _std_logger.isEnabledFor(level)  # cached by logging until its configuration changes


_LOGGER_NAME = "django_structlog.middlewares.request"
_logger = structlog.getLogger(_LOGGER_NAME)
_std_logger = logging.getLogger(_LOGGER_NAME)
