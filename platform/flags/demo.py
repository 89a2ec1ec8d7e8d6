"""Feature flags for the demo organisation: a segment "internal staff" and a few flags on the deployed services,
with targeting rules and a rollout, made through flags.services like a person's changes. Safe to run again: a flag or
segment that exists is kept as it is."""

from typing import Any

from django.contrib.auth.models import User

from catalog.models import Service
from deployments.models import Environment
from flags import services
from flags.models import Flag, Segment

STAFF = {"op": "segment", "value": "internal-staff"}
EU = ["AT", "BE", "DE", "DK", "ES", "FI", "FR", "IE", "IT", "NL", "PL", "PT", "SE"]

# (service, key, type, variants, default, kind, temporary, description,
#  per environment: (enabled, rules, rollout[, default variant there]))
FLAGS: list[tuple[Any, ...]] = [
    (
        "checkout-api",
        "new-checkout",
        "boolean",
        {"on": True, "off": False},
        "off",
        "release",
        True,
        "The one-page checkout. Staff first, then a growing share of shoppers.",
        {
            "dev": (True, [], {}, "on"),
            "staging": (True, [], {}, "on"),
            "production": (True, [{"name": "internal staff", "when": [STAFF], "variant": "on"}], {"on": 10, "off": 90}),
        },
    ),
    (
        "payments-api",
        "card-processor",
        "string",
        {"acme": "acme-pay", "euro": "euro-acquirer"},
        "acme",
        "experiment",
        True,
        "Which acquirer authorises card payments: EU cards through the European acquirer.",
        {
            "staging": (
                True,
                [{"name": "EU cards", "when": [{"attribute": "country", "op": "in", "value": EU}], "variant": "euro"}],
                {},
            ),
            "production": (
                True,
                [{"name": "EU cards", "when": [{"attribute": "country", "op": "in", "value": EU}], "variant": "euro"}],
                {},
            ),
        },
    ),
    (
        "basket",
        "max-basket-items",
        "integer",
        {"normal": 100, "degraded": 20},
        "normal",
        "operational",
        False,
        "Lower the basket size when the stock service struggles: an operational switch for incidents.",
        {"dev": (True, [], {}), "staging": (True, [], {}), "production": (True, [], {})},
    ),
    (
        "payouts",
        "instant-payouts",
        "boolean",
        {"on": True, "off": False},
        "off",
        "permission",
        False,
        "Instant payouts, for merchants on the business plan and for staff.",
        {
            "production": (
                True,
                [
                    {"name": "internal staff", "when": [STAFF], "variant": "on"},
                    {
                        "name": "business plan",
                        "when": [{"attribute": "plan", "op": "eq", "value": "business"}],
                        "variant": "on",
                    },
                ],
                {},
            )
        },
    ),
]


def flags_load(*, admin: User) -> int:
    """Make the demo's segment and flags that are missing; returns how many flags were made."""
    if not Segment.objects.filter(slug="internal-staff").exists():
        services.segment_save(
            actor=admin,
            slug="internal-staff",
            name="Internal staff",
            description="People signed in with a company address.",
            conditions=[{"attribute": "email", "op": "ends_with", "value": "@example.com"}],
        )
    environments = {environment.slug: environment for environment in Environment.objects.all()}
    made = 0
    for slug, key, flag_type, variants, default, kind, temporary, description, settings in FLAGS:
        service = Service.objects.filter(slug=slug).first()
        if service is None or Flag.objects.filter(service=service, key=key).exists():
            continue
        flag = services.flag_create(
            actor=admin,
            service=service,
            key=key,
            flag_type=flag_type,
            variants=variants,
            default_variant=default,
            description=description,
            kind=kind,
            temporary=temporary,
        )
        for environment_slug, (enabled, rules, rollout, *there) in settings.items():
            if environment_slug in environments:
                services.setting_update(
                    actor=admin,
                    flag=flag,
                    environment=environments[environment_slug],
                    enabled=enabled,
                    rules=rules,
                    rollout=rollout,
                    default_variant=there[0] if there else None,
                    note="demo",
                )
        made += 1
    return made
