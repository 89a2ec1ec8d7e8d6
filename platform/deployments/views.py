"""Deployment pages: the board, one deployment live, the environments matrix, the deploy form and controls.

Reading is open to everyone signed in, like the catalog; every change goes through `deployments.services`, which
checks the deploy permission on the service. Live parts are htmx fragments polled while something is in flight.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from catalog import selectors as catalog_selectors
from catalog.permissions import user_can
from deployments import decommission as retire
from deployments import machine, policies, selectors, services
from deployments.filters import DeploymentFilterSet
from deployments.forms import DecommissionForm, DeployForm
from deployments.models import Decommission, Deployment, Environment, Strategy
from portal.errors import Conflict
from portal.filters import query_param
from portal.forms import apply_errors
from teams.models import Team


def _fragment(request: HttpRequest, template: str, name: str) -> str:
    """The named partial for htmx polls, the whole page otherwise."""
    return f"{template}#{name}" if request.htmx and not request.htmx.boosted else template  # type: ignore[attr-defined]


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    """Everything in flight with live progress, and what finished, a page at a time; filtered by service,
    environment, state or team. The live part polls with the same query, so it keeps its filters and page."""
    filterset = DeploymentFilterSet(request.GET or None, queryset=selectors.deployment_list_visible(user=request.user))
    context = selectors.board(deployments=filterset.qs, page=request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context |= {
        "filterset": filterset,
        "filtered": bool(filterset.is_bound and filterset.form.has_changed()),
        "query": request.GET.urlencode(),
        "page_query": f"{params.urlencode()}&" if params else "",
    }
    if not request.htmx or request.htmx.boosted:  # type: ignore[attr-defined]
        context["service_slugs"] = selectors.board_service_slugs()
    response = render(request, _fragment(request, "deployments/board.html", "board"), context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _deployment(pk: int) -> Deployment:
    try:
        return selectors.deployment_get(pk)
    except Deployment.DoesNotExist:
        raise Http404("No such deployment.") from None


@login_required
@require_GET
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _deployment(pk)
    events = selectors.timeline(deployment)
    points = selectors.analyses(events, plan=deployment.plan)
    context = {
        "deployment": deployment,
        "events": events,
        "points": points,
        "latency_chart": selectors.chart(points, metric="p95") if points else None,
        "error_chart": selectors.chart(points, metric="errors") if points else None,
        "can_deploy": user_can(request.user, "catalog.deploy_service", deployment.service),
        "approval": policies.approval_for(deployment, user=request.user),
        "confirm": {action: _question(deployment, action) for action in CONFIRMED},
        "break_glass_question": break_glass_question(deployment),
    }
    return render(request, _fragment(request, "deployments/detail.html", "live"), context)


CONTROLS: dict[str, Callable[..., Deployment]] = {
    "promote": services.deployment_promote,
    "abort": services.deployment_abort,
    "pause": lambda **kw: services.deployment_pause(paused=True, **kw),
    "resume": lambda **kw: services.deployment_pause(paused=False, **kw),
}
DONE = {
    "promote": "Promoting now: the remaining steps are skipped.",
    "abort": "Aborted.",
    "pause": "Paused after the current step.",
    "resume": "Resumed.",
}
# Controls that cannot be taken back act only on a post that says it was confirmed: the page's buttons ask first
# (htmx's hx-confirm) and send `confirmed=yes`; without JavaScript the post lands on a page that asks instead.
CONFIRMED = ("promote", "abort")


def _question(deployment: Deployment, action: str) -> str:
    """What a person confirms before an irreversible control: the same words in the dialog and on the page."""
    release, environment = deployment.release.version, deployment.environment
    if action == "promote":
        return (
            f"Promote {release} to {environment} now? The remaining steps and their analyses are skipped, and it "
            "takes all traffic."
        )
    if deployment.state in machine.CANCELLABLE:
        return f"Cancel deployment #{deployment.pk} of {release} to {environment}? It has not started rolling out."
    previous = deployment.previous_release
    back_to = f"roll back to {previous.version}" if previous else "roll back (its replicas are stopped)"
    return (
        f"Abort deployment #{deployment.pk} of {release} to {environment} and {back_to}? "
        "Deploying it again starts from the first step."
    )


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirmed") == "yes"


def _ask(request: HttpRequest, *, question: str, act: str, back: Any, back_label: str) -> HttpResponse:
    """The confirmation step for a post that was not confirmed (no JavaScript, so no dialog): nothing is done yet."""
    title, _, detail = question.partition("? ")
    context = {
        "title": f"{title}?" if detail else title,
        "detail": detail,
        "act": act,
        "action_url": request.path,
        "back": back,
        "back_label": back_label,
    }
    return render(request, "deployments/confirm.html", context)


def _back_to(request: HttpRequest, target: Any) -> HttpResponse:
    """After a control: a whole page load (so its message shows), for htmx and plain posts alike."""
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(target.get_absolute_url())
    return redirect(target)


@login_required
@require_POST
def control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Promote now, pause, resume or abort (with rollback); promote and abort only once confirmed."""
    deployment = _deployment(pk)
    if action not in CONTROLS:
        raise Http404("No such action.")
    if action in CONFIRMED and not _confirmed(request):
        if not user_can(request.user, "catalog.deploy_service", deployment.service):
            raise PermissionDenied(f"Only {deployment.service.owner} and platform admins can control this deployment.")
        act = "Promote now" if action == "promote" else _abort_label(deployment)
        return _ask(request, question=_question(deployment, action), act=act, back=deployment, back_label="Go back")
    try:
        CONTROLS[action](deployment=deployment, user=request.user)
    except Conflict as conflict:
        messages.error(request, conflict.message)
    else:
        messages.success(request, DONE[action])
    return _back_to(request, deployment)


def _abort_label(deployment: Deployment) -> str:
    return "Cancel" if deployment.state in machine.CANCELLABLE else "Abort and roll back"


@login_required
@require_POST
def redeploy(request: HttpRequest, pk: int) -> HttpResponse:
    """Deploy this deployment's release again, as a new deployment (the way to roll back to it)."""
    deployment = _deployment(pk)
    try:
        again = services.deployment_redeploy(deployment=deployment, user=request.user)
    except Conflict as conflict:
        messages.error(request, conflict.message)
        return redirect(deployment)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(deployment)
    return redirect(again)


def break_glass_question(deployment: Deployment) -> str:
    return (
        f"Break glass for {deployment.release.version} to {deployment.environment}? This asks a platform admin to "
        "approve an emergency deploy that skips what the policies allow for break-glass (a freeze); it is flagged "
        "as break-glass on its timeline, in the audit log and in the change evidence."
    )


@login_required
@require_POST
def break_glass(request: HttpRequest, pk: int) -> HttpResponse:
    """An owner asks for an emergency deploy of this deployment's release, with a reason; only once confirmed."""
    deployment = _deployment(pk)
    if not user_can(request.user, "catalog.deploy_service", deployment.service):
        raise PermissionDenied(f"Only {deployment.service.owner} and platform admins can ask for a break-glass deploy.")
    reason = request.POST.get("reason", "")
    if not _confirmed(request):
        title, _, detail = break_glass_question(deployment).partition("? ")
        context = {"title": f"{title}?", "detail": detail, "deployment": deployment, "reason": reason}
        return render(request, "deployments/break_glass_confirm.html", context)
    try:
        emergency = services.deployment_break_glass(deployment=deployment, user=request.user, reason=reason)
    except Conflict as conflict:
        messages.error(request, conflict.message)
        return _back_to(request, deployment)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _back_to(request, deployment)
    messages.warning(request, "Break-glass requested: it waits for a platform admin's approval.")
    return _back_to(request, emergency)


@login_required
@require_http_methods(["GET", "POST"])
def deploy(request: HttpRequest, slug: str) -> HttpResponse:
    service = get_object_or_404(catalog_selectors.service_list_visible(user=request.user), slug=slug)
    if not user_can(request.user, "catalog.deploy_service", service):
        raise PermissionDenied(
            f"Only {service.owner} (the owners of {service.slug}) and platform admins may deploy it."
        )
    environments = Environment.objects.filter(deploy_targets__service=service).order_by("order")
    form = DeployForm(request.POST or None, environments=environments, initial=_initial(request, environments))
    conflict: Conflict | None = None
    if request.method == "POST" and form.is_valid():
        try:
            deployment = services.deployment_request(
                service=service,
                environment=form.cleaned_data["environment"],
                user=request.user,  # type: ignore[arg-type]
                ref=form.cleaned_data["ref"],
                strategy=form.cleaned_data["strategy"],
            )
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as error:
            conflict = error
        else:
            return redirect(deployment)
    context: dict[str, Any] = {
        "service": service,
        "form": form,
        "conflict": conflict,
        "refs": services.repository_refs(service=service),
        "pick_query": _pick_query(form, environments),
        **selectors.service_summary(service=service),
    }
    return render(request, "deployments/deploy.html", context, status=409 if conflict else 200)


def _pick_query(form: DeployForm, environments: Any) -> str:
    """The form's environment and strategy as a query string, for the links that pick a tag or commit: without
    JavaScript a pick reloads the form, and it must not forget where the person meant to deploy."""
    chosen = form["environment"].value()
    slug = next((e.slug for e in environments if str(e.pk) == str(getattr(chosen, "pk", chosen))), "")
    strategy = form["strategy"].value() or ""
    query = urlencode({key: value for key, value in (("environment", slug), ("strategy", strategy)) if value})
    return f"{query}&" if query else ""


def _initial(request: HttpRequest, environments: Any) -> dict[str, Any]:
    wanted = query_param(request.GET, "environment")
    environment = environments.filter(slug=wanted).first() if wanted else environments.first()
    strategy = request.GET.get("strategy", "")
    return {
        "environment": environment,
        "ref": request.GET.get("ref", "")[:100],
        "strategy": strategy if strategy in Strategy.values else "",
    }


@login_required
@require_GET
def environments(request: HttpRequest) -> HttpResponse:
    """The environments matrix: which version of each service runs where, and what is on its way."""
    owner = query_param(request.GET, "owner")
    q = query_param(request.GET, "q").strip()[:100]
    page = request.GET.get("page", "1")
    context = selectors.matrix(owner_slug=owner, q=q, page=int(page) if page.isdigit() else 1)
    query = urlencode({key: value for key, value in (("q", q), ("owner", owner)) if value})
    context |= {
        "owner": owner,
        "q": q,
        "teams": Team.objects.order_by("name").only("slug", "name"),
        "page_query": f"{query}&" if query else "",
    }
    return render(request, _fragment(request, "deployments/environments.html", "matrix"), context)


# Decommissioning


@login_required
@require_GET
def decommissions(request: HttpRequest) -> HttpResponse:
    """Retirements awaiting approval or running, and those finished, a page at a time, latest first."""
    rows = Decommission.objects.select_related("service", "service__owner", "requested_by", "approved_by")
    closed = rows.filter(state__in=["done", "cancelled"]).order_by(F("finished_at").desc(nulls_last=True), "-id")
    page = Paginator(closed, DECOMMISSIONS_PAGE).get_page(request.GET.get("page"))
    context = {
        "open": list(rows.exclude(state__in=["done", "cancelled"]).order_by("created_at")),
        "closed": page.object_list,
        "page": page,
        "page_query": "",
    }
    return render(request, "deployments/decommissions.html", context)


DECOMMISSIONS_PAGE = 25


@login_required
@require_http_methods(["GET", "POST"])
def decommission_new(request: HttpRequest, slug: str) -> HttpResponse:
    """Ask to retire a service: the checks are on the page before the request is made, and again when it is."""
    service = get_object_or_404(catalog_selectors.service_list_visible(user=request.user), slug=slug)
    if not retire.can_request(request.user, service):
        raise PermissionDenied(f"Only {service.owner} (the owners of {service.slug}) and admins may retire it.")
    existing = retire.open_decommission(service)
    if existing is not None:
        messages.info(request, f"{service.slug} already has decommission #{existing.pk}.")
        return redirect(existing)
    form = DecommissionForm(request.POST or None, initial={"planned_for": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        try:
            created = retire.decommission_request(
                service=service,
                user=request.user,  # type: ignore[arg-type]
                reason=form.cleaned_data["reason"],
                planned_for=form.cleaned_data["planned_for"],
            )
        except ValidationError as error:
            apply_errors(form, error)
        except Conflict as conflict:
            messages.error(request, conflict.message)
        else:
            messages.success(request, "Requested. A lead of the team (or a platform admin) approves it next.")
            return redirect(created)
    context = {"service": service, "form": form, "checks": retire.checks(service)}
    return render(request, "deployments/decommission_new.html", context, status=400 if form.errors else 200)


def _decommission(pk: int) -> Decommission:
    found = (
        Decommission.objects.select_related("service", "service__owner", "requested_by", "approved_by")
        .filter(pk=pk)
        .first()
    )
    if found is None:
        raise Http404("No such decommission.")
    return found


@login_required
@require_GET
def decommission_detail(request: HttpRequest, pk: int) -> HttpResponse:
    decommission = _decommission(pk)
    events = list(decommission.events.all())
    context = {
        "decommission": decommission,
        "events": events,
        "approved_as": _approved_as(decommission, events),
        "steps": DECOMMISSION_STEP_LABELS,
        "can_approve": decommission.state == "requested" and retire.can_approve(request.user, decommission),
        "can_operate": retire.can_operate(request.user, decommission),
        "approve_question": _approval_question(decommission),
        "checks": retire.checks(decommission.service) if decommission.state == "requested" else None,
        "now": timezone.now(),
    }
    return render(request, _fragment(request, "deployments/decommission.html", "live"), context)


def _approved_as(decommission: Decommission, events: list[Any]) -> str:
    """What the approver was when they approved (recorded then), else what they are now."""
    if decommission.approved_by is None:
        return ""
    for event in reversed(events):
        if event.step == "approved" and event.from_state == "requested" and event.data.get("approved_as"):
            return str(event.data["approved_as"])
    return retire.approver_role(decommission.approved_by, decommission)


DECOMMISSION_STEP_LABELS = [
    "Check again that nothing depends on it",
    "Stop it in every environment",
    "Archive its repository",
    "Revoke permissions on it",
]
DECOMMISSION_CONTROLS: dict[str, tuple[Callable[..., Decommission], str]] = {
    "approve": (retire.decommission_approve, "Approved."),
    "cancel": (retire.decommission_cancel, "Cancelled; the service is back as it was."),
    "resume": (retire.decommission_resume, "Resumed from the step that failed."),
}


def _approval_question(decommission: Decommission) -> str:
    """What an approver confirms: the work it starts and that it cannot be undone."""
    service = decommission.service
    when = "now" if decommission.planned_for <= timezone.localdate() else f"on {decommission.planned_for:%-d %b %Y}"
    return (
        f"Approve decommissioning {service.slug}? It is stopped in every environment {when}, its repository is "
        "archived and every permission on it is revoked. This cannot be undone."
    )


@login_required
@require_POST
def decommission_control(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    decommission = _decommission(pk)
    if action not in DECOMMISSION_CONTROLS:
        raise Http404("No such action.")
    if action == "approve" and not _confirmed(request):
        if not retire.can_approve(request.user, decommission):
            raise PermissionDenied("Only a lead of the owning team or a platform admin may approve this.")
        question = _approval_question(decommission)
        return _ask(request, question=question, act="Approve", back=decommission, back_label="Go back")
    call, done = DECOMMISSION_CONTROLS[action]
    try:
        call(decommission=decommission, user=request.user)
    except (Conflict, ValidationError) as error:
        messages.error(request, error.message if isinstance(error, Conflict) else " ".join(error.messages))
    else:
        messages.success(request, done)
    return _back_to(request, decommission)
