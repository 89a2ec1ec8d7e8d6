"""`manage.py demo_load`: load the demo organisation from services/ through the catalog-as-code import.

It is the same import a user runs (`catalog_sync`), followed by what descriptors cannot carry: sign-in passwords
for the demo people, a platform admin, and the deployment environments. Safe to run again.
"""

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from catalog import sync
from deployments import services as deployment_services
from deployments.models import Environment
from portal import tasks as portal_tasks

DEMO_PASSWORD = "runway-demo"
DEMO_ADMINS = ["admin"]
ENVIRONMENTS = [
    ("dev", "Development", 10, False),
    ("staging", "Staging", 20, False),
    ("production", "Production", 30, True),
]


class Command(BaseCommand):
    help = "Load the demo organisation from services/ (teams, people, systems, services, runbooks, ADRs)."

    def handle(self, *args: Any, **options: Any) -> None:
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
        for slug, name, order, protected in ENVIRONMENTS:
            if not Environment.objects.filter(slug=slug).exists():
                deployment_services.environment_create(
                    created_by=None, slug=slug, name=name, order=order, protected=protected
                )
        summary = report.as_dict()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organisation loaded from services/: created {summary['created'] or 'nothing'}, "
                f"updated {summary['updated'] or 'nothing'}, {summary['unchanged']} unchanged.\n"
                f"Sign in as demo / {DEMO_PASSWORD} (lead in Payments) or admin / {DEMO_PASSWORD} (platform admin)."
            )
        )

    def _demo_usernames(self) -> list[str]:
        from catalog.models import EntitySource

        return list(EntitySource.objects.filter(source__name="demo", kind="User").values_list("name", flat=True))
