"""Portal-wide pages: the health endpoint, the personal home page and search."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from portal import search


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers; touches nothing, so it also serves as the benchmark's baseline view."""
    return JsonResponse({"status": "ok"})


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """A signed-in person's start: their teams' services, what waits for them, their services' recent deployments."""
    from reviews import overview  # the home page reads across apps, as search does

    context = {"home": overview.home_for(user=request.user), "today": timezone.localdate()}  # type: ignore[arg-type]
    return render(request, "portal/home.html", context)


@login_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """Search everything; the results fragment is swapped in as the user types."""
    query = request.GET.get("q", "").strip()[:200]
    groups = search.search(query=query) if query else []
    template = "portal/search.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#results"
    response = render(request, template, {"query": query, "groups": groups})
    patch_vary_headers(response, ["HX-Request"])
    return response
