"""Refusals that escape a page's view become a message the person can act on, never a 500.

Service functions refuse bad input and impossible changes with Django's ValidationError (or portal.errors.Conflict);
views that show a form put those on its fields. A view that calls a service from a plain button (remove a
dependency, mark reviewed...) has no form to put them on, and a refusal it did not expect used to reach Django's
handler as a 500. This middleware is the one place that answers those for every page, htmx or not:

- a form post from one of our pages: the message is flashed and the browser goes back to that page (303);
- an htmx request: the message fragment, swapped into the page's #messages region (see below);
- anything else: a 400 (409 for a Conflict) page that says what was refused.

The API does not come here: DRF's handler (portal.api.exception_handler) answers its own errors first.
"""

from collections.abc import Callable

import structlog
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
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
    the leftmost X-Forwarded-For entry a client can write itself, and which cost a tenth of a cached API read's CPU."""

    @classmethod
    def bind_ip(cls, request: HttpRequest) -> None:
        from accounts.throttling import client_address  # accounts builds on portal, not the other way round

        structlog.contextvars.bind_contextvars(ip=client_address(request))
