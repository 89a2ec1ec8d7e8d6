"""Team pages: the directory, one team with its members and what it owns, and team management."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import selectors as catalog_selectors
from portal.filters import query_param
from portal.forms import apply_errors, validation_response
from teams import selectors, services
from teams.forms import MembershipForm, TeamForm
from teams.models import Membership, Team
from teams.permissions import team_can_manage


@login_required
@require_GET
def team_list(request: HttpRequest) -> HttpResponse:
    teams = selectors.team_list_visible(user=request.user).order_by(Lower("name"))
    query = query_param(request.GET, "q").strip()
    if query:
        teams = teams.filter(name__icontains=query)
    return render(request, "teams/team_list.html", {"teams": teams, "query": query})


@login_required
@require_GET
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_object_or_404(Team.objects.select_related("parent"), slug=slug)
    owned = catalog_selectors.service_list_visible(user=request.user).filter(owner=team).order_by(Lower("name"))
    can_manage = team_can_manage(request.user, team)
    context = {
        "team": team,
        "memberships": selectors.membership_list(team=team),
        "services": owned,
        "systems": team.systems.order_by(Lower("name")),
        "children": team.children.order_by(Lower("name")),
        "can_manage": can_manage,
        "membership_form": MembershipForm() if can_manage else None,
    }
    return render(request, "teams/team_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def team_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins can create teams.")
    form = TeamForm(request.POST or None)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(created_by=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            services.membership_set(
                team=team,
                user=request.user,
                role=Membership.Role.LEAD,  # type: ignore[arg-type]
                changed_by=request.user,
            )  # type: ignore[arg-type]
            messages.success(request, f"Team {team} was created.")
            return redirect(team)
    return render(request, "teams/team_form.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def team_edit(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_object_or_404(Team, slug=slug)
    if not team_can_manage(request.user, team):
        raise PermissionDenied(f"Only {team}'s leads and maintainers can edit it.")
    form = TeamForm(request.POST or None, instance=team)
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        return partial
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "slug"}
        try:
            services.team_update(team=team, updated_by=request.user, **data)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{team} was saved.")
            return redirect(team)
    return render(request, "teams/team_form.html", {"form": form, "team": team})


@login_required
@require_POST
def membership_add(request: HttpRequest, slug: str) -> HttpResponse:
    team = get_object_or_404(Team, slug=slug)
    if not team_can_manage(request.user, team):
        raise PermissionDenied(f"Only {team}'s leads and maintainers can change its members.")
    form = MembershipForm(request.POST)
    if form.is_valid():
        user = form.cleaned_data["username"]
        services.membership_set(team=team, user=user, role=form.cleaned_data["role"], changed_by=request.user)  # type: ignore[arg-type]
        messages.success(request, f"{user.get_username()} is now a {form.cleaned_data['role']} of {team}.")
    else:
        messages.error(request, " ".join(m for errors in form.errors.values() for m in errors))
    return redirect(team)


@login_required
@require_POST
def membership_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("team", "user"), pk=pk, team__slug=slug)
    if not team_can_manage(request.user, membership.team):
        raise PermissionDenied(f"Only {membership.team}'s leads and maintainers can change its members.")
    services.membership_remove(membership=membership, removed_by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"{membership.user.get_username()} left {membership.team}.")
    return redirect(membership.team)
