"""`manage.py demo_load`: load the demo organisation from services/ through the catalog-as-code import.

It is the same import a user runs (`catalog_sync`), followed by what descriptors cannot carry: sign-in passwords
for the demo people, a platform admin, the deployment environments, and for the services in DEPLOYED_SERVICES
deploy targets on the simulated runtime, stand-in git repositories and a deployment history made by the real
engine (`deployments.demo`). Safe to run again: nothing that exists is made twice.
"""

import contextlib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from catalog import sync
from catalog.models import CatalogSource
from deployments import demo as deployment_demo
from deployments import services as deployment_services
from deployments.models import Environment
from governance import demo as governance_demo
from governance import sync as policy_sync
from incidents import demo as incidents_demo
from monitoring import demo as monitoring_demo
from portal import tasks as portal_tasks
from scaffolder import demo as scaffolder_demo
from scorecards import demo as scorecard_demo
from scorecards import sync as scorecard_sync
from teams.models import Team

DEMO_PASSWORD = "runway-demo"
DEMO_ADMINS = ["admin"]
ENVIRONMENTS = [
    ("dev", "Development", 10, False),
    ("staging", "Staging", 20, False),
    ("production", "Production", 30, True),
]
# Payments and Checkout, the teams of the demo user: they deploy through Runway, the other teams do not (yet).
DEPLOYED_SERVICES = [
    "payments-api",
    "ledger",
    "card-vault",
    "payouts",
    "refunds",
    "checkout-api",
    "basket",
    "web-storefront",
]


class Command(BaseCommand):
    help = "Load the demo organisation from services/ (teams, people, systems, services, runbooks, ADRs)."

    def handle(self, *args: Any, **options: Any) -> None:
        # A first load runs on a clock some weeks back, so that the deployment history (back-dated) never comes
        # before the services it deploys; a later load is a re-sync, now.
        first_load = not CatalogSource.objects.filter(name="demo").exists()
        clock = deployment_demo.Clock(timezone.now() - deployment_demo.DEMO_AGE) if first_load else None
        with deployment_demo.on_clock(clock) if clock else contextlib.nullcontext():
            report = self._organisation_load()
        admin = get_user_model().objects.get(username=DEMO_ADMINS[0])
        history = deployment_demo.history_load(service_slugs=DEPLOYED_SERVICES, admin=admin, clock=clock)
        behind = scaffolder_demo.behind_service_load(
            owner=Team.objects.get(slug="payments"), user=get_user_model().objects.get(username="demo")
        )
        health_checks = monitoring_demo.health_load(service_slugs=DEPLOYED_SERVICES, admin=admin)
        monitoring_demo.slo_history_load()
        monitoring_demo.metrics_history_load()
        incidents = incidents_demo.incidents_load(admin=admin)
        # After the history: the demo's past deployments were made before the organisation had its policies.
        policies = policy_sync.policy_sync(root=settings.GOVERNANCE["POLICIES_DIR"])
        for file, name, message in policies.errors:
            self.stderr.write(f"  policies/{file}: {name} {message}")
        if policies.errors:
            raise CommandError(f"The starter policies have {len(policies.errors)} problem(s); see above.")
        freezes = governance_demo.freezes_load()
        from flags import demo as flags_demo  # like reviews: the loader reaches up for the demo only

        flags = flags_demo.flags_load(admin=admin)
        from reviews import demo as reviews_demo  # the catalog's loader reaches up for the demo only

        # Before scoring: the starter scorecard asks for a recent ownership verification.
        review_items = reviews_demo.reviews_load(admin=admin, lead=get_user_model().objects.get(username="demo"))
        scorecards = scorecard_sync.scorecard_sync(root=settings.SCORECARDS["DIR"])
        for file, name, message in scorecards.errors:
            self.stderr.write(f"  scorecards/{file}: {name} {message}")
        if scorecards.errors:
            raise CommandError(f"The starter scorecards have {len(scorecards.errors)} problem(s); see above.")
        scorecard_demo.history_load()  # now, rather than at the first change or the nightly run, and weeks back
        scorecard_demo.initiative_load(admin=admin)
        summary = report.as_dict()
        deployed = (
            f"{history.deployments} deployments made by the engine on the simulated runtime "
            f"({history.rolled_back} rolled back), {history.targets} deploy targets, "
            f"{history.repositories} stand-in repositories"
            if history.deployments or history.targets or history.repositories
            else "deployment history already there"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organisation loaded from services/: created {summary['created'] or 'nothing'}, "
                f"updated {summary['updated'] or 'nothing'}, {summary['unchanged']} unchanged; {deployed}"
                + (
                    f"; {behind.slug} made from {behind.golden_path} {behind.golden_path_version}, an earlier "
                    "release, to show updates from golden paths"
                    if behind
                    else ""
                )
                + f"; {len(policies.created) + len(policies.changed) + len(policies.unchanged)} deploy policies "
                f"from policies/; {freezes or 'no new'} freeze windows; "
                f"{health_checks or 'no new'} simulated health checks; {incidents or 'no new'} incidents; "
                f"{flags or 'no new'} feature flags; "
                f"{review_items or 'no new'} ownership review items.\n"
                f"Sign in as demo / {DEMO_PASSWORD} (lead in Payments), sam / {DEMO_PASSWORD} (the other lead in "
                f"Payments, who approves demo's tier 1 production deploys) or admin / {DEMO_PASSWORD} (platform admin)."
            )
        )

    def _organisation_load(self) -> sync.Report:
        # Environments first: the services' SLO files (slo.yaml) name the environment whose probes they count.
        for slug, name, order, protected in ENVIRONMENTS:
            if not Environment.objects.filter(slug=slug).exists():
                deployment_services.environment_create(
                    created_by=None, slug=slug, name=name, order=order, protected=protected
                )
        report = sync.catalog_import(root=settings.SERVICES_DIR, source_name="demo", location="services/")
        portal_tasks.search_index()  # now, rather than when a worker gets to it
        for problem in report.errors:
            self.stderr.write(f"  {problem.file}: {problem.entity or ''} {problem.field or ''} {problem.message}")
        if report.errors:
            raise CommandError(f"The demo organisation has {len(report.errors)} problem(s); see above.")
        users = get_user_model().objects.filter(username__in=self._demo_usernames())
        for user in users:
            if not user.has_usable_password():
                user.set_password(DEMO_PASSWORD)
            if user.username in DEMO_ADMINS:
                user.is_staff = user.is_superuser = True
            user.save()
        return report

    def _demo_usernames(self) -> list[str]:
        from catalog.models import EntitySource

        return list(EntitySource.objects.filter(source__name="demo", kind="User").values_list("name", flat=True))
