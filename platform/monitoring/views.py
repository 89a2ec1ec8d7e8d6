"""Monitoring pages. Each view parses input, calls one selector, renders."""

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from catalog import selectors as catalog_selectors
from catalog.models import Service
from catalog.permissions import user_can
from monitoring import openslo, selectors, services
from monitoring.forms import EXAMPLE, SloForm
from monitoring.models import SLO
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


def _slo_service_or_404(request: HttpRequest, slug: str) -> Service:
    return get_object_or_404(catalog_selectors.service_list_visible(user=request.user), slug=slug)


def _require_change(request: HttpRequest, service: Service) -> None:
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s SLOs.")


@login_required
@require_http_methods(["GET", "POST"])
def slo_edit(request: HttpRequest, slug: str | None = None, pk: int | None = None) -> HttpResponse:
    """Add an SLO to a service, or change one no file owns, as an OpenSLO document checked like SLO files."""
    slo = None
    if pk is not None:
        slo = get_object_or_404(SLO.objects.select_related("service"), pk=pk)
        service = _slo_service_or_404(request, slo.service.slug)
    else:
        service = _slo_service_or_404(request, slug or "")
    _require_change(request, service)
    if slo is not None and slo.catalog_source_id is not None:
        raise PermissionDenied(f"{slo.source_path} owns this SLO; change the file and import the catalog again.")
    if request.method == "POST":
        form = SloForm(request.POST)
        if form.is_valid():
            try:
                if slo is None:
                    slo = services.slo_create(
                        user=request.user, service=service, document=form.cleaned_data["document"]
                    )
                    messages.success(request, f"Added the SLO {slo.name}.")
                else:
                    services.slo_update(user=request.user, slo=slo, document=form.cleaned_data["document"])
                    messages.success(request, f"Saved the SLO {slo.name}.")
                return redirect(reverse("catalog:service-detail", args=[service.slug]) + "#slos")
            except openslo.SloError as error:
                form.add_error("document", f"{error.field}: {error}" if error.field else str(error))
    else:
        initial = yaml.safe_dump(slo.document, sort_keys=False) if slo else EXAMPLE.format(service=service.slug)
        form = SloForm(initial={"document": initial})
    return render(request, "monitoring/slo_form.html", {"form": form, "service": service, "slo": slo})


@login_required
@require_http_methods(["GET", "POST"])
def slo_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete an SLO no file owns, after a confirmation page."""
    slo = get_object_or_404(SLO.objects.select_related("service"), pk=pk)
    service = _slo_service_or_404(request, slo.service.slug)
    _require_change(request, service)
    if slo.catalog_source_id is not None:
        raise PermissionDenied(f"{slo.source_path} owns this SLO; remove it from the file instead.")
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        return render(request, "monitoring/slo_delete.html", {"slo": slo, "service": service})
    services.slo_delete(user=request.user, slo=slo)
    messages.success(request, f"Deleted the SLO {slo.name}.")
    return redirect(reverse("catalog:service-detail", args=[service.slug]) + "#slos")
