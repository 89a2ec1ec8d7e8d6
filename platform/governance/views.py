"""Governance pages, read-only: the deploy policies and their versions (policies change through policy files), and
the decisions they made."""

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from governance import selectors


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
