"""Runbook and ADR pages: rendered docs with a table of contents, history and diffs, editing with live preview."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog.models import Service, System
from catalog.permissions import user_can
from portal.forms import apply_errors, validation_response
from techdocs import markdown, selectors, services
from techdocs.forms import AdrForm, RunbookForm
from techdocs.markdown import split_front_matter
from techdocs.models import ADR, Runbook
from techdocs.permissions import docs_require_change


def _service(slug: str) -> Service:
    return get_object_or_404(Service.objects.select_related("owner"), slug=slug)


def _refuse_imported(request: HttpRequest, service: Service, path: str) -> HttpResponse | None:
    if path:
        messages.error(
            request,
            f"This document comes from {path} in {service}'s catalog source; "
            "edit the file there, or the next sync would undo the change.",
        )
        return redirect(service)
    return None


@login_required
@require_GET
def runbook_detail(request: HttpRequest, service: str, slug: str) -> HttpResponse:
    runbook = get_object_or_404(Runbook.objects.select_related("service__owner"), service__slug=service, slug=slug)
    rendered = selectors.markdown_render(text=runbook.body)
    context = {
        "runbook": runbook,
        "service": runbook.service,
        "rendered": rendered,
        "versions": selectors.runbook_versions(runbook=runbook)[:20],
        "can_change": user_can(request.user, "catalog.change_service", runbook.service),
    }
    return render(request, "techdocs/runbook_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def runbook_edit(request: HttpRequest, service: str, slug: str | None = None) -> HttpResponse:
    """Create (no slug) or edit a runbook; every save keeps the previous version."""
    owner = _service(service)
    docs_require_change(user=request.user, service=owner)
    runbook = get_object_or_404(Runbook, service=owner, slug=slug) if slug else None
    if runbook is not None and (refusal := _refuse_imported(request, owner, runbook.source_path)):
        return refusal
    form = RunbookForm(request.POST or None, instance=runbook)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if runbook is None:
                runbook = services.runbook_create(
                    service=owner,
                    title=data["title"],
                    body=data["body"],
                    created_by=request.user,  # type: ignore[arg-type]
                    review_interval_days=data["review_interval_days"],
                )
            else:
                runbook = services.runbook_update(
                    runbook=runbook,
                    updated_by=request.user,  # type: ignore[arg-type]
                    title=data["title"],
                    body=data["body"],
                    note=data["note"],
                    review_interval_days=data["review_interval_days"],
                )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Saved {runbook.title} (version {runbook.version}).")
            return redirect(runbook)
    return render(request, "techdocs/runbook_form.html", {"form": form, "service": owner, "runbook": runbook})


@login_required
@require_POST
def markdown_preview(request: HttpRequest) -> HttpResponse:
    """The editor's live preview: the posted Markdown rendered exactly as the page will show it."""
    text = request.POST.get("body", "")
    try:
        # Checked before front matter is split off and before anything is cached or rendered: the editor shows
        # what saving would refuse, instead of a rendering.
        markdown.limits_check(text=text)
        _meta, body = split_front_matter(text=text)
    except markdown.LimitError as error:
        return render(request, "techdocs/_preview.html", {"error": str(error)})
    except ValueError as error:
        # The body still shows, under the front matter's own mistake, which an import would report for this file.
        body, warning = text, str(error)
    else:
        warning = ""
    context = {"rendered": selectors.markdown_render(text=body), "warning": warning}
    return render(request, "techdocs/_preview.html", context)


@login_required
@require_POST
def runbook_review(request: HttpRequest, service: str, slug: str) -> HttpResponse:
    runbook = get_object_or_404(Runbook.objects.select_related("service__owner"), service__slug=service, slug=slug)
    docs_require_change(user=request.user, service=runbook.service)
    services.runbook_mark_reviewed(runbook=runbook, reviewed_by=request.user)  # type: ignore[arg-type]
    messages.success(
        request, f"Marked {runbook.title} as reviewed; next review due in {runbook.review_interval_days} days."
    )
    return redirect(runbook)


@login_required
@require_GET
def runbook_history(request: HttpRequest, service: str, slug: str) -> HttpResponse:
    """Every version of a runbook, and the diff between any two of them (?a=<older>&b=<newer>)."""
    runbook = get_object_or_404(Runbook.objects.select_related("service"), service__slug=service, slug=slug)
    versions = list(selectors.runbook_versions(runbook=runbook))
    by_number = {v.number: v for v in versions}
    diff, older, newer = None, None, None
    if len(versions) > 1:
        try:
            a = int(request.GET.get("a", versions[1].number))
            b = int(request.GET.get("b", versions[0].number))
        except ValueError as error:
            raise Http404("Versions are numbers.") from error
        older, newer = by_number.get(min(a, b)), by_number.get(max(a, b))
        if older is None or newer is None:
            raise Http404("No such version.")
        diff = selectors.version_diff(older=older, newer=newer)
    return render(
        request,
        "techdocs/runbook_history.html",
        {
            "runbook": runbook,
            "service": runbook.service,
            "versions": versions,
            "diff": diff,
            "older": older,
            "newer": newer,
        },
    )


def _adr_page(request: HttpRequest, adr: ADR) -> HttpResponse:
    text = selectors.adr_markdown(adr=adr)
    return render(
        request,
        "techdocs/adr_detail.html",
        {
            "adr": adr,
            "service": adr.service,
            "system": adr.system,
            "rendered": selectors.markdown_render(text=text),
            "can_change": adr.service is not None and user_can(request.user, "catalog.change_service", adr.service),
        },
    )


@login_required
@require_GET
def adr_detail(request: HttpRequest, service: str, number: int) -> HttpResponse:
    owner = _service(service)
    try:
        adr = selectors.adr_get(service=owner, number=number)
    except ADR.DoesNotExist as error:
        raise Http404(f"{owner} has no ADR {number}.") from error
    return _adr_page(request, adr)


@login_required
@require_GET
def system_adr_detail(request: HttpRequest, system: str, number: int) -> HttpResponse:
    adr = get_object_or_404(
        ADR.objects.select_related("system", "superseded_by").prefetch_related("supersedes"),
        system=get_object_or_404(System, slug=system),
        number=number,
    )
    return _adr_page(request, adr)


@login_required
@require_http_methods(["GET", "POST"])
def adr_edit(request: HttpRequest, service: str, number: int | None = None) -> HttpResponse:
    """Record a new decision (next free number) or edit one written in Runway."""
    owner = _service(service)
    docs_require_change(user=request.user, service=owner)
    adr = get_object_or_404(ADR, service=owner, number=number) if number else None
    if adr is not None and (refusal := _refuse_imported(request, owner, adr.source_path)):
        return refusal
    candidates = owner.adrs.exclude(status=ADR.Status.SUPERSEDED) if adr is None else None
    form = AdrForm(request.POST or None, instance=adr, candidates=candidates)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        supersedes = data.pop("supersedes", None)
        try:
            if adr is None:
                adr = services.adr_create(
                    created_by=request.user,
                    service=owner,  # type: ignore[arg-type]
                    supersedes=supersedes,
                    **data,
                )
            else:
                adr = services.adr_update(adr=adr, updated_by=request.user, **data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Saved {adr}.")
            return redirect(adr)
    return render(request, "techdocs/adr_form.html", {"form": form, "service": owner, "adr": adr})
