"""The scaffolding wizard: pick a golden path, answer its steps (each its own URL), choose the owner, preview the
files (a dry run), confirm; then watch the run's timeline live."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from catalog.models import Service, System
from catalog.permissions import user_can
from portal.forms import VALIDATE_FLAG, validation_response
from scaffolder import drift, leases, publishers, registry, services
from scaffolder.forms import DISPLAY_NAME, OwnerForm, StepForm, display_name_hint
from scaffolder.models import GoldenPathUpdate, ScaffoldRun, display_name_default
from scaffolder.render import RenderError, render_in_child
from teams import selectors as team_selectors
from teams.models import Team

PREVIEW_SECONDS = 600
PREVIEW_MAX_BYTES = 200_000


def _path(name: str) -> registry.GoldenPath:
    path = registry.golden_path_get(name)
    if path is None:
        raise Http404(f"There is no golden path called {name}.")
    return path


def _state(request: HttpRequest, path: registry.GoldenPath) -> dict[str, Any]:
    """The wizard's answers so far, kept in the session per golden path."""
    return request.session.setdefault(f"wizard:{path.name}", {"answers": path.defaults(), "owner": "", "system": ""})


def _save(request: HttpRequest, path: registry.GoldenPath, state: dict[str, Any]) -> None:
    request.session[f"wizard:{path.name}"] = state
    request.session.modified = True


@login_required
@require_GET
def path_list(request: HttpRequest) -> HttpResponse:
    runs = ScaffoldRun.objects.filter(requested_by=request.user).select_related("owner")[:8]
    return render(request, "scaffolder/path_list.html", {"paths": registry.golden_path_list(), "runs": runs})


@login_required
@require_http_methods(["GET", "POST"])
def wizard_step(request: HttpRequest, name: str, number: int) -> HttpResponse:
    path = _path(name)
    if not 1 <= number <= len(path.steps):
        raise Http404("No such step.")
    step = path.steps[number - 1]
    state = _state(request, path)
    form = StepForm(
        request.POST or None,
        path=path,
        fields=step.fields,
        initial={k: v for k, v in state["answers"].items() if k in step.fields}
        | {DISPLAY_NAME: state.get(DISPLAY_NAME, "")},
    )
    form.enable_inline_validation(request.path)
    if (partial := validation_response(request, form)) is not None:
        if request.POST.get(VALIDATE_FLAG) == "name" and DISPLAY_NAME in form.fields:
            # What an empty display name becomes follows the name being typed (out of band: the inputs are untouched).
            hint = display_name_hint(str(request.POST.get("name", "")))
            partial.content += hint.replace("<strong ", '<strong hx-swap-oob="true" ', 1).encode()
        return partial
    if request.method == "POST" and form.is_valid():
        state["answers"].update({k: v for k, v in form.cleaned_data.items() if k in step.fields})
        for field_name in step.fields:  # an emptied optional field or unticked box is an answer too
            if field_name not in form.cleaned_data:
                state["answers"].pop(field_name, None)
                if path.properties[field_name].get("type") == "boolean":
                    state["answers"][field_name] = False
        if DISPLAY_NAME in form.fields:
            state[DISPLAY_NAME] = form.display_name
        _save(request, path, state)
        if number < len(path.steps):
            return redirect("scaffolder:step", name=path.name, number=number + 1)
        return redirect("scaffolder:owner", name=path.name)
    return render(
        request,
        "scaffolder/wizard_step.html",
        {
            "path": path,
            "step": step,
            "number": number,
            "form": form,
            "state": state,
            "back": reverse("scaffolder:step", args=[path.name, number - 1])
            if number > 1
            else reverse("scaffolder:list"),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def wizard_owner(request: HttpRequest, name: str) -> HttpResponse:
    path = _path(name)
    state = _state(request, path)
    teams = team_selectors.team_choices_for(user=request.user).order_by("name")
    initial = {"owner": state.get("owner") or (teams[0].slug if len(teams) == 1 else ""), "system": state.get("system")}
    form = OwnerForm(request.POST or None, teams=teams, initial=initial)
    if request.method == "POST" and form.is_valid():
        state["owner"] = form.cleaned_data["owner"].slug
        state["system"] = form.cleaned_data["system"].slug if form.cleaned_data["system"] else ""
        _save(request, path, state)
        return redirect("scaffolder:preview", name=path.name)
    return render(
        request,
        "scaffolder/wizard_owner.html",
        {
            "path": path,
            "form": form,
            "state": state,
            "no_team": not teams.exists(),
            "back": reverse("scaffolder:step", args=[path.name, len(path.steps)]),
        },
    )


def _preview_files(request: HttpRequest, path: registry.GoldenPath, state: dict[str, Any]) -> dict[str, str]:
    """Render the answers into a throwaway folder (a dry run) and keep the files for a few minutes."""
    key = f"preview:{request.session.session_key}:{path.name}:{hash(repr(sorted(state.items(), key=str)))}"
    files = cache.get(key)
    if files is None:
        with leases.scratch("preview") as folder:
            data = {
                **state["answers"],
                "owner": state["owner"],
                "system": state["system"],
                "golden_path": path.name,
                "golden_path_version": path.version,
                "author": request.user.get_username(),
                "today": timezone.localdate().isoformat(),
                "runway_url": settings.PORTAL_URL,  # where app/flags.py evaluates flags (OFREP)
            }
            names = render_in_child(template=path.folder, destination=folder / "out", data=data)
            files = {}
            for rel in names:
                raw = (folder / "out" / rel).read_bytes()[:PREVIEW_MAX_BYTES]
                files[rel] = raw.decode("utf-8", errors="replace")
        cache.set(key, files, PREVIEW_SECONDS)
    return files


def _label(path: registry.GoldenPath, key: str) -> str:
    """A parameter's title from template.yaml, or its key made readable."""
    if key in (DISPLAY_NAME, "owner", "system"):
        return {DISPLAY_NAME: "Display name", "owner": "Owner team", "system": "System"}[key]
    title = path.properties.get(key, {}).get("title")
    return str(title) if title else key.replace("_", " ").capitalize()


def _step_of(path: registry.GoldenPath, key: str) -> str:
    """The wizard page that asks for `key`."""
    if key in ("owner", "system"):
        return reverse("scaffolder:owner", args=[path.name])
    for number, step in enumerate(path.steps, start=1):
        if key in step.fields or (key == DISPLAY_NAME and "name" in step.fields):
            return reverse("scaffolder:step", args=[path.name, number])
    return reverse("scaffolder:step", args=[path.name, 1])


def _readable(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def _summary(
    path: registry.GoldenPath, state: dict[str, Any], owner: Team | None, system: System | None
) -> list[dict[str, str]]:
    """The answers as a person reads them: the path's own titles, Yes/No, team and system names; each with a link
    to the page that changes it."""
    answers = state["answers"]
    slug = str(answers.get("name", ""))
    rows = []
    for key in path.properties:
        if key in answers:
            rows.append({"label": _label(path, key), "value": _readable(answers[key]), "url": _step_of(path, key)})
        if key == "name":
            shown = state.get(DISPLAY_NAME) or display_name_default(slug)
            rows.append({"label": "Display name", "value": shown, "url": _step_of(path, DISPLAY_NAME)})
    owner_url = reverse("scaffolder:owner", args=[path.name])
    rows.append({"label": "Owner team", "value": owner.name if owner else "", "url": owner_url})
    rows.append({"label": "System", "value": system.name if system else "None", "url": owner_url})
    rows.append({"label": "Golden path", "value": f"{path.title} {path.version}", "url": ""})
    return rows


@login_required
@require_GET
def wizard_preview(request: HttpRequest, name: str) -> HttpResponse:
    """The file tree that will be created, nothing created yet; problems with the answers are listed here, each with
    a link to the page that fixes it."""
    path = _path(name)
    state = _state(request, path)
    owner = Team.objects.filter(slug=state.get("owner")).first()
    system = System.objects.filter(slug=state["system"]).first() if state.get("system") else None
    errors = services.answers_check(path=path, answers=state["answers"], owner=owner, user=request.user)  # type: ignore[arg-type]
    if owner is None:
        errors.setdefault("owner", ["Choose the team that will own the service."])
    if problems := services.display_name_errors(state.get(DISPLAY_NAME, "")):
        errors[DISPLAY_NAME] = problems
    order = {key: index for index, key in enumerate([*path.properties, DISPLAY_NAME, "owner", "system"])}
    files: dict[str, str] = {}
    render_error = ""
    if not errors:
        try:
            files = _preview_files(request, path, state)
        except RenderError as error:
            render_error = str(error)
    selected = request.GET.get("file") or next((f for f in files if f.endswith("README.md")), next(iter(files), ""))
    if request.htmx and "file" in request.GET:  # type: ignore[attr-defined]
        if selected not in files:
            raise Http404("No such file in the preview.")
        return render(request, "scaffolder/_preview_file.html", {"name": selected, "content": files[selected]})
    return render(
        request,
        "scaffolder/wizard_preview.html",
        {
            "path": path,
            "state": state,
            "owner": owner,
            "summary": _summary(path, state, owner, system),
            "display_name": state.get(DISPLAY_NAME) or display_name_default(str(state["answers"].get("name"))),
            "errors": [
                {"label": _label(path, key), "messages": errors[key], "url": _step_of(path, key)}
                for key in sorted(errors, key=lambda key: order.get(key, len(order)))
            ],
            "render_error": render_error,
            "files": sorted(files),
            "selected": selected,
            "content": files.get(selected, ""),
            "back": reverse("scaffolder:owner", args=[path.name]),
        },
    )


@login_required
@require_POST
def wizard_confirm(request: HttpRequest, name: str) -> HttpResponse:
    path = _path(name)
    state = _state(request, path)
    owner = get_object_or_404(Team, slug=state.get("owner") or "")
    system = System.objects.filter(slug=state["system"]).first() if state.get("system") else None
    try:
        run = services.scaffold_request(
            path=path,
            answers=state["answers"],
            owner=owner,
            system=system,
            requested_by=request.user,  # type: ignore[arg-type]
            display_name=state.get(DISPLAY_NAME, ""),
        )
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
        return redirect("scaffolder:preview", name=path.name)
    request.session.pop(f"wizard:{path.name}", None)
    return redirect(run)


def _run_for(request: HttpRequest, uuid: str) -> ScaffoldRun:
    run = get_object_or_404(ScaffoldRun.objects.select_related("owner", "requested_by", "service"), uuid=uuid)
    user: Any = request.user
    if not (user.is_staff or run.requested_by_id == user.pk or run.owner.memberships.filter(user=user).exists()):
        raise Http404("No such run.")  # someone else's run does not exist, as far as you can tell
    return run


@login_required
@require_GET
def run_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    """A run's timeline; htmx polls the #timeline fragment until the run is done, and the poll that sees it succeed
    takes the browser to the new service's page."""
    run = _run_for(request, uuid)
    template = "scaffolder/run_detail.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        if run.status == ScaffoldRun.Status.SUCCEEDED and run.service is not None:
            messages.success(
                request,
                f"{run.service.name} is in the catalog, owned by {run.owner.name}, with its repository, runbook and "
                f"decision records.",
            )
            return HttpResponseClientRedirect(run.service.get_absolute_url())
        template += "#timeline"
    return render(request, template, {"run": run, "steps": run.steps})


@login_required
@require_POST
def run_retry(request: HttpRequest, uuid: str) -> HttpResponse:
    run = _run_for(request, uuid)
    try:
        retry = services.scaffold_retry(run=run, requested_by=request.user)  # type: ignore[arg-type]
    except (ValidationError, PermissionDenied) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
        return redirect(run)
    return redirect(retry)


def _forge() -> publishers.Publisher | None:
    """The publisher when it is a forge (no request is made to build it); None for local or misconfigured."""
    try:
        chosen = publishers.publisher()
    except ImproperlyConfigured:
        return None
    return chosen if chosen.change_request_label else None


def _on_forge(forge: publishers.Publisher | None, service: Service) -> bool:
    if forge is None or not publishers.REPO_NAME.fullmatch(service.slug):
        return False
    try:
        return forge.exists(name=service.slug)
    except publishers.PublishError:  # the forge did not answer: offer nothing rather than fail the page
        return False


@login_required
@require_GET
def repository(request: HttpRequest, slug: str) -> HttpResponse:
    """The files and latest commits of a service's repository on the local publisher; for a repository on a forge,
    a link to it. Either way, the update from a newer golden path version is offered here."""
    service = get_object_or_404(Service, slug=slug)
    files, commits = publishers.local_browse(name=service.slug)
    template = "scaffolder/_repository.html" if request.htmx else "scaffolder/repository.html"  # type: ignore[attr-defined]
    forge = None if files else _forge()
    context = {
        "service": service,
        "files": files,
        "commits": commits,
        "clone_path": publishers.local_path(name=service.slug) if files else "",
        "can_update": user_can(request.user, "catalog.change_service", service),
        "forge_label": forge.label if forge else "",
    }
    latest = drift.latest_for(service)
    # Asking the forge whether it has the repository costs a request: only when there is an update to offer.
    hosted = bool(files) or (latest is not None and _on_forge(forge, service))
    if hosted and latest is not None:
        open_update = service.golden_path_updates.filter(status__in=GoldenPathUpdate.OPEN).first()
        context |= {"latest": latest, "open_update": open_update, "hosted": True}
        if open_update is None:
            context["blockers"] = drift.update_blockers(service=service)
    return render(request, template, context)


@login_required
@require_POST
def update_request(request: HttpRequest, slug: str) -> HttpResponse:
    """Ask for an update from the golden path; the page that follows shows the branch being made."""
    service = get_object_or_404(Service, slug=slug)
    try:
        update = drift.update_request(service=service, requested_by=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(service)
    return redirect(update)


def _update_for(uuid: str) -> GoldenPathUpdate:
    return get_object_or_404(
        GoldenPathUpdate.objects.select_related("service__owner", "requested_by", "merged_by"), uuid=uuid
    )


@login_required
@require_GET
def update_detail(request: HttpRequest, uuid: str) -> HttpResponse:
    """An update's timeline (polled while the worker makes the branch), then its files, conflicts and diff."""
    update = _update_for(uuid)
    template = "scaffolder/update_detail.html"
    if request.htmx and not request.htmx.boosted:  # type: ignore[attr-defined]
        template += "#progress"
    context = {
        "update": update,
        "steps": update.steps,
        "diff": drift.diff_files(update.diff)
        if update.status in (update.Status.READY, update.Status.CONFLICTS)
        else [],
        "can_update": user_can(request.user, "catalog.change_service", update.service),
        "clone_path": update.service.repository_url
        if update.change_request_url
        else publishers.local_path(name=update.service.slug),
    }
    return render(request, template, context)


@login_required
@require_POST
def update_action(request: HttpRequest, uuid: str, action: str) -> HttpResponse:
    """Merge, check again or discard; each says what happened, or why it could not."""
    update = _update_for(uuid)
    act = {"merge": drift.update_merge, "refresh": drift.update_refresh, "discard": drift.update_discard}.get(action)
    if act is None:
        raise Http404("No such action.")
    try:
        done = act(update=update, user=request.user)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(update)
    if done.status == GoldenPathUpdate.Status.MERGED:
        messages.success(
            request, f"Merged into main: {done.service.name} is now on {done.golden_path} {done.to_version}."
        )
        return redirect(done.service)
    if done.status == GoldenPathUpdate.Status.DISCARDED:
        messages.success(
            request, f"Discarded; the branch {done.branch} is gone and {done.service.name} stays as it was."
        )
        return redirect(done.service)
    return redirect(done)
