"""Scaffolding: validate a golden path's answers, then (on a worker) render, publish, register and record.

Each step is recorded on the run with its duration, so the page can show a live timeline. A failure at any step
leaves nothing half-made: the repository is only published after a successful render, the service is only
registered once the repository exists, and a failed registration removes the repository again.
"""

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit import services as audit
from audit.models import AuditEvent
from catalog import services as catalog_services
from catalog.models import Service, System
from deployments import services as deployment_services
from portal.validators import bidi_controls_refuse
from scaffolder import leases, publishers, registry, tasks, versions
from scaffolder.models import ScaffoldRun
from scaffolder.render import RenderError, render_in_child
from teams.models import Membership, Team
from techdocs import files as doc_files
from techdocs import services as techdocs_services

log = structlog.get_logger(__name__)
MAX_ATTEMPTS = 3


DISPLAY_NAME_MAX = Service._meta.get_field("name").max_length or 100


def display_name_errors(display_name: str) -> list[str]:
    if len(display_name) > DISPLAY_NAME_MAX:
        return [f"Keep the display name to {DISPLAY_NAME_MAX} characters (it has {len(display_name)})."]
    if registry._CONTROL.search(display_name) or "\n" in display_name or "\r" in display_name:
        return ["Control characters and line breaks are not allowed here."]
    try:
        bidi_controls_refuse(display_name)
    except ValidationError as error:
        return error.messages
    return []


def name_check(name: str, *, run: ScaffoldRun | None = None) -> list[str]:
    """Why `name` cannot be a new service's slug and repository: taken in the catalog, by a run under way (other than
    `run`), or on the publisher (one request to a forge). Empty when it is free."""
    if Service.objects.filter(slug=name).exists():
        return [f"A service called {name} already exists; choose another name."]
    pending = ScaffoldRun.objects.filter(
        status__in=(ScaffoldRun.Status.QUEUED, ScaffoldRun.Status.RUNNING), answers__name=name
    )
    if run is not None:
        pending = pending.exclude(pk=run.pk)
    if pending.exists():
        return [f"A service called {name} is being created right now; choose another name."]
    try:
        if publishers.publisher().exists(name=name):
            return [f"A repository called {name} already exists; choose another name."]
    except publishers.PublishError as error:  # a name the publisher refuses, or a forge that did not answer
        return [str(error)]
    return []


def answers_check(
    *,
    path: registry.GoldenPath,
    answers: dict[str, Any],
    owner: Team | None,
    user: User,
    run: ScaffoldRun | None = None,
) -> dict[str, list[str]]:
    """Every reason these answers cannot be used, by field; the same checks for the wizard and the API.

    `run`: the run these answers belong to, once it exists (it does not compete with itself for the name)."""
    errors = path.validate(answers)
    name = answers.get("name")
    if isinstance(name, str) and not errors.get("name") and (taken := name_check(name, run=run)):
        errors["name"] = taken
    if owner is not None and not user.is_staff and not Membership.objects.filter(team=owner, user=user).exists():
        errors["owner"] = [f"You can only create services for a team you belong to; you are not in {owner}."]
    return errors


@transaction.atomic
def scaffold_request(
    *,
    path: registry.GoldenPath,
    answers: dict[str, Any],
    owner: Team,
    system: System | None,
    requested_by: User,
    display_name: str = "",
) -> ScaffoldRun:
    """Record a scaffold run after checking everything that can be checked up front; a worker runs it on commit.

    `display_name`: the service's name as people read it; empty, it is made from the slug when the service is."""
    answers = {**path.defaults(), **answers}
    display_name = display_name.strip()
    errors = answers_check(path=path, answers=answers, owner=owner, user=requested_by)
    if display_errors := display_name_errors(display_name):
        errors["display_name"] = display_errors
    # Membership is checked itself: an answer named "owner" (no path has one) is a field error, not a 403.
    if not requested_by.is_staff and not Membership.objects.filter(team=owner, user=requested_by).exists():
        raise PermissionDenied(errors["owner"][0])
    if errors:
        raise ValidationError(errors)
    run = ScaffoldRun.objects.create(
        golden_path=path.name,
        golden_path_version=path.version,
        answers=answers,
        display_name=display_name,
        owner=owner,
        system=system,
        requested_by=requested_by,
    )
    audit.event_record(
        actor=requested_by,
        action="scaffold.requested",
        target=run,
        after={"golden_path": f"{path.name}@{path.version}", "name": answers.get("name"), "owner": owner.slug},
    )
    tasks.run_scaffold.delay_on_commit(run.pk)
    return run


def scaffold_claim(*, run_id: int) -> ScaffoldRun | None:
    """QUEUED → RUNNING, counting the attempt and taking its lease; None if another delivery already has it."""
    claimed = ScaffoldRun.objects.filter(pk=run_id, status=ScaffoldRun.Status.QUEUED).update(
        status=ScaffoldRun.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        lease_until=leases.lease_until(),
    )
    return ScaffoldRun.objects.select_related("owner", "system", "requested_by").get(pk=run_id) if claimed else None


class Timeline:
    """Records each step's status and duration on a run (or a golden path update) as it happens.

    Steps an earlier attempt left (marked interrupted by the sweeper) stay at the top, so the page says what happened
    to the worker that died. Every write is conditional on this attempt still holding the run: a worker whose lease
    was taken over gets `LeaseLost` at its next step instead of overwriting the new attempt's timeline."""

    def __init__(self, run: Any, heartbeat: leases.Heartbeat | None = None) -> None:
        self.run = run
        self.heartbeat = heartbeat
        self.run.steps = [step for step in run.steps or [] if step.get("status") == "interrupted"]

    def step(self, name: str) -> "_Step":
        if self.heartbeat is not None and self.heartbeat.lost.is_set():
            raise leases.LeaseLost(f"{self.run} was taken over by another attempt.")
        return _Step(self, name)

    def save(self) -> None:
        if not leases.owned(self.run).update(steps=self.run.steps):
            raise leases.LeaseLost(f"{self.run} was taken over by another attempt.")


class _Step:
    def __init__(self, timeline: Timeline, name: str) -> None:
        self.timeline, self.name = timeline, name
        self.entry: dict[str, Any] = {"name": name, "status": "running", "message": ""}

    def __enter__(self) -> dict[str, Any]:
        self.started = time.perf_counter()
        self.timeline.run.steps.append(self.entry)
        self.timeline.save()
        return self.entry

    def __exit__(self, kind: Any, error: Any, _traceback: Any) -> None:
        self.entry["duration_ms"] = round((time.perf_counter() - self.started) * 1000)
        self.entry["status"] = "failed" if error else "done"
        if error:
            self.entry["message"] = str(error)[:1000]
        self.timeline.save()


def scaffold_execute(*, run: ScaffoldRun, path: registry.GoldenPath | None = None) -> ScaffoldRun:
    """Validate → render → publish → register (with runbook, ADRs and grants) → audit; FAILED with a reason else.

    `run` is a claimed run (RUNNING, holding a lease), renewed here while the steps run. `path`: the golden path to
    render, when it is not the one golden_paths/ offers now (an earlier release)."""
    with leases.Heartbeat(run) as heartbeat:
        return _execute(run=run, path=path or registry.golden_path_get(run.golden_path), heartbeat=heartbeat)


def _execute(*, run: ScaffoldRun, path: registry.GoldenPath | None, heartbeat: leases.Heartbeat) -> ScaffoldRun:
    timeline = Timeline(run, heartbeat)
    name = str(run.answers.get("name", ""))
    published = False
    workdir = leases.work_folder("scaffold", run)
    try:
        with timeline.step("validate") as entry:
            if path is None or path.version != run.golden_path_version:
                raise ValidationError(f"Golden path {run.golden_path}@{run.golden_path_version} is not available.")
            errors = answers_check(path=path, answers=run.answers, owner=run.owner, user=run.requested_by, run=run)
            if errors:
                raise ValidationError("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
            entry["message"] = f"{path.title} {path.version}"
        data = {
            **run.answers,
            "owner": run.owner.slug,
            "system": run.system.slug if run.system else "",
            "golden_path": path.name,
            "golden_path_version": path.version,
            "author": run.requested_by.get_username(),
            "today": timezone.localdate().isoformat(),
            "runway_url": settings.PORTAL_URL,  # where app/flags.py evaluates flags (OFREP)
        }
        destination = workdir / name
        with timeline.step("render") as entry:
            # Rendered from the recorded version, so the project's .copier-answers.yml names a tag it can update from.
            recorded = versions.version_record(path)
            files = render_in_child(template=recorded.store, destination=destination, data=data, ref=recorded.ref)
            entry["message"] = f"{len(files)} files"
        with timeline.step("publish") as entry:
            user = run.requested_by
            author = (user.get_full_name() or user.get_username(), user.email or f"{user.get_username()}@localhost")
            repo = publishers.publisher().publish(
                name=name, worktree=destination, author=author, message=f"Create {name} from {path.name} {path.version}"
            )
            published = True
            run.repository_url = repo.url
            entry["message"] = repo.url
        with timeline.step("register") as entry:
            service = _register(run=run, path=path, destination=destination)
            entry["message"] = f"{service.slug}, owned by {run.owner}"
        with timeline.step("audit") as entry:
            entry["message"] = "recorded"
        run.status, run.service = ScaffoldRun.Status.SUCCEEDED, service
    except (
        ValidationError,
        RenderError,
        publishers.PublishError,
        PermissionDenied,
        OSError,
        doc_files.FileError,
        versions.VersionStoreError,
    ) as error:
        left = ""
        if published:
            try:
                publishers.publisher().unpublish(name=name)
            except publishers.PublishError as cleanup:  # the run fails all the same, and says what it left behind
                left = f" The repository {name} could not be removed ({cleanup}); delete it by hand."
            run.repository_url = ""
        run.status = ScaffoldRun.Status.FAILED
        run.error = ("; ".join(error.messages) if isinstance(error, ValidationError) else str(error)) + left
        log.warning("scaffold_failed", run=str(run.uuid), error=run.error)
    finally:
        leases.work_remove("scaffold", run)
    run.finished_at, run.lease_until = timezone.now(), None
    fields = ["status", "service", "repository_url", "error", "finished_at", "steps", "lease_until"]
    if not leases.owned(run).update(**{field: getattr(run, field) for field in fields}):
        raise leases.LeaseLost(f"{run} was taken over by another attempt; this one's outcome is dropped.")
    return run


@transaction.atomic
def _register(*, run: ScaffoldRun, path: registry.GoldenPath, destination: Path) -> Service:
    """The catalog entry, its docs and grants, and the run's audit event, all in one transaction."""
    answers = run.answers
    service = catalog_services.service_create(
        created_by=run.requested_by,
        owner=run.owner,
        slug=answers["name"],
        name=run.service_name,
        description=str(answers.get("description", ""))[:5000],
        system=run.system,
        lifecycle="experimental",
        language="Python",
        repository_url=run.repository_url,
        golden_path=path.name,
        golden_path_version=path.version,
        tags=[tag for tag in path.tags if tag],
    )
    # Every golden path ships a runway.yaml, so a new service can deploy to every environment from day one.
    deployment_services.targets_default(service=service)
    docs = destination / "docs"
    for runbook_file in sorted(docs.glob("runbook*.md")):
        parsed = doc_files.runbook_parse(filename=runbook_file.name, text=runbook_file.read_text())
        techdocs_services.runbook_create(
            service=service,
            title=parsed.title,
            body=parsed.body,
            created_by=run.requested_by,
            slug=parsed.slug,
            review_interval_days=parsed.review_interval_days,
        )
    for adr_file in sorted((docs / "adr").glob("*.md")):
        parsed_adr = doc_files.adr_parse(filename=adr_file.name, text=adr_file.read_text())
        techdocs_services.adr_create(
            created_by=run.requested_by,
            service=service,
            title=parsed_adr.title,
            number=parsed_adr.number,
            status=parsed_adr.status,
            date=parsed_adr.date,
            deciders=parsed_adr.deciders,
            body=parsed_adr.body,
        )
    audit.event_record(
        actor=run.requested_by,
        action="scaffold.succeeded",
        target=run,
        service_id=service.pk,
        after={"service": service.slug, "repository": run.repository_url, "golden_path": f"{path.name}@{path.version}"},
    )
    return service


def scaffold_retry(*, run: ScaffoldRun, requested_by: User) -> ScaffoldRun:
    """Queue a failed run again with the same answers (a new run, so the failed one keeps its timeline)."""
    if run.status != ScaffoldRun.Status.FAILED:
        raise ValidationError("Only a failed run can be retried.")
    path = registry.golden_path_get(run.golden_path)
    if path is None:
        raise ValidationError(f"Golden path {run.golden_path} is no longer available.")
    answers = {k: v for k, v in run.answers.items() if k in path.properties}
    return scaffold_request(
        path=path,
        answers=answers,
        owner=run.owner,
        system=run.system,
        requested_by=requested_by,
        display_name=run.display_name,
    )


INTERRUPTED = "The worker running this step stopped before it finished (its lease lapsed)."


def scaffold_sweep() -> int:
    """Finish every RUNNING run whose lease lapsed (its worker died): retried while it has attempts left, else failed.

    Either way the step that was running is marked interrupted, the run's work folder goes, and a repository the dead
    attempt made is removed (unless the service was registered, in which case the run had in fact succeeded)."""
    now = timezone.now()
    lapsed = ScaffoldRun.objects.filter(status=ScaffoldRun.Status.RUNNING).filter(
        # Runs claimed before leases existed have none: the old fifteen minutes stand for theirs.
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, started_at__lt=now - timedelta(minutes=15))
    )
    swept = 0
    for pk in lapsed.values_list("pk", flat=True):
        swept += _sweep_one(pk)
    leases.work_sweep()
    return swept


def _sweep_one(pk: int) -> int:
    with transaction.atomic():
        run = (
            ScaffoldRun.objects.select_for_update(skip_locked=True)
            .filter(pk=pk, status=ScaffoldRun.Status.RUNNING)
            .first()
        )
        if run is None or (run.lease_until is not None and run.lease_until > timezone.now()):
            return 0  # another sweeper has it, or the worker renewed in the meantime
        leases.work_remove("scaffold", run)
        run.steps = leases.interrupt(run.steps, INTERRUPTED)
        run.lease_until = None
        registered = AuditEvent.objects.filter(
            action="scaffold.succeeded", object_type=ScaffoldRun._meta.label_lower, object_id=str(run.pk)
        ).first()
        if registered is not None:  # the worker died after registering: the run did its work
            run.status, run.finished_at = ScaffoldRun.Status.SUCCEEDED, timezone.now()
            run.service = Service.objects.filter(pk=registered.service_id or 0).first()
            run.repository_url = run.service.repository_url if run.service else ""
            run.steps = [
                {**step, "status": "done", "message": "recorded"} if step.get("name") == "audit" else step
                for step in run.steps
            ]
            run.save(update_fields=["status", "finished_at", "service", "repository_url", "steps", "lease_until"])
            return 1
        left = _unpublish_orphan(run)
        if run.attempts < MAX_ATTEMPTS and not left:
            run.status = ScaffoldRun.Status.QUEUED
            run.save(update_fields=["status", "steps", "lease_until"])
            audit.event_record(
                actor=None,
                action="scaffold.retried",
                target=run,
                after={"attempt": run.attempts + 1, "reason": "the worker running it stopped"},
            )
            tasks.run_scaffold.delay_on_commit(run.pk)
            log.warning("scaffold_retried", run=str(run.uuid), attempts=run.attempts)
            return 1
        tries = f"{run.attempts} times" if run.attempts > 1 else "once"
        run.error = left or (
            f"The worker running this scaffold stopped before it finished ({tries}); nothing was kept. Retry it."
        )
        run.status, run.finished_at = ScaffoldRun.Status.FAILED, timezone.now()
        run.save(update_fields=["status", "finished_at", "error", "steps", "lease_until"])
        log.warning("scaffold_failed", run=str(run.uuid), error=run.error)
        return 1


def _unpublish_orphan(run: ScaffoldRun) -> str:
    """Remove the repository a dead attempt made; a sentence naming what is left when that fails, else ""."""
    name = str(run.answers.get("name", ""))
    publisher = publishers.publisher()
    # A forge is shared: a run that never reached its publish step did not make a repository called `name`.
    reached = publisher.kind == "local" or any(step.get("name") == "publish" for step in run.steps or [])
    if not reached or Service.objects.filter(slug=name).exists():
        return ""
    try:
        publisher.unpublish(name=name)
    except publishers.PublishError as cleanup:  # the run fails all the same, and says what it left behind
        return (
            f"The worker running this scaffold stopped before it finished, and its repository {name} could not be "
            f"removed ({cleanup}); delete it by hand, then retry."
        )
    return ""
