"""Postmortem pages: one incident's postmortem (read, or edit while not published), its state, lessons turned into
ADRs or runbook changes, action items; and the list of postmortems. Anyone signed in reads; those who may change the
incident write it; only an action item's owner team closes it."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog.permissions import user_can
from incidents import permissions, postmortems, selectors
from incidents.forms import ActionForm, LessonForm, PostmortemForm
from incidents.models import ActionItem, Incident, Lesson, Postmortem
from portal.errors import Conflict
from portal.forms import apply_errors
from techdocs.markdown import render as markdown


def _incident(pk: int) -> Incident:
    try:
        return selectors.incident_get(pk=pk)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def _postmortem(incident: Incident) -> Postmortem:
    postmortem = Postmortem.objects.filter(incident=incident).first()
    if postmortem is None:
        raise Http404("This incident has no postmortem yet.")
    postmortem.incident = incident
    return postmortem


def _require_write(request: HttpRequest, incident: Incident) -> None:
    if not permissions.incident_can_write(request.user, incident):
        raise PermissionDenied(permissions.denied_message(incident))


def _errors(request: HttpRequest, error: Exception) -> None:
    if isinstance(error, Conflict):
        messages.error(request, error.message)
    elif isinstance(error, ValidationError):
        messages.error(request, " ".join(error.messages))


@login_required
@require_http_methods(["GET", "POST"])
def postmortem_page(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    can_write = permissions.incident_can_write(request.user, incident)
    if request.method == "POST":
        _require_write(request, incident)
        if not Postmortem.objects.filter(incident=incident).exists():
            postmortems.postmortem_start(incident=incident, user=request.user)  # type: ignore[arg-type]
            return redirect("incidents:postmortem", pk=incident.pk)
    postmortem = _postmortem(incident)
    editing = can_write and postmortem.state != Postmortem.State.PUBLISHED
    form = PostmortemForm(
        request.POST if request.method == "POST" and "summary" in request.POST else None, instance=postmortem
    )
    status = 200
    if request.method == "POST" and form.is_bound:
        if form.is_valid():
            try:
                fields = {name: form.cleaned_data[name] for name in postmortems.FIELDS}
                postmortems.postmortem_save(postmortem=postmortem, user=request.user, **fields)  # type: ignore[arg-type]
            except (ValidationError, Conflict) as error:
                if isinstance(error, ValidationError):
                    apply_errors(form, error)
                else:
                    messages.error(request, error.message)
            else:
                messages.success(request, "Postmortem saved.")
                return redirect(postmortem)
        status = 400
    actions = list(postmortem.actions.select_related("owner_team", "closed_by"))
    context = {
        "incident": incident,
        "postmortem": postmortem,
        "can_write": can_write,
        "editing": editing,
        "form": form,
        "sections": [
            (label, markdown(text=getattr(postmortem, name)))
            for name, label in (
                ("summary", "Summary"),
                ("impact", "Impact"),
                ("timeline", "Timeline"),
                ("contributing_factors", "Contributing factors"),
                ("went_well", "What went well"),
            )
        ],
        "lessons": list(postmortem.lessons.select_related("adr__service", "runbook__service")),
        "actions": [(item, postmortems.action_can_close(request.user, item)) for item in actions],
        "lesson_form": LessonForm(),
        "action_form": ActionForm(),
        "services": list(incident.services.all()),
        "can_document": {s.pk for s in incident.services.all() if user_can(request.user, "catalog.change_service", s)},
        "required": postmortems.postmortem_required(incident),
    }
    return render(request, "incidents/postmortem.html", context, status=status)


@login_required
@require_POST
def postmortem_state(request: HttpRequest, pk: int, state: str) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    postmortem = _postmortem(incident)
    if state not in Postmortem.State.values:
        raise Http404("No such state.")
    try:
        postmortems.postmortem_transition(postmortem=postmortem, user=request.user, state=state)  # type: ignore[arg-type]
    except (ValidationError, Conflict) as error:
        _errors(request, error)
    else:
        messages.success(request, f"Postmortem {dict(Postmortem.State.choices)[state].lower()}.")
    return redirect(postmortem)


@login_required
@require_POST
def lesson_add(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    postmortem = _postmortem(incident)
    form = LessonForm(request.POST)
    if form.is_valid():
        try:
            postmortems.lesson_add(postmortem=postmortem, user=request.user, text=form.cleaned_data["text"])  # type: ignore[arg-type]
        except (ValidationError, Conflict) as error:
            _errors(request, error)
    else:
        messages.error(request, " ".join(" ".join(str(m) for m in e) for e in form.errors.values()))
    return redirect(postmortem)


@login_required
@require_POST
def lesson_document(request: HttpRequest, pk: int, lesson_pk: int, kind: str) -> HttpResponse:
    """One click: the lesson becomes a proposed ADR, or a new section of a runbook, of one affected service."""
    incident = _incident(pk)
    postmortem = _postmortem(incident)
    lesson = get_object_or_404(Lesson, pk=lesson_pk, postmortem=postmortem)
    service = get_object_or_404(incident.services.all(), slug=request.POST.get("service", ""))
    if not user_can(request.user, "catalog.change_service", service):
        raise PermissionDenied(f"Only {service.owner} (the owners of {service.slug}) write its ADRs and runbooks.")
    convert = {"adr": postmortems.lesson_to_adr, "runbook": postmortems.lesson_to_runbook}.get(kind)
    if convert is None:
        raise Http404("No such document.")
    try:
        lesson = convert(lesson=lesson, user=request.user, service=service)  # type: ignore[arg-type]
    except (ValidationError, Conflict) as error:
        _errors(request, error)
    else:
        document = lesson.adr if kind == "adr" else lesson.runbook
        messages.success(request, f"Written to {document}.")
    return redirect(postmortem)


@login_required
@require_POST
def action_add(request: HttpRequest, pk: int) -> HttpResponse:
    incident = _incident(pk)
    _require_write(request, incident)
    postmortem = _postmortem(incident)
    form = ActionForm(request.POST)
    if form.is_valid():
        try:
            postmortems.action_add(postmortem=postmortem, user=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except (ValidationError, Conflict) as error:
            _errors(request, error)
    else:
        messages.error(request, " ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in form.errors.items()))
    return redirect(postmortem)


@login_required
@require_POST
def action_status(request: HttpRequest, pk: int, action_pk: int) -> HttpResponse:
    incident = _incident(pk)
    postmortem = _postmortem(incident)
    item = get_object_or_404(ActionItem.objects.select_related("owner_team"), pk=action_pk, postmortem=postmortem)
    try:
        postmortems.action_set_status(item=item, user=request.user, status=request.POST.get("status", ""))  # type: ignore[arg-type]
    except ValidationError as error:
        _errors(request, error)
    return redirect(postmortem)


@login_required
@require_GET
def postmortem_list(request: HttpRequest) -> HttpResponse:
    found = Postmortem.objects.select_related("incident").order_by("-created_at")[:200]
    return render(request, "incidents/postmortems.html", {"postmortems": found})
