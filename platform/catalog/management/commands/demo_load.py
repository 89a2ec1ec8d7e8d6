"""`manage.py demo_load`: load the demo organisation; safe to run again (it only adds what is missing)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog import demo, services
from catalog.models import Dependency, Service, System
from deployments import services as deployment_services
from deployments.models import Environment
from teams import services as team_services
from teams.models import Team

DEMO_PASSWORD = "runway-demo"


class Command(BaseCommand):
    help = "Load the demo organisation (teams, users, systems, services, dependencies). Idempotent."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        teams = {team.slug: team for team in Team.objects.all()}
        for slug, name, parent, chat, description in demo.TEAMS:
            if slug not in teams:
                teams[slug] = team_services.team_create(
                    name=name,
                    slug=slug,
                    created_by=None,
                    chat_channel=chat,
                    description=description,
                    parent=teams.get(parent or ""),
                    on_call_url=f"https://oncall.example.com/{slug}",
                )
        for username, first, last, memberships, staff in demo.USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "is_staff": staff,
                    "is_superuser": staff,
                    "email": f"{username}@example.com",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for team_slug, role in memberships:
                team_services.membership_set(team=teams[team_slug], user=user, role=role, changed_by=None)
        systems = {system.slug: system for system in System.objects.all()}
        for slug, name, owner, description in demo.SYSTEMS:
            if slug not in systems:
                systems[slug] = services.system_create(
                    created_by=None, owner=teams[owner], slug=slug, name=name, description=description
                )
        existing = {service.slug: service for service in Service.objects.all()}
        for slug, name, owner, system, lifecycle, tier, language, tags, description in demo.SERVICES:
            if slug not in existing:
                existing[slug] = services.service_create(
                    created_by=None,
                    owner=teams[owner],
                    slug=slug,
                    name=name,
                    description=description,
                    system=systems.get(system or ""),
                    lifecycle=lifecycle,
                    tier=tier,
                    language=language,
                    tags=tags.split(","),
                    repository_url=f"https://git.example.com/{owner}/{slug}",
                    dashboard_url=f"https://grafana.example.com/d/{slug}",
                    chat_channel=teams[owner].chat_channel,
                )
        edges = set(Dependency.objects.values_list("source__slug", "target__slug", "kind"))
        for source, target, kind in demo.DEPENDENCIES:
            if (source, target, kind) not in edges:
                services.dependency_add(source=existing[source], target=existing[target], kind=kind, added_by=None)
        for slug, name, order, protected in demo.ENVIRONMENTS:
            if not Environment.objects.filter(slug=slug).exists():
                deployment_services.environment_create(
                    created_by=None, slug=slug, name=name, order=order, protected=protected
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organisation ready: {Team.objects.count()} teams, {Service.objects.count()} services, "
                f"{Dependency.objects.count()} dependencies.\n"
                f"Sign in as demo / {DEMO_PASSWORD} (lead in Payments) or admin / {DEMO_PASSWORD} (platform admin)."
            )
        )
