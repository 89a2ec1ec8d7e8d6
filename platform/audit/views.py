"""The audit log page: read-only, filterable, paginated."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from audit import selectors
from audit.filters import AuditEventFilterSet
from catalog.models import Service


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    filterset = AuditEventFilterSet(request.GET or None, queryset=selectors.event_list_visible(user=request.user))
    page = Paginator(filterset.qs, 50).get_page(request.GET.get("page"))
    service = None
    if filterset.is_valid() and filterset.form.cleaned_data.get("service"):
        service = Service.objects.filter(pk=filterset.form.cleaned_data["service"]).first()
    params = request.GET.copy()
    params.pop("page", None)
    template = "audit/event_list.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#results"
    response = render(
        request, template, {"filterset": filterset, "page": page, "service": service, "query": params.urlencode()}
    )
    patch_vary_headers(response, ["HX-Request"])
    return response
