"""Feature flags for the demo organisation: a segment "internal staff" and a few flags on the deployed services,
with targeting rules and a rollout, made through flags.services like a person's changes. Safe to run again: a flag or
segment that exists is kept as it is."""

import random
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import Service
from deployments.models import Environment
from flags import services
from flags.models import EvaluationCount, Flag, FlagRollout, FlagSetting, FlagVersion, Segment
from flags.usage import served_variants

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
    (
        "checkout-api",
        "express-shipping-banner",
        "boolean",
        {"on": True, "off": False},
        "off",
        "release",
        True,
        "The banner announcing express shipping: released to everyone in the spring, never cleaned up (stale).",
        {"dev": (True, [], {}, "on"), "staging": (True, [], {}, "on"), "production": (True, [], {}, "on")},
    ),
]
# Days since the demo's stale flag last changed: past the 14 days after which a flag serving one variant is debt.
STALE_FOR_DAYS = 45


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
        if key == "express-shipping-banner":
            then = timezone.now() - timedelta(days=STALE_FOR_DAYS)
            Flag.objects.filter(pk=flag.pk).update(created_at=then - timedelta(days=30), updated_at=then)
            FlagVersion.objects.filter(flag=flag).update(created_at=then)
        _evaluations_load(flag)
        made += 1
    rollout_load(admin=admin, environments=environments)
    return made


def _evaluations_load(flag: Flag) -> None:
    """Two weeks of daily evaluation counts for a new demo flag, as the flush task would have written them."""
    rng = random.Random(flag.key)
    today = timezone.now().date()
    rows = []
    for setting in FlagSetting.objects.filter(flag=flag, enabled=True):
        served = sorted(served_variants(setting) or [])
        weights = {variant: float(setting.rollout.get(variant, 0)) or 100 / len(served) for variant in served}
        volume = {"production": 12_000, "staging": 900}.get(setting.environment.slug, 150)
        for offset in range(14):
            daily = int(volume * rng.uniform(0.7, 1.3))
            for variant in served:
                share = int(daily * weights[variant] / sum(weights.values()))
                if share:
                    day = today - timedelta(days=offset)
                    rows.append(
                        EvaluationCount(
                            flag=flag, environment=setting.environment, day=day, variant=variant, count=share
                        )
                    )
        setting.last_evaluated_at = timezone.now() - timedelta(minutes=rng.randint(1, 30))
        setting.save(update_fields=["last_evaluated_at"])
    EvaluationCount.objects.bulk_create(rows)


def rollout_load(*, admin: User, environments: dict[str, Environment]) -> None:
    """One flag in a progressive rollout: one-page-checkout on checkout-api in staging, its first step (1 %) taken.
    Demo services run no code, so its metrics URL answers nothing: an hour after each step the analysis is
    inconclusive, and after three such windows it rolls back, as a rollout whose metrics stay silent must."""
    from flags import rollouts

    service = Service.objects.filter(slug="checkout-api").first()
    staging = environments.get("staging")
    if service is None or staging is None or Flag.objects.filter(service=service, key="one-page-checkout").exists():
        return
    flag = services.flag_create(
        actor=admin,
        service=service,
        key="one-page-checkout",
        default_variant="off",
        description="The checkout on one page instead of three, released to shoppers step by step.",
    )
    rollout = rollouts.rollout_start(
        actor=admin,
        flag=flag,
        environment=staging,
        variant="on",
        steps=[1, 10, 50, 100],
        interval_seconds=3600,
        metrics_url="http://127.0.0.1:9/metrics",
        judged=False,
    )
    assert isinstance(rollout, FlagRollout)  # not judged: never held
    rollouts.run_step(rollout.pk, rollout.version)  # the first step now, not when the stack's worker first sweeps
