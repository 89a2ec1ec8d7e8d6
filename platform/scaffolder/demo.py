"""The demo's service made from an earlier release of a golden path, so that `make run` shows "update from golden
path" at work: `nightly-reports`, made from python-worker 1.0.0 (rebuilt from the path's history/), owned by
Payments, the demo user's team."""

from django.contrib.auth.models import User
from packaging.version import Version

from catalog.models import Service
from scaffolder import publishers, registry, services, versions
from scaffolder.models import ScaffoldRun
from teams.models import Team

SERVICE = "nightly-reports"
GOLDEN_PATH = "python-worker"
DESCRIPTION = "Builds the nightly settlement and refund reports for finance, every night at two."


def behind_service_load(*, owner: Team, user: User) -> Service | None:
    """Make the service once; None when it (or its repository) exists already or the path ships no earlier release."""
    if Service.objects.filter(slug=SERVICE).exists():
        return None
    # A fresh database beside the repositories an earlier one made (var/ kept, the database reset): the publisher
    # refuses the name, and `make run` must still start, without this one service.
    if publishers.publisher().exists(name=SERVICE):
        return None
    path = registry.golden_path_get(GOLDEN_PATH)
    if path is None:
        return None
    with versions.history_versions(path) as earlier:
        if not earlier:
            return None
        oldest = earlier[min(earlier, key=Version)]
        run = ScaffoldRun.objects.create(
            golden_path=oldest.name,
            golden_path_version=oldest.version,
            answers={**oldest.defaults(), "name": SERVICE, "description": DESCRIPTION},
            owner=owner,
            requested_by=user,
        )
        claimed = services.scaffold_claim(run_id=run.pk)
        assert claimed is not None  # just made, queued for nobody else
        run = services.scaffold_execute(run=claimed, path=oldest)
    if run.status != ScaffoldRun.Status.SUCCEEDED:
        raise RuntimeError(f"The demo's {SERVICE} could not be made: {run.error}")
    return run.service
