"""Flag pages. Every signed-in user reads a service's flags; only its owner team (catalog.change_service) and
platform admins change them; segments are the organisation's, so only platform admins edit them."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from catalog.models import Service
from catalog.permissions import user_can
from deployments.models import Environment
from flags import changes, evaluation, flagd, rollouts, selectors, services, usage
from flags.forms import (
    FlagCreateForm,
    PreviewForm,
    RolloutForm,
    SdkKeyForm,
    SegmentForm,
    SettingForm,
    json_initial,
)
from flags.models import Flag, FlagChange, FlagRollout, FlagRolloutEvent, FlagSetting, SdkKey, Segment
from portal.errors import Conflict
from portal.filters import query_param
from teams.models import Team


def _service(slug: str) -> Service:
    return get_object_or_404(Service.objects.select_related("owner"), slug=slug)


def _flag(slug: str, key: str) -> Flag:
    return get_object_or_404(Flag.objects.select_related("service__owner"), service__slug=slug, key=key)


def _environment(slug: str) -> Environment:
    return get_object_or_404(Environment, slug=slug)


def _can_change(request: HttpRequest, service: Service) -> bool:
    return user_can(request.user, "catalog.change_service", service)


def _require_change(request: HttpRequest, service: Service) -> None:
    if not _can_change(request, service):
        raise PermissionDenied(f"Only {service.owner} (or a platform admin) can change {service}'s flags.")


def _errors_to_form(form: Any, error: ValidationError, rename: dict[str, str] | None = None) -> None:
    """A service's ValidationError on the form field it names, or on the form when it names none of them."""
    if hasattr(error, "error_dict"):
        for field, messages_ in error.message_dict.items():
            field = (rename or {}).get(field, field)
            form.add_error(field if field in form.fields else None, messages_)
    else:
        form.add_error(None, error.messages)


@login_required
@require_GET
def flag_list(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service(slug)
    context = {
        "service": service,
        "can_change": _can_change(request, service),
        "environments": Environment.objects.order_by("order"),
    }
    return render(request, "flags/flag_list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def flag_create(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service(slug)
    _require_change(request, service)
    form = FlagCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            flag = services.flag_create(
                actor=request.user,
                service=service,
                key=data["key"],
                flag_type=data["type"],
                variants=data["variants"],
                default_variant=data["default_variant"] or None,
                description=data["description"],
                kind=data["kind"],
                temporary=data["temporary"],
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, f"Created the flag {flag.key}: off in every environment until you turn it on.")
            return redirect("flags:flag-detail", slug=service.slug, key=flag.key)
    return render(request, "flags/flag_form.html", {"service": service, "form": form})


def _detail_context(request: HttpRequest, flag: Flag, bound: dict[int, SettingForm] | None = None) -> dict[str, Any]:
    from governance import approvals

    held = list(flag.changes.select_related("environment", "requested_by")[:10])
    # Who the reader is, for every held change at once (one membership read, not one per change).
    who = (
        approvals.person(user=request.user, owner_id=flag.service.owner_id)  # type: ignore[arg-type]
        if held and request.user.is_authenticated
        else None
    )
    settings = list(FlagSetting.objects.filter(flag=flag).select_related("environment").order_by("environment__order"))
    evaluations = usage.evaluation_summary(flag)
    rows = []
    for setting in settings:
        form = (bound or {}).get(setting.environment_id) or SettingForm(
            variants=flag.variants,
            initial={
                "default_variant": setting.default_variant,
                "rules": json_initial(setting.rules),
                "rollout": json_initial(setting.rollout),
            },
            prefix=setting.environment.slug,
        )
        rows.append({"setting": setting, "form": form, "usage": evaluations.get(setting.environment_id)})
    return {
        "flag": flag,
        "service": flag.service,
        "rows": rows,
        "can_change": _can_change(request, flag.service),
        "versions": flag.versions.select_related("author")[:20],
        "rollouts": flag.rollouts.select_related("environment").prefetch_related(
            Prefetch("events", queryset=FlagRolloutEvent.objects.select_related("actor"))
        )[:5],
        "rollout_form": RolloutForm(variants=flag.variants, prefix="rollout"),
        "changes": [
            {"change": change, "may_answer": changes.may_answer(change, request.user, who)}  # type: ignore[arg-type]
            for change in held
        ],
        "preview_form": PreviewForm(initial={"environment": settings[-1].environment.slug} if settings else None),
        "debt": usage.flag_debt(flag, settings),
        "chart_days": usage.CHART_DAYS,
    }


def _said(request: HttpRequest, result: FlagSetting | FlagChange | FlagRollout, done: str) -> None:
    if isinstance(result, FlagChange):
        messages.warning(request, f"Waiting for approval: {result.reason} Nothing changes until it is approved.")
    else:
        messages.success(request, done)


@login_required
@require_GET
def flag_detail(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    return render(request, "flags/flag_detail.html", _detail_context(request, _flag(slug, key)))


@login_required
@require_POST
def setting_edit(request: HttpRequest, slug: str, key: str, environment: str) -> HttpResponse:
    flag = _flag(slug, key)
    _require_change(request, flag.service)
    env = _environment(environment)
    form = SettingForm(request.POST, variants=flag.variants, prefix=env.slug)
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = services.setting_change(
                actor=request.user,
                flag=flag,
                environment=env,
                default_variant=data["default_variant"],
                rules=data["rules"],
                rollout=data["rollout"],
                note=data["note"],
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            _said(request, result, f"Saved {flag.key} in {env.name}.")
            return redirect("flags:flag-detail", slug=slug, key=key)
    flag.refresh_from_db()
    context = _detail_context(request, flag, bound={env.pk: form})
    return render(request, "flags/flag_detail.html", context, status=400)


@login_required
@require_POST
def toggle(request: HttpRequest, slug: str, key: str, environment: str) -> HttpResponse:
    """One click: on ↔ off in one environment. htmx swaps the cell; without htmx, back to where it came from."""
    flag = _flag(slug, key)
    _require_change(request, flag.service)
    env = _environment(environment)
    current = FlagSetting.objects.filter(flag=flag, environment=env).values_list("enabled", flat=True).first()
    try:
        setting = services.setting_change(
            actor=request.user, flag=flag, environment=env, enabled=not current, note="toggled from the flags page"
        )
    except ValidationError as error:  # a deploy policy refused it: say why where the flag's state is shown
        messages.error(request, " ".join(error.messages))
        setting = None
    if not isinstance(setting, FlagSetting):  # refused, or held for approval: the flag's page says what happens next
        if setting is not None:
            _said(request, setting, "")
        url = reverse("flags:flag-detail", args=[slug, key])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)  # type: ignore[attr-defined]
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "flags/_toggle.html",
            {"flag": flag, "service": flag.service, "setting": setting, "environment": env, "can_change": True},
        )
    messages.success(request, f"{flag.key} is {'on' if setting.enabled else 'off'} in {env.name}.")
    return redirect("flags:flag-detail", slug=slug, key=key)


@login_required
@require_http_methods(["GET", "POST"])
def kill(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    flag = _flag(slug, key)
    _require_change(request, flag.service)
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        on = FlagSetting.objects.filter(flag=flag, enabled=True).select_related("environment")
        return render(request, "flags/kill.html", {"flag": flag, "service": flag.service, "on": on})
    turned_off = services.kill(actor=request.user, flag=flag)
    messages.success(request, f"Killed {flag.key}: turned off in {turned_off} environment(s).")
    return redirect("flags:flag-detail", slug=slug, key=key)


@login_required
@require_POST
def change_answer(request: HttpRequest, pk: int, verdict: str) -> HttpResponse:
    """Approve or reject a held flag change (its eligible approvers, never its requester)."""
    change = get_object_or_404(FlagChange.objects.select_related("flag__service"), pk=pk)
    flag = change.flag
    try:
        if verdict == "approve":
            change = changes.flag_change_approve(change_id=change.pk, user=request.user)
        else:
            change = changes.flag_change_reject(
                change_id=change.pk, user=request.user, reason=request.POST.get("reason", "")
            )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    except Conflict as error:
        messages.error(request, error.message)
    else:
        shown = change.closed_reason or f"Approved; the change to {flag.key} waits for more approvals."
        level = messages.ERROR if change.status == FlagChange.Status.FAILED else messages.SUCCESS
        messages.add_message(request, level, shown)
    return redirect("flags:flag-detail", slug=flag.service.slug, key=flag.key)


@login_required
@require_http_methods(["GET", "POST"])
def flag_delete(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    flag = _flag(slug, key)
    _require_change(request, flag.service)
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        settings = FlagSetting.objects.filter(flag=flag)
        context = {"flag": flag, "service": flag.service, "debt": usage.flag_debt(flag, settings)}
        return render(request, "flags/flag_delete.html", context)
    try:
        services.flag_delete(actor=request.user, flag=flag)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("flags:flag-detail", slug=slug, key=key)
    messages.success(request, f"Deleted the flag {flag.key}. SDKs asking for it now get their code default.")
    return redirect("flags:flag-list", slug=slug)


@login_required
@require_POST
def rollout_start(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    flag = _flag(slug, key)
    _require_change(request, flag.service)
    form = RolloutForm(request.POST, variants=flag.variants, prefix="rollout")
    if form.is_valid():
        data = form.cleaned_data
        try:
            started = rollouts.rollout_start(
                actor=request.user,
                flag=flag,
                environment=data["environment"],
                variant=data["variant"],
                steps=data["steps"],
                interval_seconds=data["interval_seconds"],
                metrics_url=data["metrics_url"],
            )
        except Conflict as error:
            form.add_error(None, error.message)
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            done = f"Started a progressive rollout of {flag.key} in {data['environment'].name}."
            _said(request, started, done)
            return redirect(reverse("flags:flag-detail", args=[slug, key]) + "#rollouts")
    context = _detail_context(request, flag)
    context["rollout_form"] = form
    return render(request, "flags/flag_detail.html", context, status=400)


ROLLOUT_CONTROLS = {
    "pause": rollouts.rollout_pause,
    "resume": rollouts.rollout_resume,
    "promote": rollouts.rollout_promote,
    "abort": rollouts.rollout_abort,
}


@login_required
@require_http_methods(["GET", "POST"])
def rollout(request: HttpRequest, pk: int, control: str = "") -> HttpResponse:
    """A rollout's timeline (GET: the fragment the flag's page polls while it runs) and its controls (POST)."""
    rollouts_read = FlagRollout.objects.select_related("flag__service__owner", "environment").prefetch_related(
        Prefetch("events", queryset=FlagRolloutEvent.objects.select_related("actor"))
    )
    found = get_object_or_404(rollouts_read, pk=pk)
    can_change = _can_change(request, found.flag.service)
    if request.method == "POST":
        _require_change(request, found.flag.service)
        if control not in ROLLOUT_CONTROLS:
            raise Http404("No such control.")
        try:
            found = ROLLOUT_CONTROLS[control](rollout_id=found.pk, actor=request.user)
        except Conflict as error:
            messages.error(request, error.message)
        if not request.htmx:  # type: ignore[attr-defined]
            return redirect(reverse("flags:flag-detail", args=[found.flag.service.slug, found.flag.key]) + "#rollouts")
        found = rollouts_read.get(pk=pk)
    context = {"rollout": found, "can_change": can_change, "flag": found.flag, "service": found.flag.service}
    return render(request, "flags/_rollout.html", context)


@login_required
@require_GET
def preview(request: HttpRequest, slug: str, key: str) -> HttpResponse:
    """What the OFREP endpoint would answer this context, from the same compiled set the SDKs are served."""
    flag = _flag(slug, key)
    form = PreviewForm(request.GET)
    result: dict[str, Any] | None = None
    status = None
    if form.is_valid():
        context = dict(form.cleaned_data["attributes"])
        if form.cleaned_data["targeting_key"]:
            context["targetingKey"] = form.cleaned_data["targeting_key"]
        env = form.cleaned_data["environment"]
        try:
            evaluation.context_read({"context": context})
        except evaluation.ContextError as error:
            status, result = 400, {"key": flag.key, "errorCode": error.code, "errorDetails": error.details}
        else:
            compiled = selectors.flag_set(flag.service_id, env.pk)["flags"].get(flag.key)
            status, result = evaluation.evaluate(flag.key, compiled, context)
    template = "flags/_preview.html" if request.htmx else "flags/preview.html"  # type: ignore[attr-defined]
    context_ = {"flag": flag, "service": flag.service, "form": form, "result": result, "status": status}
    return render(request, template, context_)


@login_required
@require_http_methods(["GET", "POST"])
def sdk_keys(request: HttpRequest, slug: str) -> HttpResponse:
    """A service's SDK keys; a new key is shown on this answer only (never stored, never in a redirect)."""
    service = _service(slug)
    can_change = _can_change(request, service)
    form = SdkKeyForm(request.POST or None)
    created = None
    if request.method == "POST":
        _require_change(request, service)
        if form.is_valid():
            key, raw = services.sdk_key_create(
                actor=request.user,
                service=service,
                environment=form.cleaned_data["environment"],
                name=form.cleaned_data["name"],
            )
            created = {"key": key, "raw": raw}
            form = SdkKeyForm()
    keys = SdkKey.objects.filter(service=service).select_related("environment", "created_by")
    context = {"service": service, "keys": keys, "form": form, "created": created, "can_change": can_change}
    response = render(request, "flags/sdk_keys.html", context)
    if created:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def sdk_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(SdkKey.objects.select_related("service__owner", "environment"), pk=pk)
    _require_change(request, key.service)
    if request.method != "POST" or request.POST.get("confirmed") != "yes":
        return render(request, "flags/sdk_key_revoke.html", {"key": key, "service": key.service})
    services.sdk_key_revoke(actor=request.user, key=key)
    messages.success(request, f"Revoked the SDK key {key.name}: SDKs using it are refused from their next request.")
    return redirect("flags:sdk-keys", slug=key.service.slug)


@login_required
@require_GET
def flagd_export(request: HttpRequest, slug: str, environment: str) -> HttpResponse:
    """A service's flags in one environment as a flagd flag definition file. Every signed-in user reads flags, so
    every signed-in user may download them; SDK keys are not in it."""
    return flagd.download(service=_service(slug), environment=_environment(environment))


@login_required
@require_GET
def stale_list(request: HttpRequest) -> HttpResponse:
    """Flag debt across the organisation (or one team's, one service's): every stale flag, why, and how to remove
    it. Everyone reads it; removing a flag is its owners' work."""
    team = query_param(request.GET, "team")
    service = query_param(request.GET, "service")
    context = {
        "stale": usage.stale_flags(team_slug=team, service_slug=service),
        "teams": Team.objects.order_by("name").values_list("slug", "name"),
        "team": team,
        "service": Service.objects.filter(slug=service).first() if service else None,
        "service_slug": service,
        "unused_days": usage.UNUSED_DAYS,
        "launched_days": usage.LAUNCHED_DAYS,
    }
    return render(request, "flags/stale_list.html", context)


@login_required
@require_GET
def segment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "flags/segment_list.html", {"segments": Segment.objects.all()})


@login_required
@require_http_methods(["GET", "POST"])
def segment_edit(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied("Segments are shared by the whole organisation: only platform admins change them.")
    segment = None
    if slug is not None:
        segment = Segment.objects.filter(slug=slug).first()
        if segment is None:
            raise Http404("No such segment.")
    initial = (
        {
            "name": segment.name,
            "slug": segment.slug,
            "description": segment.description,
            "conditions": json_initial(segment.conditions),
        }
        if segment
        else None
    )
    form = SegmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if segment is not None and data["slug"] != segment.slug:
            form.add_error("slug", "Rules refer to a segment by its slug, so it cannot change.")
        elif segment is None and Segment.objects.filter(slug=data["slug"]).exists():
            form.add_error("slug", "A segment already has this slug; edit that one instead.")
        else:
            try:
                services.segment_save(
                    actor=request.user,
                    slug=data["slug"],
                    name=data["name"],
                    conditions=data["conditions"],
                    description=data["description"],
                )
            except ValidationError as error:
                # segment_save checks conditions with the rules' checker, which names "rules"
                _errors_to_form(form, error, rename={"rules": "conditions"})
            except IntegrityError:
                form.add_error("name", "Another segment has this name.")
            else:
                messages.success(request, f"Saved the segment {data['name']}.")
                return redirect("flags:segment-list")
    return render(request, "flags/segment_form.html", {"form": form, "segment": segment})
