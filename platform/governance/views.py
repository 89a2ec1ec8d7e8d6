"""Governance pages: the deploy policies and their versions, the decisions they made, the policy editor (platform
admins) and the approvals inbox, where eligible people approve or reject deployments a policy parked."""

import json
from typing import Any

import cel
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from catalog import selectors as catalog_selectors
from catalog.models import Service
from catalog.permissions import user_can
from deployments import services as deployment_services
from deployments.forms import DeployForm
from deployments.models import DeployTarget, Environment, Strategy
from governance import approvals, evidence, expressions, facts, freezes, selectors, services
from governance.forms import EvidenceForm, FreezeWindowForm, PolicyForm
from governance.models import ApprovalRequest, Policy, PolicyVersion, content_of
from portal.errors import Conflict
from portal.forms import apply_errors, validation_response

CALENDAR_WEEKS = 8


@login_required
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = list(selectors.policy_list())
    return render(request, "governance/policy_list.html", {"policies": policies})


@login_required
@require_GET
def policy_detail(request: HttpRequest, name: str) -> HttpResponse:
    policy = get_object_or_404(selectors.policy_list(), name=name)
    versions = selectors.policy_versions(policy=policy)
    return render(request, "governance/policy_detail.html", {"policy": policy, "versions": versions})


@login_required
@require_GET
def decision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    decision = get_object_or_404(selectors.decision_list(), pk=pk)
    return render(
        request,
        "governance/decision_detail.html",
        {"decision": decision, "facts_text": json.dumps(decision.facts, indent=2, sort_keys=False)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def policy_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """Write a new policy or a new version of one; platform admins only. A policy synced from policy files is
    changed in its file: an edit here would be undone by the next sync."""
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins may create or change deploy policies.")
    policy = get_object_or_404(selectors.policy_list(), name=name) if name else None
    if policy is not None and policy.source_path:
        messages.error(request, f"{policy.name} comes from the policy file {policy.source_path}; change it there.")
        return redirect(policy)
    form = PolicyForm(request.POST or None, policy=policy)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        if policy is not None:
            data["name"] = policy.name
        try:
            saved: Policy = services.policy_save(user=request.user, **data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Saved {saved.name} (version {saved.current.number if saved.current else 0}).")
            return redirect(saved)
    context = {"form": form, "policy": policy, "environments": Environment.objects.order_by("order", "name")}
    return render(request, "governance/policy_form.html", {**context, "strategies": Strategy.choices})


@login_required
@require_http_methods(["POST"])
def policy_try(request: HttpRequest) -> HttpResponse:
    """The editor's preview: what the policy as typed would say about a service's change now. Saves nothing."""
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins may create or change deploy policies.")
    post = request.POST
    context: dict[str, object] = {}
    service = Service.objects.filter(slug=post.get("try_service", "").strip()).first()
    environment = Environment.objects.filter(slug=post.get("try_environment", "")).first()
    strategy = post.get("try_strategy", "")
    required = post.get("approvals_required", "1").strip()
    content = content_of(
        match=post.get("match", "").strip() or "true",
        rule=post.get("rule", ""),
        message=post.get("message", ""),
        message_expression=post.get("message_expression", ""),
        action=post.get("action", ""),
        approvers=post.get("approvers", ""),
        approver_team=post.get("approver_team", "").strip(),
        approvals_required=int(required) if required.isdecimal() and len(required) < 3 else 0,
    )
    if service is None or environment is None or strategy not in Strategy.values:
        context["problem"] = "Name a service in the catalog, an environment and a strategy to try the policy on."
    else:
        try:
            expressions.version_check(**content)
        except ValidationError:
            context["problem"] = "Fix the expressions above first."
        else:
            change = facts.Change(
                service=service, environment=environment, strategy=strategy, version="preview", requester=request.user
            )
            trial = PolicyVersion(policy=Policy(name=post.get("name", "") or "this policy"), number=0, **content)
            context["judged"] = expressions.policy_evaluate(trial, cel.Context(facts.facts_build(change=change)))
            context["service"], context["environment"] = service, environment
    return render(request, "governance/policy_form.html#try-result", context)


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins may create or change freeze windows.")


@login_required
@require_GET
def freeze_calendar(request: HttpRequest) -> HttpResponse:
    """The next 8 weeks on the organisation's clock, each day with the freezes that touch it, and every window."""
    time_zone = settings.GOVERNANCE["ORG_TIME_ZONE"]
    today = timezone.now().astimezone(freezes.zone(time_zone)).date()
    weeks = selectors.freeze_calendar(first=today, weeks=CALENDAR_WEEKS, time_zone=time_zone)
    windows = selectors.freeze_window_list()
    return render(
        request,
        "governance/freeze_calendar.html",
        {"weeks": weeks, "windows": windows, "time_zone": time_zone, "calendar_weeks": CALENDAR_WEEKS},
    )


@login_required
@require_http_methods(["GET", "POST"])
def freeze_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    _require_staff(request)
    window = get_object_or_404(selectors.freeze_window_list(), pk=pk) if pk else None
    form = FreezeWindowForm(request.POST or None, window=window)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.freeze_window_save(user=request.user, window=window, **form.cleaned_data)
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Saved the freeze window {saved.name}.")
            return redirect("governance:freeze-calendar")
    return render(request, "governance/freeze_form.html", {"form": form, "window": window})


@login_required
@require_http_methods(["POST"])
def freeze_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _require_staff(request)
    window = get_object_or_404(selectors.freeze_window_list(), pk=pk)
    if request.POST.get("confirmed") != "yes":  # no JavaScript, so no dialog: ask on a page first
        return render(request, "governance/freeze_delete.html", {"window": window})
    services.freeze_window_delete(user=request.user, window=window)
    messages.success(request, f"Deleted the freeze window {window.name}.")
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(reverse("governance:freeze-calendar"))
    return redirect("governance:freeze-calendar")


def _evidence(request: HttpRequest) -> tuple[EvidenceForm, evidence.Report | None]:
    """The form and the report it asks for (None while the form has errors)."""
    form = EvidenceForm(request.GET or None, user=request.user)
    if form.is_bound and not form.is_valid():
        return form, None
    data = form.cleaned_data if form.is_bound else {}
    try:
        report = evidence.report_build(
            user=request.user,
            service=data.get("service", ""),
            team=data.get("team", ""),
            since=data.get("since"),
            until=data.get("until"),
        )
    except ValidationError as error:
        apply_errors(form, error)
        return form, None
    return form, report


@login_required
@require_GET
def evidence_report(request: HttpRequest) -> HttpResponse:
    """Every production change in a period with its requester, approvals, policy decisions and outcome."""
    form, report = _evidence(request)
    context: dict[str, Any] = {"form": form, "report": report}
    if report is not None:
        query = request.GET.copy()
        query["since"], query["until"] = report.since.isoformat(), report.until.isoformat()
        context["query"] = query.urlencode()
        context["denied"] = sum(1 for row in report.rows if row["verdict"] == "deny")
        context["break_glass"] = sum(1 for row in report.rows if row["break_glass"])
    template = "governance/evidence.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#evidence-results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def evidence_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The same report as a CSV or JSON download."""
    form, report = _evidence(request)
    if report is None:
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    name = f"runway-evidence-{report.since:%Y%m%d}-{report.until:%Y%m%d}"
    if fmt == "csv":
        response: HttpResponse = StreamingHttpResponse(evidence.csv_lines(report.rows), content_type="text/csv")
    else:
        response = JsonResponse(report.document(), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@login_required
@require_GET
def approval_list(request: HttpRequest) -> HttpResponse:
    """The approvals inbox: what waits for the signed-in person's answer, what they asked for, what was decided."""
    return render(request, "governance/approval_list.html", selectors.approval_inbox(user=request.user, others=True))


@login_required
@require_GET
def approval_count(request: HttpRequest) -> HttpResponse:
    """The navigation's link to the inbox with how many requests wait for this person; empty when none do."""
    waiting = selectors.approvals_waiting_count(user=request.user)
    return render(request, "governance/_approval_count.html", {"waiting": waiting})


def approval_question(approval: ApprovalRequest, verdict: str) -> str:
    """What a person confirms before answering: the same words in the dialog and on the confirmation page."""
    deployment = approval.deployment
    what = f"{deployment.service.slug} {deployment.release.version} to {deployment.environment.name}"
    if verdict == "reject":
        return f"Reject deployment #{deployment.pk} of {what}? It is cancelled, and your reason is on its timeline."
    if approval.kind == ApprovalRequest.Kind.BREAK_GLASS:
        return (
            f"Approve the break-glass deploy #{deployment.pk} of {what}? It is an emergency change: it skips what "
            "the policies allow for break-glass (a freeze), and your name is on it."
        )
    return f"Approve deployment #{deployment.pk} of {what}? With enough approvals it rolls out at once."


@login_required
@require_POST
def deploy_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """The deploy form's live dry run: what each policy will say about the change as the form stands (htmx posts the
    form at each change). Saves nothing; for those who may deploy the service."""
    service = get_object_or_404(catalog_selectors.service_list_visible(user=request.user), slug=slug)
    if not user_can(request.user, "catalog.deploy_service", service):
        raise PermissionDenied(f"Only {service.owner} and platform admins may deploy {service.slug}.")
    environments = Environment.objects.filter(deploy_targets__service=service).order_by("order")
    form = DeployForm(request.POST, environments=environments)
    context: dict[str, Any] = {"service": service}
    form.is_valid()
    environment = form.cleaned_data.get("environment")
    ref = (form.cleaned_data.get("ref") or "").strip()
    if environment is None:
        context["problem"] = "Choose an environment to see what the deploy policies will say."
    elif not request.POST.get("ref", "").strip():
        context["problem"] = "Choose a commit or tag to see what the deploy policies will say."
    elif "ref" in form.errors:
        context["problem"] = " ".join(form.errors["ref"])
    else:
        try:
            version, sha, _committed = deployment_services.ref_resolve(service=service, ref=ref)
        except ValidationError as error:
            context["problem"] = " ".join(error.messages)
        else:
            target = DeployTarget.objects.filter(service=service, environment=environment).only("strategy").first()
            strategy = form.cleaned_data.get("strategy") or (target.strategy if target else Strategy.ROLLING)
            context["evaluation"] = services.policy_preview(
                service=service, environment=environment, version=version, commit_sha=sha, strategy=strategy,
                user=request.user,
            )  # fmt: skip
            context.update(environment=environment, version=version, strategy=strategy)
    return render(request, "governance/_deploy_preview.html", context)


@login_required
@require_POST
def approval_answer(request: HttpRequest, pk: int, verdict: str) -> HttpResponse:
    """Approve, or reject with a reason; only once confirmed (hx-confirm sends `confirmed=yes`, or a confirmation
    page asks without JavaScript). Who may answer is checked by governance.approvals."""
    if verdict not in ("approve", "reject"):
        raise Http404("No such answer.")
    approval = get_object_or_404(selectors.approval_requests(), pk=pk)
    deployment = approval.deployment
    reason = request.POST.get("reason", "")
    if request.POST.get("confirmed") != "yes":
        if not (approval.is_open and selectors.approval_for(deployment=deployment, user=request.user).can_answer):  # type: ignore[union-attr]
            raise PermissionDenied("You may not answer this approval request.")
        title, _, detail = approval_question(approval, verdict).partition("? ")
        context = {"title": f"{title}?", "detail": detail, "approval": approval, "verdict": verdict, "reason": reason}
        return render(request, "governance/approval_confirm.html", context)
    try:
        if verdict == "approve":
            approvals.approval_approve(request_id=approval.pk, user=request.user)
            messages.success(request, f"You approved deployment #{deployment.pk}.")
        else:
            approvals.approval_reject(request_id=approval.pk, user=request.user, reason=reason)
            messages.success(request, f"You rejected deployment #{deployment.pk}; it is cancelled.")
    except Conflict as conflict:
        messages.error(request, conflict.message)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    inbox = request.POST.get("next") == "inbox"
    url = reverse("governance:approval-list") if inbox else deployment.get_absolute_url()
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(url)
    return redirect(url)
