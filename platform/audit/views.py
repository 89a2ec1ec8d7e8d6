"""The audit log page: read-only, filterable, paginated; each entry links to its object's page where it has one."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from audit import links, selectors
from audit.filters import AuditEventFilterSet
from catalog.models import Service

# Slugs the service box suggests as you type; a longer catalog still filters by any slug typed in full.
SUGGESTED_SERVICES = 500


@login_required
@require_GET
def event_list(request: HttpRequest) -> HttpResponse:
    filterset = AuditEventFilterSet(request.GET or None, queryset=selectors.event_list_visible(user=request.user))
    page = Paginator(filterset.qs, 50).get_page(request.GET.get("page"))
    events = list(page.object_list)
    urls = links.object_urls(events)
    for event in events:
        event.url = urls.get(event.pk, "")  # type: ignore[attr-defined]
    page.object_list = events
    service = None
    if filterset.is_valid() and filterset.form.cleaned_data.get("service"):
        service = Service.objects.filter(pk=filterset.form.cleaned_data["service"]).first()
    params = request.GET.copy()
    params.pop("page", None)
    template = "audit/event_list.html"
    context = {"filterset": filterset, "page": page, "service": service, "query": params.urlencode()}
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#results"
    else:
        slugs = Service.objects.order_by("slug").values_list("slug", flat=True)[:SUGGESTED_SERVICES]
        context["service_slugs"] = list(slugs)
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response
