"""Deployment records written straight to the tables: Insights reads records, so its tests make them directly."""

from datetime import datetime
from itertools import count

from catalog.models import Service
from deployments.models import Deployment, Environment, Release, RuntimeKind, State, Strategy
from insights.models import ChangeCommit, ChangeSet

_versions = count(1)


def release_make(service: Service) -> Release:
    n = next(_versions)
    return Release.objects.create(service=service, version=f"1.{n}.0", commit_sha=f"{n:040x}")


def change_set_make(release: Release, *commits: datetime) -> ChangeSet:
    """A recorded change set for `release` whose commits were made at these moments."""
    change_set = ChangeSet.objects.create(
        release=release,
        source=ChangeSet.Source.REPORTED,
        status=ChangeSet.Status.RECORDED,
        commit_count=len(commits),
        first_commit_at=min(commits) if commits else None,
    )
    ChangeCommit.objects.bulk_create(
        ChangeCommit(change_set=change_set, sha=f"{release.pk:08x}{n:032x}", committed_at=at)
        for n, at in enumerate(commits)
    )
    return change_set


def deployment_make(
    service: Service,
    environment: Environment,
    state: str,
    *,
    started: datetime,
    finished: datetime | None,
    release: Release | None = None,
    previous_release: Release | None = None,
    rollback_of: Deployment | None = None,
    reported: str = "",
) -> Deployment:
    """One deployment as the engine (or a reported deploy, with `reported`) would have left it."""
    deployment = Deployment.objects.create(
        release=release or release_make(service),
        service=service,
        environment=environment,
        strategy=Strategy.CANARY,
        runtime=RuntimeKind.WEBHOOK if reported else RuntimeKind.SIMULATED,
        state=State.EXTERNAL if reported else state,
        started_at=started,
        finished_at=finished,
        previous_release=previous_release,
        rollback_of=rollback_of,
        runtime_state={"reported_status": reported} if reported else {},
    )
    Deployment.objects.filter(pk=deployment.pk).update(created_at=started)
    return deployment
