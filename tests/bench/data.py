"""The benchmark organisation: 300 teams, ~30 systems, 10,000 services and 30,000 dependencies, written in bulk.

The rows are the ones the service functions would write (team groups, ownership grants, membership in the
team's group, one audit event per created service and dependency), but inserted with bulk_create: going through
`catalog.services` one object at a time would take minutes. Call `generate()` after `django.setup()`.
"""

import random
import time
from dataclasses import dataclass, field

WORDS = [
    "ledger", "billing", "invoice", "checkout", "basket", "payment", "refund", "payout", "fraud", "risk",
    "search", "catalogue", "pricing", "stock", "inventory", "warehouse", "shipping", "returns", "tracking",
    "identity", "session", "profile", "consent", "email", "sms", "push", "campaign", "coupon", "loyalty",
    "review", "rating", "media", "image", "video", "upload", "report", "export", "import", "metrics",
    "alerting", "audit", "config", "feature", "routing", "gateway", "quota", "scheduler", "payroll",
    "tax", "currency", "vendor", "seller", "partner", "support", "ticket", "chat", "geo", "address",
]  # fmt: skip
SUFFIXES = [
    "api", "worker", "service", "gateway", "consumer", "publisher", "sync", "store", "cache", "indexer",
    "scheduler", "proxy", "engine", "bridge", "adapter", "exporter", "loader", "ui", "bff", "cron",
]  # fmt: skip
TEAM_WORDS = [
    "Atlas", "Beacon", "Comet", "Delta", "Ember", "Falcon", "Glacier", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lumen", "Meridian", "Nova", "Orbit", "Pioneer", "Quartz", "Raven", "Summit", "Tundra",
]  # fmt: skip
TAGS = [
    "python", "go", "java", "kotlin", "typescript", "rust", "ruby", "scala", "pci", "gdpr", "sox", "public",
    "internal", "batch", "streaming", "grpc", "rest", "graphql", "kafka", "postgres", "redis", "s3",
    "kubernetes", "lambda", "legacy", "critical-path", "customer-facing", "ml", "experimental-ui", "edge",
]  # fmt: skip
LANGUAGES = ["Python", "Go", "Java", "Kotlin", "TypeScript", "Rust", "Ruby", "Scala"]
LIFECYCLES = [("production", 60), ("experimental", 15), ("deprecated", 12), ("decommissioning", 5),
              ("decommissioned", 8)]  # fmt: skip
TIERS = [(1, 10), (2, 25), (3, 40), (4, 25)]
KINDS = [("runtime", 70), ("build", 15), ("data", 15)]

BENCH_USERNAME = "bench"
BENCH_PASSWORD = "bench-Runway-2024!"  # noqa: S105 - a throwaway account in a throwaway database


@dataclass
class Dataset:
    """What the measurements need to know about the generated organisation."""

    teams: int = 0
    systems: int = 0
    services: int = 0
    dependencies: int = 0
    grants: int = 0
    audit_events: int = 0
    seconds: float = 0.0
    busiest_team_slug: str = ""
    busiest_team_services: int = 0
    search_word: str = ""
    search_matches: int = 0
    # A two-word search that matches about 50 services at any size (a team's name: "Kestrel 250").
    search_50: str = ""
    search_50_matches: int = 0
    user_team_slug: str = ""
    # Services with at least one outgoing and one incoming dependency (so the cycle search runs on their page).
    service_slugs_with_dependencies: list[str] = field(default_factory=list)


def _weighted(rng: random.Random, pairs: list[tuple[object, int]]) -> object:
    return rng.choices([value for value, _ in pairs], weights=[weight for _, weight in pairs])[0]


def generate(
    *, seed: int = 20240601, teams: int = 300, systems: int = 30, services: int = 10_000, dependencies: int = 30_000
) -> Dataset:
    """Fill an empty, migrated database; everything in one transaction."""
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.db import transaction
    from guardian.models import GroupObjectPermission

    from audit.models import AuditEvent
    from catalog import bulk, documents
    from catalog.models import Dependency, Service, System, Tag
    from teams.models import Membership, Team

    rng = random.Random(seed)
    started = time.perf_counter()
    result = Dataset()
    batch = 2000

    with transaction.atomic():
        # Teams, each with its group `team:<slug>`; a third are nested under an earlier team.
        team_rows = []
        for index in range(teams):
            word = TEAM_WORDS[index % len(TEAM_WORDS)]
            slug = f"{word.lower()}-{index:03d}"
            team_rows.append((slug, f"{word} {index:03d}"))
        groups = Group.objects.bulk_create([Group(name=f"team:{slug}") for slug, _ in team_rows], batch_size=batch)
        team_objs = Team.objects.bulk_create(
            [
                Team(
                    slug=slug,
                    name=name,
                    group=group,
                    description=f"The {name} team.",
                    chat_channel=f"#{slug}",
                    on_call_url=f"https://oncall.example.com/teams/{slug}",
                )
                for (slug, name), group in zip(team_rows, groups, strict=True)
            ],
            batch_size=batch,
        )
        nested = []
        for index, team in enumerate(team_objs):
            if index > 10 and rng.random() < 0.33:
                team.parent = team_objs[rng.randrange(0, index)]
                nested.append(team)
        Team.objects.bulk_update(nested, ["parent"], batch_size=batch)
        result.teams = len(team_objs)

        # Ownership is skewed, as in real organisations: a few teams own hundreds of services (Zipf-like).
        team_weights = [1 / (rank + 1) ** 0.6 for rank in range(teams)]

        system_objs = System.objects.bulk_create(
            [
                System(
                    slug=f"{WORDS[index % len(WORDS)]}-platform-{index:02d}",
                    name=f"{WORDS[index % len(WORDS)].title()} platform {index:02d}",
                    description="A group of services that together provide one capability.",
                    owner=rng.choices(team_objs, weights=team_weights)[0],
                )
                for index in range(systems)
            ],
            batch_size=batch,
        )
        result.systems = len(system_objs)

        tag_objs = Tag.objects.bulk_create([Tag(name=name) for name in TAGS], batch_size=batch)

        service_objs = []
        for index in range(services):
            word, other = rng.sample(WORDS, 2)
            suffix = rng.choice(SUFFIXES)
            owner = rng.choices(team_objs, weights=team_weights)[0]
            slug = f"{word}-{suffix}-{index:05d}"
            service_objs.append(
                Service(
                    slug=slug,
                    name=f"{word.title()} {suffix} {index:05d}",
                    description=(
                        f"{word.title()} {suffix} for {owner.name}: handles {other} requests and keeps "
                        f"{rng.choice(WORDS)} data in step with the rest of the {rng.choice(WORDS)} flow."
                    ),
                    owner=owner,
                    system=rng.choice(system_objs) if rng.random() < 0.6 else None,
                    lifecycle=_weighted(rng, LIFECYCLES),
                    tier=_weighted(rng, TIERS),
                    language=rng.choice(LANGUAGES),
                    repository_url=f"https://git.example.com/{owner.slug}/{slug}",
                    docs_url=f"https://docs.example.com/{slug}" if rng.random() < 0.7 else "",
                    dashboard_url=f"https://grafana.example.com/d/{slug}" if rng.random() < 0.5 else "",
                    chat_channel=owner.chat_channel,
                    on_call_url=owner.on_call_url if rng.random() < 0.5 else "",
                )
            )
        bulk.objects_insert(Service, service_objs)  # COPY on PostgreSQL: 100,000 services in seconds
        result.services = len(service_objs)

        through = Service.tags.through
        tag_links = []
        for service in service_objs:
            for tag in rng.sample(tag_objs, rng.choice([0, 1, 2, 2, 3, 3, 4])):
                tag_links.append(through(service_id=service.pk, tag_id=tag.pk))
        bulk.objects_insert(through, tag_links)

        # Random edges, a third of them pointing at 200 "core" services (auth, config, ...) that many depend on.
        core = rng.sample(service_objs, min(200, len(service_objs)))
        edges: set[tuple[int, int, str]] = set()
        attempts = 0
        while len(edges) < dependencies and attempts < dependencies * 10:
            attempts += 1
            source = rng.choice(service_objs)
            target = rng.choice(core) if rng.random() < 0.33 else rng.choice(service_objs)
            if source.pk != target.pk:
                edges.add((source.pk, target.pk, _weighted(rng, KINDS)))
        dependency_objs = [Dependency(source_id=s, target_id=t, kind=k) for s, t, k in sorted(edges)]
        bulk.objects_insert(Dependency, dependency_objs)
        result.dependencies = len(edges)

        # Ownership grants, exactly what catalog.services._grant() makes with guardian's assign_perm.
        service_ct = ContentType.objects.get_for_model(Service)
        system_ct = ContentType.objects.get_for_model(System)
        service_perms = list(
            Permission.objects.filter(
                content_type=service_ct,
                codename__in=["change_service", "deploy_service", "decommission_service"],
            )
        )
        system_perms = list(
            Permission.objects.filter(
                content_type=system_ct, codename__in=["change_system", "deploy_system", "decommission_system"]
            )
        )
        assert len(service_perms) == 3 and len(system_perms) == 3, "migrate first: catalog permissions missing"
        group_of = {team.pk: team.group_id for team in team_objs}
        grants = [
            GroupObjectPermission(
                content_type=service_ct, object_pk=str(obj.pk), permission=perm, group_id=group_of[obj.owner_id]
            )
            for obj in service_objs
            for perm in service_perms
        ]
        grants += [
            GroupObjectPermission(
                content_type=system_ct, object_pk=str(obj.pk), permission=perm, group_id=group_of[obj.owner_id]
            )
            for obj in system_objs
            for perm in system_perms
        ]
        bulk.objects_insert(GroupObjectPermission, grants)
        result.grants = len(grants)

        # The history the service page shows: what service_create and dependency_add record.
        slug_of = {service.pk: service.slug for service in service_objs}
        events = [
            AuditEvent(
                actor_repr="system",
                action="service.created",
                object_type="catalog.service",
                object_id=str(service.pk),
                object_repr=service.name,
                service_id=service.pk,
                after={"slug": service.slug, "name": service.name, "owner": service.owner_id},
            )
            for service in service_objs
        ]
        dependency_ids = [(d.pk, d.source_id, d.target_id, d.kind) for d in dependency_objs]
        events += [
            AuditEvent(
                actor_repr="system",
                action="dependency.added",
                object_type="catalog.dependency",
                object_id=str(pk),
                object_repr=f"{slug_of[s]} → {slug_of[t]} ({k})",
                service_id=s,
                after={"source": slug_of[s], "target": slug_of[t], "kind": k},
            )
            for pk, s, t, k in dependency_ids
        ]
        bulk.objects_insert(AuditEvent, events)
        result.audit_events = len(events)

        # The figures the measurements use.
        owned: dict[int, int] = {}
        for service in service_objs:
            owned[service.owner_id] = owned.get(service.owner_id, 0) + 1
        busiest = max(team_objs, key=lambda team: owned.get(team.pk, 0))
        result.busiest_team_slug = busiest.slug
        result.busiest_team_services = owned.get(busiest.pk, 0)
        result.search_word = "ledger"
        result.search_matches = sum(
            1
            for service in service_objs
            if any(result.search_word in text.lower() for text in (service.name, service.slug, service.description))
        )
        texts = [(service.name + " " + service.slug + " " + service.description).lower() for service in service_objs]

        def matches(query: str) -> int:
            words = query.lower().split()
            return sum(1 for text in texts if all(word in text for word in words))

        near_50 = sorted(team_objs, key=lambda team: abs(owned.get(team.pk, 0) - 45))[:8]
        best = min(((team.name, matches(team.name)) for team in near_50), key=lambda pair: abs(pair[1] - 50))
        result.search_50, result.search_50_matches = best
        sources = {s for s, _, _ in edges}
        targets = {t for _, t, _ in edges}
        result.service_slugs_with_dependencies = sorted(slug_of[pk] for pk in sources & targets)

        # The bench user: a plain member of the busiest team (so some service pages show the owner's controls).
        # The services' stored documents, as the importer writes them (catalog/documents.py).
        documents.refresh([service.pk for service in service_objs])

        user = User.objects.create_user(BENCH_USERNAME, email="bench@example.com", password=BENCH_PASSWORD)
        Membership.objects.create(user=user, team=busiest, role=Membership.Role.MEMBER)
        user.groups.add(busiest.group)
        result.user_team_slug = busiest.slug

    result.seconds = time.perf_counter() - started
    return result


def api_token_create() -> str:
    """A personal API token for the bench user, made by the real service function; returns its plain text."""
    from django.contrib.auth.models import User

    from accounts import services as account_services

    user = User.objects.get(username=BENCH_USERNAME)
    _token, secret = account_services.token_create(user=user, name="bench", lifetime_days=1)
    return secret


def catalog_cache_invalidate() -> None:
    """Bulk writes send no model signals: bump the catalog's cache version as the bulk import does, so that no
    cached read of an earlier bench database (in a shared Redis) can be served."""
    try:
        from catalog import cache as catalog_cache
    except ImportError:  # a version of the portal without a catalog cache
        return
    catalog_cache.bump()
