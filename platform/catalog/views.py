"""Catalog pages. Each view parses input, checks permission, calls one service or selector, renders."""

from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.cache import patch_vary_headers
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit import selectors as audit_selectors
from catalog import cache as catalog_cache
from catalog import export, graph, imports, listing, selectors, services
from catalog.filters import CatalogPageFilterSet
from catalog.forms import DependencyForm, ImportForm, ServiceForm, TransferForm
from catalog.models import Api, Dependency, ImportRun, Service
from catalog.permissions import perms_on, user_can
from deployments import selectors as deployment_selectors
from portal.filters import query_param
from portal.forms import apply_errors, validation_response
from portal.pagination import CountedPaginator, count_capped, count_capped_with
from portal.templatetags.portal_tags import SelectOptions
from teams import selectors as team_selectors
from techdocs import selectors as techdocs_selectors

PAGE_SIZE = 50
# The catalog filters shown as a <select>: every one but the text search and the sort order (a hidden input).
FILTER_SELECTS = [name for name in CatalogPageFilterSet.base_filters if name not in ("q", "ordering")]


@login_required
@require_GET
def service_list(request: HttpRequest) -> HttpResponse:
    """The catalog: search as you type and filters that swap only the results, kept in the URL.

    With a shared cache (settings.CATALOG_PAGE_CACHE) the results, their count and the filters' choices are rendered
    once per catalog version (and query string): they are the same for every reader and change only with the catalog
    (and, for the stale-runbook badges, when a review falls due).
    """
    filterset = CatalogPageFilterSet(request.GET or None, queryset=selectors.service_list_visible(user=request.user))
    params = request.GET.copy()
    params.pop("page", None)
    context: dict[str, Any] = {
        "filterset": filterset,
        "query": params.urlencode(),
        "ordering": request.GET.get("ordering", ""),
        "can_create": True,
    }
    fragment_only = request.htmx and not request.htmx.boosted  # type: ignore[attr-defined]
    cached = _ServiceListCache(request, with_options=not fragment_only)
    results = cached.results()
    if results is None:
        results, stale_until = _service_list_results(request, filterset, context)
        cached.results_store(results, stale_until=stale_until)
    if fragment_only:
        response = HttpResponse(results)
    else:
        options = cached.options() or cached.options_store(
            listing.filter_options([field for field in filterset.form if field.name in FILTER_SELECTS])
        )
        context["filter_fields"] = [(field, options[field.name]) for field in filterset.form if field.name in options]
        context["results"] = results
        response = render(request, "catalog/service_list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _service_list_results(
    request: HttpRequest, filterset: CatalogPageFilterSet, context: dict[str, Any]
) -> tuple[SafeString, datetime | None]:
    """The results fragment (count, table, pagination), and until when its stale-runbook badges hold (see
    listing.rows_load). Adds the `page` and its `services` (listing.ServiceRow) to `context`.

    The rows are one statement over the stored documents (catalog/listing.py). Without the cache the count is exact up
    to CATALOG_EXACT_COUNT_UP_TO matches and the planner's estimate past that ("about ..."), so that no page counts
    100,000 rows; with it, the exact count is remembered per filter until the catalog changes.
    """
    count_key = CatalogPageFilterSet.count_key(request.GET) if settings.CATALOG_PAGE_CACHE else None
    exact = True
    rows_queryset = listing.rows_queryset(filterset.qs)
    fetched, number = None, 0
    if count_key:  # the same for every page and sort order of these filters, until the catalog changes
        count = partial(catalog_cache.remembered, count_key, filterset.qs.count)
    elif (number := _page_number(request)) * PAGE_SIZE <= settings.CATALOG_EXACT_COUNT_UP_TO + PAGE_SIZE:
        # The count and the page asked for in one statement. Not for a deep page: one past the end would be read
        # (skipping every match) before the last one is.
        counted, exact, fetched = count_capped_with(
            filterset.qs, rows_queryset[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        )
        count = partial(int, counted)
    else:
        counted, exact = count_capped(filterset.qs)
        count = partial(int, counted)
    paginator = CountedPaginator(rows_queryset, PAGE_SIZE, count=count)
    page = paginator.get_page(request.GET.get("page"))
    if fetched is None or page.number != number:  # a page past the end shows the last one, read on its own
        fetched = list(page.object_list)
    rows, stale_until = listing.rows_load(fetched)
    page.object_list = rows
    context.update(
        page=page,
        services=rows,
        count_exact=exact,
        rows=listing.rows_html(rows),
        health_query="&".join(f"service={row.pk}" for row in rows),
    )
    html: SafeString = render_to_string("catalog/service_list.html#results", context, request)  # type: ignore[assignment]
    return html, stale_until


def _page_number(request: HttpRequest) -> int:
    """The page asked for when it is a positive number, else the first (Paginator.get_page has the last word)."""
    try:
        return max(1, int(request.GET.get("page") or 1))
    except ValueError:
        return 1


class _ServiceListCache:
    """The catalog page's cached parts, read in one round trip: the results for this query string (not for the
    filters whose answer moves with the clock or the golden paths) and the filters' <option>s."""

    def __init__(self, request: HttpRequest, *, with_options: bool) -> None:
        self.results_key: str | None = None
        self.options_key: str | None = None
        self.made_for, self.fresh = 0, dict[str, Any]()
        if not settings.CATALOG_PAGE_CACHE:
            return
        language = translation.get_language() or ""  # labels are translatable
        if CatalogPageFilterSet.cacheable(request.GET):
            htmx = "htmx" if request.htmx else ""  # type: ignore[attr-defined]  # the fragment differs for htmx
            query = request.META.get("QUERY_STRING", "")
            self.results_key = catalog_cache.entry_key("service-list", query, htmx, language)
        if with_options:
            self.options_key = catalog_cache.entry_key("filter-options", language)
        if keys := [key for key in (self.results_key, self.options_key) if key]:
            self.made_for, self.fresh = catalog_cache.read(keys)

    def results(self) -> SafeString | None:
        html, stale_until = self.fresh.get(self.results_key or "", (None, None))
        if html is None or (stale_until is not None and timezone.now() >= stale_until):
            return None
        return mark_safe(html)  # noqa: S308 - rendered by the template, as it was before it was cached

    def results_store(self, html: str, *, stale_until: datetime | None) -> None:
        if self.results_key:
            catalog_cache.write(self.results_key, self.made_for, (str(html), stale_until))

    def options(self) -> dict[str, SelectOptions] | None:
        return self.fresh.get(self.options_key or "")

    def options_store(self, options: dict[str, SelectOptions]) -> dict[str, SelectOptions]:
        if self.options_key:
            catalog_cache.write(self.options_key, self.made_for, options)
        return options


@login_required
@require_GET
def service_detail(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(selectors.service_list_visible(user=request.user), slug=slug)
    present = selectors.service_page_parts(service=service)  # lists known to be empty are not read
    outgoing, incoming = selectors.service_dependencies(service=service)
    cycle_ids = selectors.service_cycle_neighbours(service=service) if outgoing and incoming else set()
    retired = service.lifecycle == Service.Lifecycle.DECOMMISSIONED  # a read-only record
    granted = perms_on(request.user, service)
    can_change = not retired and "catalog.change_service" in granted
    source = selectors.entity_source_for(obj=service) if "source" in present else None
    source_owned = source is not None and source.missing_since is None
    no_interfaces: dict[str, list[selectors.Interface]] = {"provides": [], "consumes": [], "uses": []}
    context = {
        "service": service,
        "page_parts": present,  # the sections of other apps read nothing the service has none of
        "source": source,
        "source_owned": source_owned,
        "runbooks": techdocs_selectors.runbook_list_for_service(service=service) if "runbooks" in present else [],
        "adrs": techdocs_selectors.adr_list_for_service(service=service) if "adrs" in present else [],
        "interfaces": selectors.service_interfaces(service=service) if "interfaces" in present else no_interfaces,
        "outgoing": outgoing,
        "incoming": incoming,
        "cycle_ids": cycle_ids,
        "events": audit_selectors.event_list_for_service(service_id=service.pk),
        "can_change": can_change,
        # A catalog source owns the dependencies of what it describes: no controls the service would refuse.
        "dependency_form": DependencyForm() if can_change and not source_owned else None,
        "golden_path_latest": _golden_path_version(service.golden_path),
        "can_deploy": not retired and "catalog.deploy_service" in granted,
        "can_decommission": not retired and "catalog.decommission_service" in granted,
        **deployment_selectors.service_summary(service=service, present=present),
    }
    return render(request, "catalog/service_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def service_create(request: HttpRequest) -> HttpResponse:
    owner_choices = team_selectors.team_choices_for(user=request.user)
    form = ServiceForm(request.POST or None, owner_choices=owner_choices)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            service = services.service_create(created_by=request.user, **data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        except PermissionDenied as error:
            form.add_error("owner", str(error))
        else:
            messages.success(request, f"{service} is in the catalog, owned by {service.owner}.")
            return redirect(service)
    no_team = not owner_choices.exists()
    return render(request, "catalog/service_form.html", {"form": form, "no_team": no_team})


@login_required
@require_http_methods(["GET", "POST"])
def service_edit(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can edit {service}.")
    form = ServiceForm(request.POST or None, instance=service)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.fields if name != "slug"}
        try:
            service = services.service_update(service=service, updated_by=request.user, **data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{service} was saved.")
            return redirect(service)
    service.refresh_from_db()  # the form's validation may have modified the instance in memory
    return render(request, "catalog/service_form.html", {"form": form, "service": service})


@login_required
@require_http_methods(["GET", "POST"])
def service_transfer(request: HttpRequest, slug: str) -> HttpResponse:
    """Hand a service to another team: platform admins move it at once; anyone else with the change permission
    proposes the handover, which a lead of the receiving team accepts or declines."""
    service = get_object_or_404(Service.objects.select_related("owner"), slug=slug)
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can transfer {service}.")
    form = TransferForm(request.POST or None)
    form.fields["new_owner"].queryset = form.fields["new_owner"].queryset.exclude(pk=service.owner_id)  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        new_owner = form.cleaned_data["new_owner"]
        try:
            if request.user.is_staff:  # platform admins transfer directly
                services.service_transfer(
                    service=service, new_owner=new_owner, transferred_by=request.user, note=form.cleaned_data["note"]
                )  # type: ignore[arg-type]
            else:  # anyone else proposes; a lead of the receiving team accepts (docs/reviews.md)
                from reviews import services as reviews

                handover = reviews.handover_propose(
                    service=service, to_team=new_owner, proposed_by=request.user, note=form.cleaned_data["note"]
                )  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            if request.user.is_staff:
                messages.success(request, f"{service} now belongs to {new_owner}.")
                return redirect(service)
            messages.success(request, f"Proposed: {service} moves to {new_owner} once one of its leads accepts.")
            return redirect(handover)
    return render(request, "catalog/service_transfer.html", {"form": form, "service": service})


@login_required
@require_POST
def dependency_add(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(Service, slug=slug)
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s dependencies.")
    form = DependencyForm(request.POST)
    if form.is_valid():
        try:
            services.dependency_add(
                source=service,
                target=form.cleaned_data["target"],
                kind=form.cleaned_data["kind"],
                added_by=request.user,
            )  # type: ignore[arg-type]
        except ValidationError as error:
            form.add_error("target", error.messages)
    if form.errors:
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
    else:
        messages.success(request, f"{service} now depends on {form.cleaned_data['target']}.")
    return redirect(service)


@login_required
@require_POST
def dependency_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    dependency = get_object_or_404(Dependency.objects.select_related("source", "target"), pk=pk, source__slug=slug)
    if not user_can(request.user, "catalog.change_service", dependency.source):
        raise PermissionDenied(f"Only {dependency.source.owner} can change {dependency.source}'s dependencies.")
    services.dependency_remove(dependency=dependency, removed_by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Removed the dependency on {dependency.target}.")
    return redirect(dependency.source)


@login_required
@require_GET
def system_list(request: HttpRequest) -> HttpResponse:
    systems = selectors.system_list_visible(user=request.user).order_by(Lower("name"))

    systems = systems.annotate(service_count=Count("services"))
    return render(request, "catalog/system_list.html", {"systems": systems})


@login_required
@require_GET
def system_detail(request: HttpRequest, slug: str) -> HttpResponse:
    system = get_object_or_404(selectors.system_list_visible(user=request.user), slug=slug)
    system_services = selectors.service_list_visible(user=request.user).filter(system=system).order_by(Lower("name"))
    return render(request, "catalog/system_detail.html", {"system": system, "services": system_services})


# The dependency pictures are fragments that their pages fetch once loaded: drawing a new one runs `dot` (~20 ms),
# which the page itself, and its text lists of the same dependencies, should not wait for.


@login_required
@require_GET
def service_graph(request: HttpRequest, slug: str) -> HttpResponse:
    """The picture of a service's dependency neighbourhood (empty when there is nothing to draw or no `dot`)."""
    service = get_object_or_404(selectors.service_list_visible(user=request.user), slug=slug)
    picture = _dependency_picture([service.pk], title=f"Dependencies of {service.name}")
    return render(request, "catalog/_graph.html", picture)


@login_required
@require_GET
def system_graph(request: HttpRequest, slug: str) -> HttpResponse:
    """The picture of the neighbourhood of a system's services."""
    system = get_object_or_404(selectors.system_list_visible(user=request.user), slug=slug)
    members = selectors.service_list_visible(user=request.user).filter(system=system).values_list("pk", flat=True)
    picture = _dependency_picture(list(members), title=f"Dependencies of {system.name}")
    return render(request, "catalog/_graph.html", picture)


def _dependency_picture(roots: list[int], *, title: str) -> dict[str, Any]:
    """The neighbourhood two hops around `roots` as an SVG (None without `dot`), and whether it was cut short."""
    neighbourhood = selectors.dependency_neighbourhood(roots=roots)
    return {
        "graph": graph.neighbourhood_svg(neighbourhood, title=title),
        "graph_truncated": neighbourhood.truncated,
        "graph_limit": selectors.NEIGHBOURHOOD_NODE_LIMIT,
    }


@login_required
@require_GET
def service_descriptor(request: HttpRequest, slug: str) -> HttpResponse:
    """The service's catalog-info.yaml as Runway would export it: what its source says, as Runway read it."""
    service = get_object_or_404(Service, slug=slug)
    files = export.catalog_export(services=Service.objects.filter(pk=service.pk))
    response = HttpResponse(files[f"{service.slug}/catalog-info.yaml"], content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{service.slug}-catalog-info.yaml"'
    return response


@login_required
@require_GET
def api_detail(request: HttpRequest, slug: str) -> HttpResponse:
    api = get_object_or_404(Api.objects.select_related("owner", "system"), slug=slug)
    context = {
        "api": api,
        "providers": api.providers.select_related("owner"),
        "consumers": api.consumers.select_related("owner"),
        "source": selectors.entity_source_for(obj=api),
    }
    return render(request, "catalog/api_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def import_create(request: HttpRequest) -> HttpResponse:
    """Upload a catalog archive (platform admins): a worker imports it and the next page shows its report."""
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins can import catalog sources: an import can move ownership.")
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["archive"]
        try:
            run = imports.import_request(
                data=upload.read(),
                filename=upload.name,
                source_name=form.cleaned_data["source"] or f"upload:{upload.name}",
                requested_by=request.user,
            )  # type: ignore[arg-type]
        except ValueError as error:
            form.add_error("archive", str(error))
        else:
            return redirect(run)
    runs = ImportRun.objects.select_related("created_by")[:10]
    return render(request, "catalog/import_form.html", {"form": form, "runs": runs})


@login_required
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An import's progress and report; polled by htmx until it finishes."""
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins can see catalog imports.")
    run = get_object_or_404(ImportRun.objects.select_related("created_by"), pk=pk)
    template = "catalog/import_detail.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#status"
    return render(request, template, {"run": run, "report": run.report})


@login_required
@require_GET
def export_download(request: HttpRequest) -> HttpResponse:
    """Download descriptors and docs as a zip: ?team=<slug> (its services), ?service=<slug>, or everything."""
    return export.zip_response(team=query_param(request.GET, "team"), service=query_param(request.GET, "service"))


def _golden_path_version(name: str | None) -> str | None:
    """The latest version of the golden path a service was made from, if that path is still offered."""
    if not name:
        return None
    from scaffolder import registry  # the scaffolder builds on the catalog, not the other way round

    path = registry.golden_path_get(name)
    return path.version if path else None
