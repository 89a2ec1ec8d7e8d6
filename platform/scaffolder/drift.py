"""Golden path drift: which services are behind their path, and "update from golden path".

An update is made on a worker: clone the service's repository, let copier merge the newer version of the path into
a branch (`runway/golden-path-<version>`), commit it as the person who asked, and push the branch. The update's page
shows the diff against main and any conflicts before anyone merges; a branch with conflicts is fixed by a person on
the branch itself and checked again. On the local publisher merging is a real `git merge` into main, after which the
service is recorded as made from the new version.

On a forge (GitHub, GitLab) the repository is reached through the publisher: the branch is pushed there with a pull
or merge request opened for it, the review is read from a scratch clone, and people merge (or close) the request on
the forge; "check again" asks the forge what became of it and records the new version once it is merged.
"""

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
import yaml
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from packaging.version import InvalidVersion, Version

from audit import services as audit
from catalog import cache as catalog_cache
from catalog import documents as catalog_documents
from catalog.models import Service
from catalog.permissions import user_can
from scaffolder import leases, publishers, registry, tasks, versions
from scaffolder.models import GoldenPathUpdate
from scaffolder.render import RenderError, render_in_child
from scaffolder.services import Timeline

log = structlog.get_logger(__name__)

BRANCH = re.compile(r"^runway/golden-path-\d+\.\d+\.\d+$")
# The lines copier writes around a conflict (`conflict="inline"`).
CONFLICT_MARKERS = r"^(<<<<<<< before updating|>>>>>>> after updating)$"
DIFF_MAX_CHARS = 400_000
Status = GoldenPathUpdate.Status


RUNWAY = ("Runway", "runway@localhost")


def _git(cwd: Path, *args: str, author: tuple[str, str] = RUNWAY, ok: tuple[int, ...] = (0,)) -> str:
    """The publishers' git, in `cwd`; commits are Runway's unless `author` says whose."""
    return publishers.git_run(*args, cwd=cwd, author=author, ok=ok, timeout=120)


# --- Drift ---------------------------------------------------------------------------------------------------------


def _version(text: str | None) -> Version | None:
    try:
        return Version(text or "")
    except InvalidVersion:
        return None


def latest_for(service: Service) -> registry.GoldenPath | None:
    """The golden path `service` was made from, when it has a newer version than the service's."""
    if not service.golden_path:
        return None
    path = registry.golden_path_get(service.golden_path)
    if path is None:
        return None
    current, latest = _version(service.golden_path_version), _version(path.version)
    if latest is None or (current is not None and current >= latest):
        return None
    return path


def update_blockers(*, service: Service) -> list[str]:
    """Every reason an update from the golden path cannot be made for `service` now; empty when it can."""
    try:
        return _blockers(service, publishers.publisher())
    except (publishers.PublishError, ImproperlyConfigured) as error:  # a forge that did not answer; never the token
        return [f"The repository of {service.name} cannot be reached: {error}"]


def _blockers(service: Service, publisher: publishers.Publisher) -> list[str]:
    if not service.golden_path:
        return [f"{service.name} was not made from a golden path."]
    if registry.golden_path_get(service.golden_path) is None:
        return [f"The golden path {service.golden_path} is no longer offered."]
    path = latest_for(service)
    reasons = []
    if path is None:
        reasons.append(f"{service.name} is on the latest version of {service.golden_path}.")
    if service.lifecycle in Service.RETIRING:
        reasons.append(f"{service.name} is {service.get_lifecycle_display().lower()}; its repository takes no changes.")
    if not publishers.REPO_NAME.fullmatch(service.slug) or not publisher.exists(name=service.slug):
        where = "in Runway" if publisher.kind == "local" else f"on {publisher.label}"
        reasons.append(f"{service.name} has no repository {where} to make a branch in.")
    elif publisher.archived(name=service.slug):
        reasons.append(f"The repository of {service.name} is archived.")
    elif path is not None and not _recorded_version(service, publisher):
        reasons.append(
            f"The repository of {service.name} does not record which version of {service.golden_path} it was made "
            "from (no _commit in .copier-answers.yml on main), so the update has to be made by hand."
        )
    open_update = GoldenPathUpdate.objects.filter(service=service, status__in=GoldenPathUpdate.OPEN).first()
    if open_update is not None:
        reasons.append(f"An update to {open_update.to_version} is already open; merge or discard it first.")
    return reasons


def _recorded_version(service: Service, publisher: publishers.Publisher) -> str:
    """The golden path version main's .copier-answers.yml names, when this Runway's store holds it; else ""."""
    try:
        answers = yaml.safe_load(publisher.read_file(name=service.slug, path=".copier-answers.yml") or "")
    except yaml.YAMLError:
        return ""
    made_from = str(answers.get("_commit") or "") if isinstance(answers, dict) else ""
    if made_from and versions.version_recorded(name=str(service.golden_path), ref=made_from):
        return made_from
    return ""


# --- Requesting ----------------------------------------------------------------------------------------------------


def _require_change(user: User, service: Service) -> None:
    if not user_can(user, "catalog.change_service", service):
        raise PermissionDenied(f"Only the owners of {service.name} (or platform admins) can update it.")


@transaction.atomic
def update_request(*, service: Service, requested_by: User) -> GoldenPathUpdate:
    """Record an update of `service` to its golden path's latest version; a worker makes the branch on commit."""
    _require_change(requested_by, service)
    reasons = update_blockers(service=service)
    if reasons:
        raise ValidationError(reasons)
    path = latest_for(service)
    assert path is not None  # update_blockers said so
    try:
        with transaction.atomic():
            update = GoldenPathUpdate.objects.create(
                service=service,
                golden_path=path.name,
                from_version=service.golden_path_version or "",
                to_version=path.version,
                branch=f"runway/golden-path-{path.version}",
                requested_by=requested_by,
            )
    except IntegrityError as error:  # a second request at the same moment
        raise ValidationError("An update of this service is already open; merge or discard it first.") from error
    audit.event_record(
        actor=requested_by,
        action="golden_path_update.requested",
        target=update,
        service_id=service.pk,
        after={"golden_path": path.name, "from": update.from_version, "to": update.to_version},
    )
    tasks.run_golden_path_update.delay_on_commit(update.pk)
    return update


def update_claim(*, update_id: int) -> GoldenPathUpdate | None:
    """QUEUED → RUNNING, counting the attempt and taking its lease; None if another delivery already has it."""
    claimed = GoldenPathUpdate.objects.filter(pk=update_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, lease_until=leases.lease_until()
    )
    if not claimed:
        return None
    return GoldenPathUpdate.objects.select_related("service", "requested_by").get(pk=update_id)


# --- Making the branch ---------------------------------------------------------------------------------------------


def _author(user: User) -> tuple[str, str]:
    return (user.get_full_name() or user.get_username(), user.email or f"{user.get_username()}@localhost")


def _answers(worktree: Path) -> dict[str, Any]:
    answers_file = worktree / ".copier-answers.yml"
    if not answers_file.is_file():
        raise ValidationError(
            "The repository has no .copier-answers.yml, so Runway cannot tell which version it was made from."
        )
    try:
        answers = yaml.safe_load(answers_file.read_text())
    except yaml.YAMLError as error:
        raise ValidationError(f".copier-answers.yml cannot be read: {error}") from error
    if not isinstance(answers, dict) or not answers.get("_commit"):
        raise ValidationError(
            ".copier-answers.yml records no template version (_commit): the service was made before Runway kept "
            "golden path versions, so the update has to be made by hand."
        )
    return answers


def update_execute(*, update: GoldenPathUpdate) -> GoldenPathUpdate:
    """check → clone → merge (copier update in a child process) → commit → publish the branch; FAILED with a reason.

    `update` is a claimed update (RUNNING, holding a lease), renewed here while the steps run."""
    with leases.Heartbeat(update) as heartbeat:
        return _execute(update, heartbeat)


def _execute(update: GoldenPathUpdate, heartbeat: leases.Heartbeat) -> GoldenPathUpdate:
    service = update.service
    timeline = Timeline(update, heartbeat)
    workdir = leases.work_folder("update", update)
    worktree = workdir / service.slug
    try:
        publisher = publishers.publisher()
        with timeline.step("check") as entry:
            path = registry.golden_path_get(update.golden_path)
            if path is None or path.version != update.to_version:
                raise ValidationError(f"Golden path {update.golden_path}@{update.to_version} is no longer offered.")
            if service.lifecycle in Service.RETIRING or publisher.archived(name=service.slug):
                raise ValidationError(f"{service.name} is being retired; its repository takes no changes.")
            if not BRANCH.match(update.branch):
                raise ValidationError(f"{update.branch!r} is not a branch name Runway makes.")
            recorded = versions.version_record(path)
            update.to_ref = recorded.ref
            entry["message"] = f"{path.title} {update.from_version} → {recorded.ref}"
        with timeline.step("clone") as entry:
            publisher.clone(name=service.slug, into=worktree)
            update.base_sha = _git(worktree, "rev-parse", "HEAD").strip()
            answers = _answers(worktree)
            made_from = str(answers["_commit"])
            if not versions.version_recorded(name=path.name, ref=made_from):
                raise ValidationError(
                    f"Version {made_from} of {path.name} is not in this Runway's golden path store, so there is "
                    "nothing to compare the service with; the update has to be made by hand."
                )
            _git(worktree, "checkout", "--quiet", "-b", update.branch)
            if answers.get("_src_path") != str(recorded.store):
                # Copier re-renders the old version from `_src_path`; point it at this Runway's store.
                text = (worktree / ".copier-answers.yml").read_text()
                text = re.sub(r"(?m)^_src_path:.*$", f"_src_path: {recorded.store}", text)
                (worktree / ".copier-answers.yml").write_text(text)
                _git(worktree, "commit", "--quiet", "--no-verify", "-am", "Point .copier-answers.yml at Runway")
            entry["message"] = f"main at {update.base_sha[:10]}, made from {made_from}"
        with timeline.step("merge") as entry:
            render_in_child(
                template=recorded.store,
                destination=worktree,
                data={"golden_path_version": path.version},
                ref=recorded.ref,
                update=True,
            )
            _git(worktree, "add", "--all")
            changed = _git(worktree, "diff", "--cached", "--name-only").splitlines()
            entry["message"] = f"{len(changed)} files changed"
        with timeline.step("commit") as entry:
            _git(
                worktree,
                "commit",
                "--quiet",
                "--no-verify",
                "--allow-empty",
                "-m",
                f"Update from golden path {path.name} {update.from_version} → {path.version}",
                author=_author(update.requested_by),
            )
            update.head_sha = _git(worktree, "rev-parse", "HEAD").strip()
            entry["message"] = update.head_sha[:10]
        with timeline.step("publish") as entry:
            # The branch is Runway's own; a leftover from a discarded update is replaced.
            publisher.push(name=service.slug, worktree=worktree, branch=update.branch, force=True)
            entry["message"] = update.branch
            if publisher.change_request_label:
                _review(update, publisher)
                update.change_request_url = publisher.open_change_request(
                    name=service.slug, branch=update.branch, title=_request_title(update), body=_request_body(update)
                )
                entry["message"] = f"{update.branch}: {update.change_request_url}"
        if not publisher.change_request_label:
            _review(update, publisher)
    except (
        ValidationError,
        RenderError,
        publishers.PublishError,
        ImproperlyConfigured,
        versions.VersionStoreError,
        OSError,
    ) as error:
        update.status = Status.FAILED
        update.error = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        log.warning("golden_path_update_failed", update=str(update.uuid), error=update.error)
    finally:
        leases.work_remove("update", update)
    update.finished_at, update.lease_until = timezone.now(), None
    if not leases.owned(update).exists():
        raise leases.LeaseLost(f"{update} was taken over; this attempt's outcome is dropped.")
    update.save()
    return update


# --- Reviewing -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "ctx", "hunk", "conflict"
    text: str


@dataclass(frozen=True)
class DiffFile:
    path: str
    lines: list[DiffLine]


def _request_title(update: GoldenPathUpdate) -> str:
    return f"Update from golden path {update.golden_path} {update.from_version or '?'} → {update.to_version}"


def _request_body(update: GoldenPathUpdate) -> str:
    """The change request's description: what was merged in and which files need a person."""
    lines = [
        f"Runway merged version {update.to_version} of the golden path `{update.golden_path}` into this branch with "
        f"`copier update` (the service was made from {update.from_version or 'an unknown version'}), as asked by "
        f"{update.requested_by.get_username()}.",
        "",
    ]
    if update.conflicted:
        lines += [
            f"**{len(update.conflicted)} file(s) with conflicts**: the service and the golden path changed the same "
            "lines. Keep what you need between the `<<<<<<< before updating` and `>>>>>>> after updating` lines, "
            "push to this branch, then press *Check again* in Runway:",
            "",
            *(f"- `{path}`" for path in update.conflicted),
        ]
    else:
        lines.append("No conflicts: review the changes and merge when you are happy with them.")
    lines += ["", f"Runway: {settings.PORTAL_URL}{update.get_absolute_url()}"]
    return "\n".join(lines)


def _review(update: GoldenPathUpdate, publisher: publishers.Publisher | None = None) -> None:
    """Read the branch as it is in the repository now: its files against main, the diff, the conflicts, the status.

    The local publisher's bare repository is read in place; a forge's branch and main are fetched into a scratch
    clone first."""
    publisher = publisher or publishers.publisher()
    if publisher.kind == "local":
        _review_in(update, Path(publishers.local_path(name=update.service.slug)))
        return
    with leases.scratch("review") as workdir:
        clone = workdir / update.service.slug
        publisher.clone(name=update.service.slug, into=clone)
        publisher.fetch(name=update.service.slug, worktree=clone, branch=update.branch)
        _review_in(update, clone)


def _review_in(update: GoldenPathUpdate, bare: Path) -> None:
    head = _git(bare, "rev-parse", "--verify", f"refs/heads/{update.branch}^{{commit}}").strip()
    span = f"refs/heads/main...{head}"
    status_lines = _git(bare, "diff", "--name-status", "--no-renames", span).splitlines()
    changes = {"A": "added", "M": "modified", "D": "deleted", "T": "modified"}
    files: list[dict[str, Any]] = [
        {"path": line.split("\t", 1)[1], "change": changes.get(line[:1], "modified"), "conflicted": False}
        for line in status_lines
        if "\t" in line
    ]
    present = [str(entry["path"]) for entry in files if entry["change"] != "deleted"]
    conflicted: set[str] = set()
    if present:
        found = _git(bare, "grep", "-l", "-E", CONFLICT_MARKERS, head, "--", *present, ok=(0, 1))
        conflicted = {line.split(":", 1)[1] for line in found.splitlines() if ":" in line}
    for entry in files:
        entry["conflicted"] = entry["path"] in conflicted
    diff = _git(bare, "diff", "--no-color", "--no-renames", span)
    update.head_sha = head
    update.files = files
    update.diff_truncated = len(diff) > DIFF_MAX_CHARS
    update.diff = diff[:DIFF_MAX_CHARS]
    update.status = Status.CONFLICTS if conflicted else Status.READY
    update.error = ""


def diff_files(diff: str) -> list[DiffFile]:
    """A unified diff cut into files and typed lines, for the page to colour."""
    files: list[DiffFile] = []
    lines: list[DiffLine] = []
    for raw in diff.splitlines():
        if raw.startswith("diff --git "):
            lines = []
            files.append(DiffFile(path=raw.split(" b/", 1)[-1], lines=lines))
        elif not files or raw.startswith(("index ", "--- ", "+++ ", "new file", "deleted file", "similarity")):
            continue
        elif raw.startswith("@@"):
            lines.append(DiffLine("hunk", raw))
        elif re.match(r"^\+(<<<<<<< before updating|=======|>>>>>>> after updating)$", raw):
            lines.append(DiffLine("conflict", raw))
        elif raw.startswith("+"):
            lines.append(DiffLine("add", raw))
        elif raw.startswith("-"):
            lines.append(DiffLine("del", raw))
        else:
            lines.append(DiffLine("ctx", raw))
    return files


def _locked(update: GoldenPathUpdate, user: User, *allowed: str) -> GoldenPathUpdate:
    _require_change(user, update.service)
    locked = GoldenPathUpdate.objects.select_for_update().select_related("service").get(pk=update.pk)
    if locked.status not in allowed:
        raise ValidationError(f"This update is {locked.get_status_display().lower()}.")
    return locked


REVIEW_FIELDS = ["head_sha", "files", "diff", "diff_truncated", "status", "error"]


def _publisher() -> publishers.Publisher:
    try:
        return publishers.publisher()
    except ImproperlyConfigured as error:
        raise ValidationError(f"Runway's publisher is misconfigured: {error}") from None


@transaction.atomic
def update_refresh(*, update: GoldenPathUpdate, user: User) -> GoldenPathUpdate:
    """Read the branch again, after someone pushed a fix for its conflicts; on a forge, also ask what became of its
    change request: merged there → MERGED (the service records the new version), closed unmerged → DISCARDED."""
    update = _locked(update, user, Status.READY, Status.CONFLICTS)
    publisher = _publisher()
    if update.change_request_url:
        return _follow_change_request(update, user, publisher)
    try:
        _review(update, publisher)
    except publishers.PublishError as error:
        raise ValidationError(f"The branch {update.branch} cannot be read: {error}") from None
    update.save(update_fields=REVIEW_FIELDS)
    return update


def _follow_change_request(update: GoldenPathUpdate, user: User, publisher: publishers.Publisher) -> GoldenPathUpdate:
    what = publisher.change_request_label or "change request"
    name = update.service.slug
    try:
        state = publisher.change_request_state(name=name, url_or_number=update.change_request_url)
        if state == "open":
            _review(update, publisher)
    except publishers.PublishError as error:
        raise ValidationError(f"The {what} of {update.branch} cannot be read: {error}") from None
    if state == "open":
        update.save(update_fields=REVIEW_FIELDS)
        return update
    # Merged or closed on the forge: the branch has done its work (the files and diff last read are kept).
    try:
        publisher.delete_branch(name=name, branch=update.branch)
    except publishers.PublishError as error:
        log.warning("golden_path_update_branch_kept", update=str(update.uuid), error=str(error))
    if state == "merged":
        return _record_merged(update, user)
    update.status = Status.DISCARDED
    update.save(update_fields=["status"])
    audit.event_record(
        actor=user,
        action="golden_path_update.discarded",
        target=update,
        service_id=update.service_id,
        after={"change_request": update.change_request_url, "closed_on": publisher.kind},
    )
    return update


def _record_merged(update: GoldenPathUpdate, user: User) -> GoldenPathUpdate:
    """The branch is on main: the service is made from the new version now (audited)."""
    service = update.service
    before = service.golden_path_version
    Service.objects.filter(pk=service.pk).update(golden_path_version=update.to_version, updated_at=timezone.now())
    catalog_documents.refresh([service.pk])  # a queryset update saves no model: the stored document follows here
    catalog_cache.bump()  # a queryset update sends no signal; cached catalog pages and API lists show the version
    update.status, update.merged_by, update.merged_at = Status.MERGED, user, timezone.now()
    update.save()
    audit.event_record(
        actor=user,
        action="golden_path_update.merged",
        target=update,
        service_id=service.pk,
        before={"golden_path_version": before},
        after={"golden_path_version": update.to_version, "commit": update.head_sha},
    )
    return update


@transaction.atomic
def update_merge(*, update: GoldenPathUpdate, user: User) -> GoldenPathUpdate:
    """Merge the branch into main (a merge commit by `user`) and record the service as made from the new version.

    Only on the local publisher: on a forge people merge the change request there, and "check again" sees it."""
    update = _locked(update, user, Status.READY, Status.CONFLICTS)
    service = update.service
    if service.lifecycle in Service.RETIRING:
        raise ValidationError(f"{service.name} is being retired; its repository takes no changes. Discard the update.")
    publisher = _publisher()
    if update.change_request_url or publisher.change_request_label:
        where = update.change_request_url or publisher.label
        raise ValidationError(
            f"This update is merged on {publisher.label}, through its "
            f"{publisher.change_request_label or 'change request'} ({where}); then press Check again."
        )
    try:
        _review(update, publisher)
    except publishers.PublishError as error:
        raise ValidationError(f"The branch {update.branch} cannot be read: {error}") from error
    if update.status == Status.CONFLICTS:
        update.save(update_fields=REVIEW_FIELDS)
        raise ValidationError(
            f"{len(update.conflicted)} files still have conflict markers: {', '.join(update.conflicted)}."
        )
    with leases.scratch("merge") as workdir:
        worktree = workdir / service.slug
        try:
            publisher.clone(name=service.slug, into=worktree)
        except publishers.PublishError as error:
            raise ValidationError(f"The repository of {service.name} cannot be cloned: {error}") from error
        message = f"Merge golden path {update.golden_path} {update.to_version} into main"
        try:
            _git(worktree, "merge", "--no-ff", "--no-edit", "-m", message, update.head_sha, author=_author(user))
        except publishers.PublishError as error:
            raise ValidationError(
                f"main has changed the same lines as the branch since the update was made. Merge main into "
                f"{update.branch}, push it, and check again. ({error})"
            ) from error
        try:
            publisher.push(name=service.slug, worktree=worktree, branch="main")
        except publishers.PublishError as error:
            raise ValidationError(f"main moved while merging; try again. ({error})") from error
        try:
            publisher.delete_branch(name=service.slug, branch=update.branch)
        except publishers.PublishError as error:  # merged all the same; a leftover branch is replaced next time
            log.warning("golden_path_update_branch_kept", update=str(update.uuid), error=str(error))
    return _record_merged(update, user)


@transaction.atomic
def update_discard(*, update: GoldenPathUpdate, user: User) -> GoldenPathUpdate:
    """Drop an open update and its branch (closing its change request on a forge); the service stays on its version."""
    update = _locked(update, user, Status.READY, Status.CONFLICTS, Status.FAILED)
    name = update.service.slug
    try:
        publisher = publishers.publisher()
        if update.change_request_url:
            state = publisher.change_request_state(name=name, url_or_number=update.change_request_url)
            if state == "merged":
                raise ValidationError(
                    f"The {publisher.change_request_label} was merged on {publisher.label}; press Check again to "
                    "record the new version."
                )
            publisher.close_change_request(name=name, url_or_number=update.change_request_url)
        if (
            update.branch
            and BRANCH.match(update.branch)
            and publishers.REPO_NAME.fullmatch(name)
            and publisher.exists(name=name)
        ):
            publisher.delete_branch(name=name, branch=update.branch)
    except (publishers.PublishError, ImproperlyConfigured) as error:
        raise ValidationError(f"The branch {update.branch} cannot be removed: {error}") from None
    update.status = Status.DISCARDED
    update.save(update_fields=["status"])
    audit.event_record(actor=user, action="golden_path_update.discarded", target=update, service_id=update.service_id)
    return update


def update_sweep() -> int:
    """Fail RUNNING updates whose lease lapsed (their worker died), with the step that was running marked interrupted.

    Not retried: a dead attempt may have pushed the branch or opened its change request already; discarding the
    update removes both, and asking again starts clean."""
    now = timezone.now()
    lapsed = GoldenPathUpdate.objects.filter(status=Status.RUNNING).filter(
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, started_at__lt=now - timedelta(minutes=15))
    )
    swept = 0
    for pk in lapsed.values_list("pk", flat=True):
        with transaction.atomic():
            update = GoldenPathUpdate.objects.select_for_update(skip_locked=True).filter(pk=pk, status=Status.RUNNING)
            found = update.first()
            if found is None or (found.lease_until is not None and found.lease_until > timezone.now()):
                continue
            leases.work_remove("update", found)
            found.steps = leases.interrupt(found.steps, "The worker making this step stopped before it finished.")
            found.status, found.finished_at, found.lease_until = Status.FAILED, timezone.now(), None
            found.error = "The worker making this update stopped before it finished. Discard it and ask again."
            found.save(update_fields=["status", "finished_at", "lease_until", "steps", "error"])
            log.warning("golden_path_update_failed", update=str(found.uuid), error=found.error)
            swept += 1
    return swept
