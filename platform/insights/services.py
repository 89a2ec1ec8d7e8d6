"""Insights' writes: the change set of each release, recorded when the release is (deployments' release_recorded).

Where the commits come from, in order: the commits a CD system reported with the deploy event; Runway's own git
repository of the service (GIT_ROOT, the scaffolded services' and the demo's); the forge of a GitHub or GitLab
publisher, asked by a worker after the release's transaction commits (a network call never runs inside it). A
release with none of them has an `unavailable` change set that says why, and its deployments no lead time.

The base, "the previous successful production release", is read when the release is recorded: the release of the
service's latest successful deployment to a protected environment. Nothing is recomputed when history changes later.
"""

from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from deployments.models import Deployment, Environment, Release, State
from insights import rollups, selectors, tasks
from insights.models import ChangeCommit, ChangeSet
from scaffolder import publishers

log = structlog.get_logger(__name__)
# The states in which a deployment counts in a figure (a reported one's outcome is in runtime_state).
OUTCOME_STATES = frozenset(
    {State.SUCCEEDED, State.FAILED, State.ROLLING_BACK, State.ROLLED_BACK, State.ROLLBACK_FAILED, State.EXTERNAL}
)


def _base_release(release: Release) -> Release | None:
    """The release of the service's latest successful production deployment, other than this one."""
    protected = Environment.objects.filter(protected=True).values("pk")
    latest = (
        Deployment.objects.filter(selectors.SUCCESS, service_id=release.service_id, environment__in=protected)
        .exclude(release_id=release.pk)
        .order_by("-finished_at", "-pk")
        .select_related("release")
        .first()
    )
    return latest.release if latest else None


def _store(change_set: ChangeSet, found: publishers.Commits, source: str, note: str = "") -> ChangeSet:
    change_set.commits.all().delete()
    ChangeCommit.objects.bulk_create(
        [ChangeCommit(change_set=change_set, sha=c.sha, committed_at=c.committed_at) for c in found.commits],
        batch_size=1000,
        ignore_conflicts=True,  # a CD system may list one commit twice
    )
    change_set.source = source
    change_set.status = ChangeSet.Status.RECORDED
    change_set.commit_count = found.total
    change_set.complete = found.complete
    change_set.first_commit_at = found.commits[0].committed_at if found.commits else None
    change_set.note = note or ("" if found.commits else "No commit between the two releases: nothing new shipped.")
    change_set.save()
    # Deployments of the release made before its change set arrived (a forge answers later) gain a lead time.
    _refresh_on_commit(list(Deployment.objects.filter(release_id=change_set.release_id).values_list("pk", flat=True)))
    return change_set


def change_set_record(*, release: Release, commits: list[dict[str, Any]] | None = None) -> ChangeSet:
    """Record `release`'s change set from `commits` (reported), its git repository or its forge (then `pending`
    until a worker asks). A release's change set is recorded once; reported commits only fill one not recorded."""
    existing = ChangeSet.objects.filter(release=release).first()
    if existing and (existing.status == ChangeSet.Status.RECORDED or commits is None):
        return existing
    change_set = existing or ChangeSet(release=release, base_release=_base_release(release))
    if commits is not None:
        found = publishers._ordered(
            publishers.Commit(str(c["sha"]), c["committed_at"]) for c in {c["sha"]: c for c in commits}.values()
        )
        change_set.save()
        return _store(change_set, found, ChangeSet.Source.REPORTED)
    slug, base = release.service.slug, change_set.base_release
    base_sha = base.commit_sha if base else None
    if publishers.local_exists(name=slug):
        change_set.save()
        try:
            found = publishers.local_commits_between(name=slug, base=base_sha, head=release.commit_sha)
        except publishers.PublishError as error:
            return _unavailable(change_set, ChangeSet.Source.GIT, f"Runway's repository could not list it: {error}")
        return _store(change_set, found, ChangeSet.Source.GIT)
    if settings.SCAFFOLD_PUBLISHER in ("github", "gitlab"):
        change_set.source, change_set.status = ChangeSet.Source.FORGE, ChangeSet.Status.PENDING
        change_set.note = "Waiting for a worker to ask the forge."
        change_set.save()
        tasks.change_set_fetch.delay_on_commit(change_set.pk)
        return change_set
    return _unavailable(
        change_set,
        ChangeSet.Source.NONE,
        "No repository in Runway and no commits reported: report them with the deploy event (commits).",
    )


def _unavailable(change_set: ChangeSet, source: str, note: str) -> ChangeSet:
    change_set.source, change_set.status, change_set.note = source, ChangeSet.Status.UNAVAILABLE, note[:300]
    change_set.first_commit_at, change_set.commit_count = None, 0
    change_set.save()
    return change_set


def change_set_fetch(*, change_set_id: int) -> ChangeSet | None:
    """Ask the forge for a pending change set's commits; a failure leaves it `unavailable` with the forge's answer.
    Only a pending change set is fetched, so a second delivery does nothing."""
    change_set = ChangeSet.objects.select_related("release__service", "base_release").filter(pk=change_set_id).first()
    if change_set is None or change_set.status != ChangeSet.Status.PENDING:
        return None
    release, base = change_set.release, change_set.base_release
    try:
        found = publishers.publisher().commits_between(
            name=release.service.slug, base=base.commit_sha if base else None, head=release.commit_sha
        )
    except publishers.PublishError as error:
        log.warning("change set not fetched", release=release.pk, error=str(error))
        with transaction.atomic():
            return _unavailable(change_set, ChangeSet.Source.FORGE, str(error))
    with transaction.atomic():
        return _store(change_set, found, ChangeSet.Source.FORGE)


def _refresh_on_commit(deployment_ids: list[int]) -> None:
    if rollups.enabled():
        for deployment_id in deployment_ids:
            tasks.rollups_refresh.delay_on_commit(deployment_id)


def on_deployment_saved(sender: Any, *, instance: Deployment, **kwargs: Any) -> None:
    """post_save of a deployment: once it has an outcome, its rollup rows are rewritten after the commit."""
    if instance.state in OUTCOME_STATES:
        _refresh_on_commit([instance.pk])


def on_incident_saved(sender: Any, *, instance: Any, **kwargs: Any) -> None:
    """post_save of an incident: its start and mitigation move the figures of the deployments it names."""
    _refresh_on_commit(list(instance.deployment_links.values_list("deployment_id", flat=True)))


def on_incident_link_changed(sender: Any, *, instance: Any, **kwargs: Any) -> None:
    """A deployment named (or no longer named) as an incident's cause or fix."""
    _refresh_on_commit([instance.deployment_id])


def on_release_recorded(
    sender: Any, *, release: Release, created: bool, commits: list[dict[str, Any]] | None, **kwargs: Any
) -> None:
    """deployments' release_recorded, connected in InsightsConfig.ready()."""
    if created or commits is not None:
        change_set_record(release=release, commits=commits)


# A team's and a system's rollup rows sum the services they hold today: a service that moves (a transfer, a new
# system, catalog-as-code) takes its history along, so both sides' rows are rewritten in the moving transaction.
GROUPS_SEEN = "_insights_groups"


def on_service_loaded(sender: Any, *, instance: Any, **kwargs: Any) -> None:
    """post_init of a service: remember its team and system as loaded (read from __dict__: a deferred field must not
    cost a query per instance)."""
    setattr(instance, GROUPS_SEEN, (instance.__dict__.get("owner_id"), instance.__dict__.get("system_id")))


def on_service_saved(sender: Any, *, instance: Any, created: bool, **kwargs: Any) -> None:
    """post_save of a service: when its team or system changed, rewrite the old and the new one's rows."""
    old_team, old_system = getattr(instance, GROUPS_SEEN, (None, None))
    new_team, new_system = instance.owner_id, instance.system_id
    setattr(instance, GROUPS_SEEN, (new_team, new_system))
    if created or not rollups.enabled():
        return
    teams = sorted({old_team, new_team} - {None}) if old_team != new_team else []
    systems = sorted({old_system, new_system} - {None}) if old_system != new_system else []
    if teams or systems:
        rollups.groups_regroup(teams=teams, systems=systems)
