"""Governance pages: the deploy policies and their versions, read-only (policies change through policy files)."""

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
