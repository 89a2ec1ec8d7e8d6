"""Monitoring pages. Each view parses input, calls one selector, renders."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from monitoring import selectors
from monitoring.templatetags.monitoring import BADGE

# A catalog page shows 50 services; anything much larger is not a page of the catalog.
MAX_SERVICES = 200


@login_required
@require_GET
def catalog_health(request: HttpRequest) -> HttpResponse:
    """Health badges for the services of one catalog page (`?service=<id>` repeated), as htmx out-of-band swaps.

    The catalog's table is cached as HTML per catalog version while health changes with every probe, so the
    table carries placeholders and this answers for them after the page has loaded.
    """
    raw = request.GET.getlist("service")
    if len(raw) > MAX_SERVICES:
        return HttpResponseBadRequest(f"Ask for at most {MAX_SERVICES} services at a time.")
    try:
        service_ids = sorted({int(value) for value in raw})
    except ValueError:
        return HttpResponseBadRequest("`service` must be a service id (a whole number).")
    health = selectors.health_for_services(service_ids)
    rows = []
    for service_id in service_ids:
        found = health.get(service_id)
        rows.append({"id": service_id, "health": found, "badge": BADGE.get(found.status, "") if found else ""})
    return render(request, "monitoring/_catalog_health.html", {"rows": rows})
