"""Scorecard pages: the list, a scorecard (services by level, failing rules, trend), the admins' editor."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from portal import charts
from portal.filters import query_param
from portal.forms import apply_errors
from scorecards import present, selectors, services, tasks
from scorecards.forms import InitiativeForm, ScorecardForm
from scorecards.models import Scorecard
from teams.models import Team


def _require_admin(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins may create or change scorecards.")


def _colour(levels: list[selectors.LevelCount]) -> list[selectors.LevelCount]:
    for level in levels:
        level.colour = present.colour(level.rank)  # type: ignore[attr-defined]
    return levels


@login_required
@require_GET
def scorecard_list(request: HttpRequest) -> HttpResponse:
    scorecards = list(selectors.scorecard_list())
    counts = selectors.level_counts(scorecards)
    for levels in counts.values():
        _colour(levels)
    rows = [{"scorecard": card, "levels": counts[card.pk], "total": sum(c.services for c in counts[card.pk])}
            for card in scorecards]  # fmt: skip
    return render(request, "scorecards/scorecard_list.html", {"rows": rows})


@login_required
@require_GET
def scorecard_detail(request: HttpRequest, name: str) -> HttpResponse:
    scorecard = get_object_or_404(selectors.scorecard_list(), name=name)
    levels = _colour(selectors.level_counts([scorecard])[scorecard.pk])
    rank_text = query_param(request.GET, "level")
    rank = (
        int(rank_text)
        if rank_text.isascii() and rank_text.isdigit() and int(rank_text) <= len(scorecard.levels)
        else None
    )
    team = query_param(request.GET, "team")[:100]
    scores = selectors.scores_for_scorecard(scorecard=scorecard, rank=rank, team=team)
    page = Paginator(scores, 50).get_page(query_param(request.GET, "page"))
    trend = selectors.trend(scorecard=scorecard)
    context = {
        "scorecard": scorecard,
        "levels": levels,
        "total": sum(level.services for level in levels),
        "rules": selectors.rule_summary(scorecard),
        "page": page,
        "rank": rank,
        "team": team,
        "teams": Team.objects.filter(services__scores__scorecard=scorecard).distinct().order_by("name"),
        "chart": present.trend_chart(trend, title=f"{scorecard.title}: services by level, day by day"),
    }
    template = "scorecards/scorecard_detail.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#services"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])  # one URL, two bodies
    return response


@login_required
@require_http_methods(["GET", "POST"])
def scorecard_edit(request: HttpRequest, name: str | None = None) -> HttpResponse:
    """Write a scorecard, or change one, as YAML; platform admins only. A scorecard synced from scorecard files is
    changed in its file: an edit here would be undone by the next sync."""
    _require_admin(request)
    scorecard = get_object_or_404(selectors.scorecard_list(), name=name) if name else None
    if scorecard is not None and scorecard.source_path:
        messages.error(
            request, f"{scorecard.title} comes from the scorecard file {scorecard.source_path}; change it there."
        )
        return redirect(scorecard)
    form = ScorecardForm(request.POST or None, scorecard=scorecard)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.scorecard_save(user=request.user, raw=form.cleaned_data["text"], name=name)
        except ValidationError as error:
            form.add_error("text", error.messages)
        else:
            messages.success(request, f"Saved {saved.title}; its services are being scored again.")
            return redirect(saved)
    return render(request, "scorecards/scorecard_form.html", {"form": form, "scorecard": scorecard})


@login_required
@require_POST
def scorecard_rescore(request: HttpRequest, name: str) -> HttpResponse:
    """Score every service on this scorecard again now (a worker does it); platform admins only."""
    _require_admin(request)
    scorecard: Scorecard = get_object_or_404(selectors.scorecard_list(), name=name)
    tasks.rescore_scorecard.delay(scorecard.pk)
    messages.success(request, f"{scorecard.title}: every service is being scored again; reload in a moment.")
    return redirect(scorecard)


@login_required
@require_GET
def initiative_list(request: HttpRequest) -> HttpResponse:
    initiatives = list(selectors.initiative_list())
    rows = [{"initiative": item, "progress": selectors.initiative_progress(initiative=item)} for item in initiatives]
    return render(request, "scorecards/initiative_list.html", {"rows": rows})


@login_required
@require_GET
def initiative_detail(request: HttpRequest, name: str) -> HttpResponse:
    initiative = get_object_or_404(selectors.initiative_list(), name=name)
    progress = selectors.initiative_progress(initiative=initiative)
    today = services.org_day(timezone.now())
    series, total = selectors.initiative_burnup(initiative=initiative, today=today)
    chart = charts.burnup(
        series,
        total=total,
        due=initiative.deadline,
        title=f"{initiative.title}: services there, day by day",
        describe="{last} of {total} services there on {day}; deadline {due}.",
        legend="Dashed: every service in scope; orange: the deadline.",
        due_label=f"Deadline {initiative.deadline:%d %b %Y}",
    )
    rules = initiative.scorecard.rules()
    context = {"initiative": initiative, "progress": progress, "chart": chart, "rules": rules, "today": today,
               "report": initiative.report if initiative.ended_at else None}  # fmt: skip
    return render(request, "scorecards/initiative_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def initiative_new(request: HttpRequest) -> HttpResponse:
    """Start an initiative; platform admins only."""
    _require_admin(request)
    form = InitiativeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            initiative = services.initiative_create(user=request.user, **form.service_arguments())
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{initiative.title} has started.")
            return redirect(initiative)
    return render(request, "scorecards/initiative_form.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def initiative_end(request: HttpRequest, name: str) -> HttpResponse:
    """End an initiative before its deadline and write its report; platform admins only, after a confirmation."""
    _require_admin(request)
    initiative = get_object_or_404(selectors.initiative_list(), name=name)
    if request.method == "POST" and request.POST.get("confirmed") == "yes":
        services.initiative_end(initiative=initiative, user=request.user)
        messages.success(request, f"{initiative.title} has ended; its report says who made it.")
        if request.htmx:  # type: ignore[attr-defined]
            return HttpResponseClientRedirect(initiative.get_absolute_url())
        return redirect(initiative)
    return render(request, "scorecards/initiative_end.html", {"initiative": initiative})  # no script: ask on a page
