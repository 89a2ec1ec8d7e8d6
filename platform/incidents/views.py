"""Incident pages: the list, declaring one, one incident with its suspects, timeline and links, and its controls.

Anyone signed in reads; the commander, the affected services' owners and platform admins change an incident
(`incidents.permissions`); rolling a suspect back goes through the deployments' services, which check the deploy
permission. The rollback asks first (hx-confirm, or a confirmation page without JavaScript).
"""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from deployments.models import Deployment
from incidents import alertmanager, permissions, postmortems, selectors, services
from incidents.forms import IncidentForm, LinkForm, ReceiverForm, UpdateForm
from incidents.models import OPEN_STATUSES, AlertReceiver, Incident, Postmortem, Severity
from portal.errors import Conflict
from portal.filters import DayRangeForm, day_end, day_start, query_param
from portal.forms import apply_errors
from teams.models import Team

PAGE_SIZE = 50


@login_required
@require_GET
def incident_list(request: HttpRequest) -> HttpResponse:
    incidents = selectors.incident_list_visible(user=request.user)
    state = query_param(request.GET, "state", "open")
    severity = query_param(request.GET, "severity")
    service = query_param(request.GET, "service")
    team = query_param(request.GET, "team")
    if state == "open":
        incidents = incidents.filter(status__in=OPEN_STATUSES)
    elif state == "resolved":
        incidents = incidents.filter(status="resolved")
    if severity in Severity.values:
        incidents = incidents.filter(severity=severity)
    if service:
        incidents = incidents.filter(services__slug=service)
    if team:
        incidents = incidents.filter(services__owner__slug=team)
    if service or team:
        incidents = incidents.distinct()
    # Incidents that started from one day to another (the portal's days); a bad range is said and left out, as the
    # deployments board does with a bad filter.
    days = DayRangeForm({"since": query_param(request.GET, "since"), "until": query_param(request.GET, "until")})
    if days.is_valid():
        if since := days.cleaned_data["since"]:
            incidents = incidents.filter(started_at__gte=day_start(since))
        if until := days.cleaned_data["until"]:
            incidents = incidents.filter(started_at__lt=day_end(until))
    page = Paginator(incidents.order_by("-started_at", "-pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    chosen = {"state": state, "severity": severity, "service": service, "team": team}
    chosen |= {"since": days.data["since"], "until": days.data["until"]}
    params = {k: v for k, v in chosen.items() if v}
    context = {
        "days": days,
        "page": page,
        "incidents": page.object_list,
        "state": state,
        "severity": severity,
        "service": service,
        "team": team,
        "severities": Severity.values,
        "teams": Team.objects.order_by("name").values_list("slug", "name"),
        "page_query": f"{urlencode(params)}&" if params else "",
    }
    return render(request, "incidents/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def incident_new(request: HttpRequest) -> HttpResponse:
    """Anyone signed in may declare an incident; they command it unless they name someone else."""
    initial: dict[str, Any] = {}
    if slug := query_param(request.GET, "service"):
        initial["service_slugs"] = slug
    form = IncidentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            incident = services.incident_declare(
                title=data["title"],
                severity=data["severity"],
                summary=data["summary"],
                services=data["service_slugs"],
                commander=data["commander_name"],
                started_at=data["started_at"],
                created_by=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"{incident} declared. Post updates here as you learn more.")
            return redirect(incident)
    return render(request, "incidents/form.html", {"form": form, "incident": None}, status=400 if form.errors else 200)


def _incident(pk: int) -> Incident:
    try:
        return selectors.incident_get(pk=pk)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def _require_write(request: HttpRequest, incident: Incident) -> None:
    if not permissions.incident_can_write(request.user, incident):
        raise PermissionDenied(permissions.denied_message(incident))


@login_required
@require_GET
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    can_write = permissions.incident_can_write(request.user, incident)
    suspects = selectors.suspect_deployments(incident=incident)
    rows = []
    for suspect in suspects:
        plan = services.rollback_plan(suspect.deployment)
        rows.append(
            {
                "suspect": suspect,
                "plan": plan,
                "can_roll_back": bool(plan)
                and permissions.incident_can_roll_back(request.user, suspect.deployment.service),
            }
        )
    context = {
        "incident": incident,
        "can_write": can_write,
        "suspects": rows,
        "links": selectors.incident_links(incident=incident),
        "updates": selectors.incident_updates(incident=incident),
        "update_form": UpdateForm(initial={"status": ""}),
        "link_form": LinkForm(),
        "window_minutes": settings.INCIDENTS["SUSPECT_WINDOW_MINUTES"],
        "postmortem": Postmortem.objects.filter(incident=incident).first(),
        "postmortem_required": postmortems.postmortem_required(incident),
    }
    return render(request, "incidents/detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def incident_edit(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    form = IncidentForm(request.POST or None, instance=incident)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fields = {"title": data["title"], "severity": data["severity"], "summary": data["summary"]}
        if data["started_at"]:
            fields["started_at"] = data["started_at"]
        if data["commander_name"]:
            fields["commander"] = data["commander_name"]
        try:
            incident = services.incident_edit(
                incident=incident,
                user=request.user,  # type: ignore[arg-type]
                services=data["service_slugs"],
                **fields,
            )
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, "Incident saved.")
            return redirect(incident)
    return render(
        request, "incidents/form.html", {"form": form, "incident": incident}, status=400 if form.errors else 200
    )


@login_required
@require_POST
def incident_post_update(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    form = UpdateForm(request.POST)
    if form.is_valid():
        try:
            services.incident_update(
                incident=incident,
                user=request.user,  # type: ignore[arg-type]
                message=form.cleaned_data["message"],
                status=form.cleaned_data["status"],
            )
        except Conflict as conflict:
            messages.error(request, conflict.message)
        else:
            messages.success(request, "Update posted.")
    else:
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
    return _back(request, incident)


def _back(request: HttpRequest, incident: Incident) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(incident.get_absolute_url())
    return redirect(incident)


@login_required
@require_POST
def incident_link(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    form = LinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(" ".join(errors) for errors in form.errors.values()))
        return _back(request, incident)
    deployment = (
        Deployment.objects.select_related("service", "release", "environment")
        .filter(pk=form.cleaned_data["deployment"])
        .first()
    )
    if deployment is None:
        messages.error(request, f"There is no deployment #{form.cleaned_data['deployment']}.")
        return _back(request, incident)
    try:
        services.incident_link(
            incident=incident,
            deployment=deployment,
            relation=form.cleaned_data["relation"],
            user=request.user,  # type: ignore[arg-type]
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Deployment #{deployment.pk} linked.")
    return _back(request, incident)


@login_required
@require_POST
def incident_unlink(request: HttpRequest, pk: int, deployment_pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    deployment = get_object_or_404(Deployment, pk=deployment_pk)
    try:
        services.incident_unlink(incident=incident, deployment=deployment, user=request.user)  # type: ignore[arg-type]
    except Conflict as conflict:
        messages.error(request, conflict.message)
    else:
        messages.success(request, f"Deployment #{deployment.pk} unlinked.")
    return _back(request, incident)


@login_required
@require_POST
def incident_rollback(request: HttpRequest, pk: int, deployment_pk: int) -> HttpResponse:
    """Roll a suspect back (abort it, or redeploy the release it replaced), once confirmed."""
    incident = _incident(pk)
    deployment = get_object_or_404(
        Deployment.objects.select_related("service__owner", "release", "environment", "previous_release"),
        pk=deployment_pk,
    )
    if not permissions.incident_can_roll_back(request.user, deployment.service):
        raise PermissionDenied(
            f"Only {deployment.service.owner} (the owners of {deployment.service.slug}) and platform admins may roll "
            "it back."
        )
    plan = services.rollback_plan(deployment)
    if not plan:
        messages.error(request, f"Deployment #{deployment.pk} cannot be rolled back from here.")
        return _back(request, incident)
    if request.POST.get("confirmed") != "yes":
        context = {
            "title": f"{plan}?",
            "detail": "The rollback is a new, tracked deployment; the suspect is linked as the incident's cause.",
            "act": "Roll back",
            "action_url": request.path,
            "back": incident,
            "back_label": "Go back",
        }
        return render(request, "deployments/confirm.html", context)
    try:
        result = services.incident_rollback(incident=incident, deployment=deployment, user=request.user)  # type: ignore[arg-type]
    except (Conflict, ValidationError) as error:
        messages.error(request, getattr(error, "message", None) or " ".join(getattr(error, "messages", [str(error)])))
        return _back(request, incident)
    messages.success(request, f"Rolling back: deployment #{result.pk}.")
    return _back(request, incident)


def _require_staff(request: HttpRequest) -> None:
    if not request.user.is_staff:
        raise PermissionDenied("Only platform admins manage Alertmanager receivers.")


@login_required
@require_http_methods(["GET", "POST"])
def receivers(request: HttpRequest) -> HttpResponse:
    """Platform admins make a receiver (its token is shown once) and see when each was last used."""
    _require_staff(request)
    form = ReceiverForm(request.POST or None)
    token = ""
    if request.method == "POST" and form.is_valid():
        try:
            receiver, token = alertmanager.receiver_create(name=form.cleaned_data["name"], created_by=request.user)  # type: ignore[arg-type]
        except ValidationError as error:
            apply_errors(form, error)
        else:
            messages.success(request, f"Receiver {receiver.name} made. Copy its token now: it is not shown again.")
            form = ReceiverForm()
    context = {
        "form": form,
        "token": token,
        "receivers": AlertReceiver.objects.select_related("created_by").order_by("name"),
        "webhook_url": request.build_absolute_uri(reverse("api:alertmanager-webhook")),
    }
    return render(request, "incidents/receivers.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def receiver_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    _require_staff(request)
    receiver = get_object_or_404(AlertReceiver, pk=pk)
    if request.POST.get("confirmed") != "yes":
        context = {
            "title": f"Revoke the receiver {receiver.name}?",
            "detail": "Alertmanager's notifications with its token are refused from now on; this cannot be undone.",
            "act": "Revoke",
            "action_url": request.path,
            "back": _ReceiversPage(),
            "back_label": "Go back",
        }
        return render(request, "deployments/confirm.html", context)
    alertmanager.receiver_revoke(receiver=receiver, user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Receiver {receiver.name} revoked.")
    return redirect("incidents:receivers")


class _ReceiversPage:
    """The receivers page as a 'back' target for the confirmation page."""

    def get_absolute_url(self) -> str:
        return reverse("incidents:receivers")

    def __str__(self) -> str:
        return "Alertmanager receivers"
