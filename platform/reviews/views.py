"""Ownership review pages: campaigns and their progress, answering items one by one or in bulk, handovers."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from catalog.filters import ServiceFilterSet
from portal import charts
from portal.forms import apply_errors
from reviews import overview, permissions, present, selectors, services
from reviews import reorganise as reorganisation
from reviews.forms import AnswerForm, CampaignForm, DecisionForm, MergeForm, MoveForm
from reviews.models import Campaign, Handover, Item, Ownership
from teams.models import Team


@login_required
@require_GET
def campaign_list(request: HttpRequest) -> HttpResponse:
    team_ids = permissions.answering_team_ids(request.user)
    mine = list(selectors.items_open_for(user=request.user, team_ids=team_ids).order_by("due_on", "pk")[:50])
    campaigns = list(selectors.campaign_list_visible(user=request.user)[:100])
    handovers = list(
        selectors.handover_list_visible(user=request.user).filter(
            status=Handover.Status.PROPOSED, to_team_id__in=permissions.lead_team_ids(request.user)
        )
        if not request.user.is_staff
        else selectors.handover_list_visible(user=request.user).filter(status=Handover.Status.PROPOSED)[:50]
    )
    context = {
        "campaigns": campaigns,
        "mine": mine,
        "handovers": handovers,
        "today": timezone.localdate(),
        "can_manage": permissions.can_manage_campaigns(request.user),
    }
    return render(request, "reviews/campaign_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def campaign_new(request: HttpRequest) -> HttpResponse:
    if not permissions.can_manage_campaigns(request.user):
        raise PermissionDenied("Only platform admins open review campaigns.")
    form = CampaignForm(request.POST or None)
    scope_form = ServiceFilterSet(request.POST or None, prefix="scope").form
    if request.method == "POST" and form.is_valid():
        scope = {name: request.POST.get(f"scope-{name}", "") for name in selectors.SCOPE_FIELDS}
        try:
            campaign = services.campaign_open(
                opened_by=request.user,  # type: ignore[arg-type]
                title=form.cleaned_data["title"],
                scope=scope,
                due_on=form.cleaned_data["due_on"],
                message=form.cleaned_data["message"],
                questions=form.cleaned_data["questions"] or None,
            )
        except ValidationError as error:
            if "scope" in error.message_dict:
                for text in error.message_dict.pop("scope"):
                    form.add_error(None, f"Scope: {text}")
            apply_errors(form, ValidationError(error.message_dict) if error.message_dict else error)
        else:
            messages.success(request, f"Opened {campaign.title}: {campaign.items.count()} services to review.")
            return redirect(campaign)
    return render(request, "reviews/campaign_form.html", {"form": form, "scope_form": scope_form})


@login_required
@require_GET
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(selectors.campaign_list_visible(user=request.user), pk=pk)
    progress = selectors.campaign_progress(campaign=campaign)
    total = sum(row.total for row in progress)
    answered = sum(row.answered for row in progress)
    today = timezone.localdate()
    team_ids = permissions.answering_team_ids(request.user)
    status = request.GET.get("status", "open")
    items = selectors.item_list_visible(user=request.user).filter(campaign=campaign)
    if status in Item.Status.values:
        items = items.filter(status=status)
    team = request.GET.get("team", "")
    if team:
        items = items.filter(team__slug=team)
    page_items = list(items.order_by("team__name", "service__name", "pk")[:200])
    for item in page_items:
        item.answerable = (  # type: ignore[attr-defined]
            campaign.is_open and item.is_open and permissions.can_answer(request.user, item, team_ids=team_ids)
        )
    overdue = []
    if campaign.is_open:
        overdue = list(
            selectors.item_list_visible(user=request.user)
            .filter(campaign=campaign, status=Item.Status.OPEN, due_on__lt=today)
            .order_by("due_on", "team__name", "service__name")[:100]
        )
    context = {
        "campaign": campaign,
        "progress": progress,
        "total": total,
        "answered": answered,
        "percent": round(100 * answered / total) if total else 100,
        "chart": charts.burnup(
            selectors.campaign_burnup(campaign=campaign),
            total=total,
            due=campaign.due_on,
            title="Items answered, day by day",
            describe="{last} of {total} items answered by {day}; due {due}.",
            legend="Dashed: every item; orange: the due date.",
            due_label=f"Due {campaign.due_on:%d %b %Y}",
        ),
        "items": page_items,
        "more": items.count() > len(page_items),
        "status": status,
        "team": team,
        "statuses": Item.Status.choices,
        "overdue": overdue,
        "today": today,
        "can_manage": permissions.can_manage_campaigns(request.user),
        "any_answerable": any(getattr(i, "answerable", False) for i in page_items),
    }
    return render(request, "reviews/campaign_detail.html", context)


@login_required
@require_POST
def campaign_close(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    services.campaign_close(campaign=campaign, closed_by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Closed {campaign.title}.")
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(campaign.get_absolute_url())
    return redirect(campaign)


@login_required
@require_POST
def items_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """ "All of these are still ours": confirm ownership of the ticked items."""
    campaign = get_object_or_404(Campaign, pk=pk)
    ids = [int(value) for value in request.POST.getlist("items") if value.isdigit()][:1000]
    if not ids:
        messages.error(request, "Tick the services you still own first.")
        return redirect(campaign)
    items = list(Item.objects.select_related("service", "campaign").filter(campaign=campaign, pk__in=ids))
    comment = request.POST.get("comment", "")[:5000]
    done, refused = services.items_confirm(items=items, answered_by=request.user, comment=comment)  # type: ignore[arg-type]
    if done:
        messages.success(request, f"Confirmed ownership of {len(done)} service{'s' if len(done) != 1 else ''}.")
    for item in items:
        if item.pk in refused:
            messages.error(request, f"{item.service}: {refused[item.pk]}")
    return redirect(request.POST.get("next") if _safe_next(request) else campaign.get_absolute_url())


def _safe_next(request: HttpRequest) -> bool:
    target = request.POST.get("next", "")
    return target.startswith("/") and not target.startswith("//") and "\\" not in target


@login_required
@require_http_methods(["GET", "POST"])
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(selectors.item_list_visible(user=request.user), pk=pk)
    can_answer = item.campaign.is_open and item.is_open and permissions.can_answer(request.user, item)
    admins = item.audience == Item.Audience.ADMINS
    form = AnswerForm(
        request.POST if request.method == "POST" else None,
        service=item.service,
        campaign_questions=item.campaign.questions,
        admins=admins,
    )
    if request.method == "POST":
        if not can_answer:
            if not item.campaign.is_open or not item.is_open:
                messages.error(request, "This item is no longer open for answers.")
                return redirect(item)
            raise PermissionDenied(f"Only {item.service.owner}'s leads and maintainers (or a platform admin) answer.")
        if form.is_valid():
            data = form.cleaned_data
            answer = services.Answer(
                ownership=data["ownership"],
                handover_to=data.get("handover_to"),
                details=form.details(),
                runbooks_valid=data.get("runbooks_valid"),
                retire=bool(data.get("retire")),
                retire_reason=data.get("retire_reason") or "",
                retire_on=data.get("retire_on"),
                comment=data.get("comment") or "",
            )
            try:
                services.item_answer(item=item, answered_by=request.user, answer=answer)  # type: ignore[arg-type]
            except ValidationError as error:
                apply_errors(form, error)
            else:
                messages.success(request, f"Answered for {item.service}.")
                return redirect(item.campaign)
    from catalog import services as catalog_services

    record = catalog_services.source_owner(item.service)
    context = {
        "item": item,
        "form": form,
        "can_answer": can_answer,
        "source": record,
        "ownership": selectors.ownership_for(service=item.service),
        "handover": selectors.handover_open_for_service(service=item.service),
        "today": timezone.localdate(),
    }
    return render(request, "reviews/item_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def handover_detail(request: HttpRequest, pk: int) -> HttpResponse:
    handover = get_object_or_404(selectors.handover_list_visible(user=request.user), pk=pk)
    form = DecisionForm(request.POST or None)
    if request.method == "POST":
        decision = request.POST.get("decision")
        note = form.data.get("note", "")[:2000] if form.is_valid() else ""
        if decision == "accept":
            services.handover_accept(handover=handover, decided_by=request.user, note=note)  # type: ignore[arg-type]
            messages.success(request, f"{handover.to_team} now owns {handover.service}.")
            return redirect(handover.service)
        if decision == "decline":
            services.handover_decline(handover=handover, decided_by=request.user, note=note)  # type: ignore[arg-type]
            messages.success(request, f"Declined: {handover.service} stays with {handover.from_team}.")
            return redirect(handover)
        if decision == "withdraw":
            services.handover_withdraw(handover=handover, withdrawn_by=request.user)  # type: ignore[arg-type]
            messages.success(request, "Handover withdrawn.")
            return redirect(handover)
        messages.error(request, "Choose accept, decline or withdraw.")
        return redirect(handover)
    context = {
        "handover": handover,
        "form": form,
        "can_decide": handover.status == Handover.Status.PROPOSED
        and permissions.can_decide_handover(request.user, handover),
        "can_withdraw": handover.status == Handover.Status.PROPOSED
        and permissions.can_withdraw_handover(request.user, handover),
    }
    return render(request, "reviews/handover_detail.html", context)


@login_required
@require_GET
def orphan_list(request: HttpRequest) -> HttpResponse:
    """Services whose team can no longer answer for them, oldest flag first, with the admins' review item."""
    orphans = list(
        Ownership.objects.filter(orphaned_since__isnull=False)
        .select_related("service", "service__owner")
        .order_by("orphaned_since", "service__name")[:500]
    )
    items = {
        item.service_id: item
        for item in Item.objects.filter(
            service_id__in=[o.service_id for o in orphans],
            audience=Item.Audience.ADMINS,
            status=Item.Status.OPEN,
            campaign__status=Campaign.Status.OPEN,
        )
    }
    rows = [(ownership, items.get(ownership.service_id)) for ownership in orphans]
    return render(request, "reviews/orphan_list.html", {"rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def reorganise(request: HttpRequest) -> HttpResponse:
    """Platform admins move many services at once, or merge one team into another, each in one audited operation."""
    if not permissions.can_manage_campaigns(request.user):
        raise PermissionDenied("Only platform admins reorganise teams.")
    move_form = MoveForm(request.POST if request.POST.get("operation") == "move" else None)
    merge_form = MergeForm(request.POST if request.POST.get("operation") == "merge" else None)
    if request.method == "POST" and move_form.is_bound and move_form.is_valid():
        data = move_form.cleaned_data
        try:
            moved = reorganisation.services_move(
                services_to_move=list(data["services"]),
                to_team=data["to_team"],
                moved_by=request.user,  # type: ignore[arg-type]
                reason=data["reason"],
            )
        except ValidationError as error:
            apply_errors(move_form, error)
        else:
            messages.success(request, f"Moved {moved} service{'s' if moved != 1 else ''} to {data['to_team']}.")
            return redirect(data["to_team"])
    if request.method == "POST" and merge_form.is_bound and merge_form.is_valid():
        data = merge_form.cleaned_data
        try:
            count = reorganisation.team_merge(source=data["source"], target=data["target"], merged_by=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(merge_form, error)
        else:
            messages.success(
                request,
                f"Merged {data['source']} into {data['target']}: {count} services moved and flagged for the admins "
                "to confirm their owner.",
            )
            return redirect("reviews:orphan-list")
    return render(request, "reviews/reorganise.html", {"move_form": move_form, "merge_form": merge_form})


@login_required
@require_GET
def team_review(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's ownership review: everything it owns and what waits on it, for its leads first of all."""
    team = get_object_or_404(Team, slug=slug)
    data = overview.team_overview(team=team, user=request.user)
    answerable = permissions.can_manage_campaigns(request.user) or team.pk in permissions.answering_team_ids(
        request.user
    )
    today = timezone.localdate()
    context = {
        "overview": data,
        "team": team,
        "answerable": answerable,
        "rows": present.team_rows(data.rows, answerable=answerable, today=today),
        "today": today,
    }
    return render(request, "reviews/team_review.html", context)


@login_required
@require_POST
def team_confirm(request: HttpRequest, slug: str) -> HttpResponse:
    """ "All of these are still ours", from the team's page: confirm the ticked items, whatever their campaign."""
    team = get_object_or_404(Team, slug=slug)
    ids = [int(value) for value in request.POST.getlist("items") if value.isdigit()][:1000]
    items = list(Item.objects.select_related("service", "campaign").filter(pk__in=ids, service__owner=team))
    if not items:
        messages.error(request, "Tick the services you still own first.")
        return redirect("reviews:team-review", slug=team.slug)
    comment = request.POST.get("comment", "")[:5000]
    done, refused = services.items_confirm(items=items, answered_by=request.user, comment=comment)  # type: ignore[arg-type]
    if done:
        messages.success(request, f"Confirmed ownership of {len(done)} service{'s' if len(done) != 1 else ''}.")
    for item in items:
        if item.pk in refused:
            messages.error(request, f"{item.service}: {refused[item.pk]}")
    return redirect("reviews:team-review", slug=team.slug)
