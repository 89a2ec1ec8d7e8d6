"""Governance pages, read-only: the deploy policies and their versions (policies change through policy files), and
the decisions they made."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from governance import selectors, services
from governance.forms import PolicyForm
from governance.models import Policy
from portal.forms import apply_errors, validation_response


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
    return render(request, "governance/policy_form.html", {"form": form, "policy": policy})
