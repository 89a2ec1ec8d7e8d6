"""Monitoring pages. Each view parses input, calls one selector, renders."""

import yaml
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from catalog import selectors as catalog_selectors
from catalog.models import Service
from catalog.permissions import user_can
from deployments.models import Environment
from monitoring import openslo, selectors, services
from monitoring.forms import EXAMPLE, HealthCheckForm, SloForm
from monitoring.models import SLO, HealthCheck, ProbeSource
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


def _require_change(request: HttpRequest, service: Service, what: str = "SLOs") -> None:
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s {what}.")


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


# --- health checks --------------------------------------------------------------------------------------------------


def _health_initial(service: Service, environments: list[Environment]) -> dict[str, object]:
    """A new check's form: the first environment where Runway deploys the service's replicas itself, probing them;
    otherwise the first environment without a check, probing a URL."""
    following = selectors.environments_with_followed_replicas(service)
    chosen = next((e for e in environments if e.pk in following), environments[0] if environments else None)
    source = ProbeSource.REPLICAS if chosen is not None and chosen.pk in following else ProbeSource.HTTP
    return {"environment": chosen.slug if chosen else None, "source": source}


@login_required
@require_http_methods(["GET", "POST"])
def health_check_edit(request: HttpRequest, slug: str | None = None, pk: int | None = None) -> HttpResponse:
    """Add a health check to a service (one per environment), or change one."""
    check = None
    if pk is not None:
        check = get_object_or_404(HealthCheck.objects.select_related("service", "environment"), pk=pk)
        service = _slo_service_or_404(request, check.service.slug)
    else:
        service = _slo_service_or_404(request, slug or "")
    _require_change(request, service, "health checks")
    if check is not None and check.source == ProbeSource.SIMULATED:
        raise PermissionDenied("This check is the demo's simulated one; delete it and add a real one instead.")
    environments = Environment.objects.order_by("order", "name")
    if check is None:
        environments = environments.exclude(health_checks__service=service)
    kwargs = {"environments": environments, "fixed_environment": check is not None}
    if request.method == "POST":
        form = HealthCheckForm(request.POST, initial={"environment": check.environment} if check else None, **kwargs)
        if form.is_valid():
            data = {field: form.cleaned_data[field] for field in services.EDITABLE}
            try:
                if check is None:
                    environment = form.cleaned_data["environment"]
                    services.health_check_create(user=request.user, service=service, environment=environment, **data)
                    messages.success(request, f"Added a health check in {environment}; its first probe runs now.")
                else:
                    services.health_check_update(user=request.user, check=check, **data)
                    messages.success(request, f"Saved the health check in {check.environment}.")
                return redirect(reverse("catalog:service-detail", args=[service.slug]) + "#health")
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
    elif check is not None:
        form = HealthCheckForm(
            initial={"environment": check.environment} | {field: getattr(check, field) for field in services.EDITABLE},
            **kwargs,
        )
    else:
        form = HealthCheckForm(initial=_health_initial(service, list(environments)), **kwargs)
    return render(request, "monitoring/health_check_form.html", {"form": form, "service": service, "check": check})


@login_required
@require_http_methods(["GET", "POST"])
def health_check_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a health check and its results, after a confirmation page."""
    check = get_object_or_404(HealthCheck.objects.select_related("service", "environment"), pk=pk)
    service = _slo_service_or_404(request, check.service.slug)
    _require_change(request, service, "health checks")
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        return render(request, "monitoring/health_check_delete.html", {"check": check, "service": service})
    services.health_check_delete(user=request.user, check=check)
    messages.success(request, f"Deleted the health check in {check.environment}.")
    return redirect(reverse("catalog:service-detail", args=[service.slug]) + "#health")
