"""Changing flags: every write checks the definition, bumps the flag's version, keeps a snapshot, writes an audit
event in the same transaction, and drops the environment's compiled set once the change commits, so the next SDK poll
sees it (selectors.flag_set)."""

from __future__ import annotations

import math
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from catalog.models import Service
from deployments.models import Environment
from flags import evaluation, selectors
from flags.models import Flag, FlagChange, FlagSetting, FlagType, FlagVersion, SdkKey, Segment, sdk_key_digest
from portal.errors import Conflict

Actor = User | AnonymousUser | None
MAX_VARIANTS = 50
MAX_RULES = 100
MAX_CONDITIONS = 50
TYPES: dict[str, tuple[type, ...]] = {
    FlagType.BOOLEAN: (bool,),
    FlagType.STRING: (str,),
    FlagType.INTEGER: (int,),
    FlagType.FLOAT: (int, float),
    FlagType.OBJECT: (dict, list),
}


def variants_check(flag_type: str, variants: object) -> dict[str, Any]:
    if not isinstance(variants, dict) or not variants:
        raise ValidationError({"variants": "Give at least one variant: an object of name → value."})
    if len(variants) > MAX_VARIANTS:
        raise ValidationError({"variants": f"At most {MAX_VARIANTS} variants."})
    for name, value in variants.items():
        if not name or len(name) > 100 or "\x00" in name:
            raise ValidationError({"variants": f"Variant name {name[:40]!r} must be 1-100 characters."})
        kinds = TYPES[flag_type]
        wrong_bool = isinstance(value, bool) and bool not in kinds
        if not isinstance(value, kinds) or wrong_bool or (isinstance(value, float) and not math.isfinite(value)):
            raise ValidationError({"variants": f"Variant {name!r} is not a {flag_type} value."})
    return variants


def rollout_check(rollout: object, variants: dict[str, Any], field: str = "rollout") -> list[list[Any]]:
    """{"on": 10, "off": 90} → [["on", 10.0], ["off", 90.0]], checked; empty stays empty. The pairs' own form is
    taken too: a rule keeps its rollout as pairs, so a rule read back (page or API) can be saved unchanged."""
    if rollout in (None, {}, []):
        return []
    if isinstance(rollout, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in rollout):
        if len({str(pair[0]) for pair in rollout}) != len(rollout):
            raise ValidationError({field: "A rollout names each variant once."})
        rollout = {str(variant): weight for variant, weight in rollout}
    if not isinstance(rollout, dict):
        raise ValidationError({field: "A rollout is an object of variant → percent."})
    weights = []
    for variant, weight in rollout.items():
        if variant not in variants:
            raise ValidationError({field: f"The rollout names {variant!r}, which is not a variant of this flag."})
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            raise ValidationError({field: f"The weight of {variant!r} must be a percent from 0 to 100."})
        weights.append([variant, float(weight)])
    if abs(sum(weight for _, weight in weights) - 100) > 1e-6:
        raise ValidationError({field: "The rollout's weights must add up to 100."})
    return weights


def condition_check(condition: object, segments: set[str]) -> None:
    if not isinstance(condition, dict):
        raise ValidationError({"rules": "Each condition is an object with `attribute`, `op` and `value`."})
    op = condition.get("op")
    if op not in evaluation.OPERATORS:
        raise ValidationError({"rules": f"Unknown operator {op!r}; use one of {', '.join(evaluation.OPERATORS)}."})
    value = condition.get("value")
    if op == "segment":
        if value not in segments:
            raise ValidationError({"rules": f"There is no segment {value!r}."})
        return
    attribute = condition.get("attribute")
    if not isinstance(attribute, str) or not attribute or len(attribute) > 100:
        raise ValidationError({"rules": "Each condition names the context `attribute` it tests (1-100 characters)."})
    if op in ("in", "not_in") and not isinstance(value, list):
        raise ValidationError({"rules": f"`{op}` needs a list of values."})
    if op in ("starts_with", "ends_with", "contains") and not isinstance(value, str):
        raise ValidationError({"rules": f"`{op}` needs a text value."})
    if op in ("gt", "gte", "lt", "lte") and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValidationError({"rules": f"`{op}` needs a number."})


def rules_check(rules: object, variants: dict[str, Any]) -> list[dict[str, Any]]:
    if rules in (None, []):
        return []
    if not isinstance(rules, list) or len(rules) > MAX_RULES:
        raise ValidationError({"rules": f"Rules are a list of at most {MAX_RULES}."})
    segments = set(Segment.objects.values_list("slug", flat=True))
    checked = []
    for index, rule in enumerate(rules, 1):
        if not isinstance(rule, dict):
            raise ValidationError({"rules": f"Rule {index} must be an object."})
        when = rule.get("when", [])
        if not isinstance(when, list) or len(when) > MAX_CONDITIONS:
            raise ValidationError({"rules": f"Rule {index}'s `when` is a list of at most {MAX_CONDITIONS} conditions."})
        for condition in when:
            condition_check(condition, segments)
        entry = {"name": str(rule.get("name") or f"rule {index}")[:100], "when": when}
        if rule.get("rollout"):
            entry["rollout"] = rollout_check(rule["rollout"], variants, field="rules")
        elif rule.get("variant") in variants:
            entry["variant"] = rule["variant"]
        else:
            raise ValidationError({"rules": f"Rule {index} must serve a variant of this flag or a rollout."})
        checked.append(entry)
    return checked


def _snapshot(flag: Flag) -> dict[str, Any]:
    return {
        "key": flag.key,
        "type": flag.type,
        "kind": flag.kind,
        "temporary": flag.temporary,
        "description": flag.description,
        "variants": flag.variants,
        "settings": {
            setting.environment.slug: {
                "enabled": setting.enabled,
                "default_variant": setting.default_variant,
                "rules": setting.rules,
                "rollout": setting.rollout,
            }
            for setting in flag.settings.select_related("environment")
        },
    }


def _changed(flag: Flag, *, actor: Actor, action: str, before: dict[str, Any] | None, note: str = "") -> None:
    """The bookkeeping every change shares: version, snapshot, audit, and the compiled sets dropped on commit."""
    flag.version = (flag.version or 0) + (1 if before is not None else 0)
    flag.save(update_fields=["version", "updated_at"])
    after = _snapshot(flag)
    author = actor if actor is not None and actor.is_authenticated else None
    FlagVersion.objects.create(flag=flag, number=flag.version, snapshot=after, author=author, note=note[:200])
    event_record(actor=actor, action=action, target=flag, before=before, after=after, service_id=flag.service_id)
    transaction.on_commit(selectors.flag_sets_forget)


@transaction.atomic
def flag_create(
    *,
    actor: Actor,
    service: Service,
    key: str,
    flag_type: str = FlagType.BOOLEAN,
    variants: dict[str, Any] | None = None,
    default_variant: str | None = None,
    description: str = "",
    kind: str = "release",
    temporary: bool = True,
) -> Flag:
    """A new flag, off in every environment and serving `default_variant` when turned on."""
    if flag_type not in FlagType.values:
        raise ValidationError({"type": f"Choose one of {', '.join(FlagType.values)}."})
    if Flag.objects.filter(service=service, key=key).exists():
        raise ValidationError({"key": f"{service} already has a flag {key!r}."})
    variants = variants_check(flag_type, variants if variants is not None else {"on": True, "off": False})
    default = default_variant or next(iter(variants))
    if default not in variants:
        raise ValidationError({"default_variant": "The default variant must be one of the flag's variants."})
    flag = Flag(
        service=service,
        key=key,
        type=flag_type,
        variants=variants,
        description=description,
        kind=kind,
        temporary=temporary,
    )
    flag.full_clean()
    flag.save()
    FlagSetting.objects.bulk_create(
        [
            FlagSetting(flag=flag, environment=environment, default_variant=default)
            for environment in Environment.objects.all()
        ]
    )
    _changed(flag, actor=actor, action="flag.created", before=None)
    return flag


def _served_variants(setting: FlagSetting) -> set[str]:
    """Every variant a setting can serve: its default, its rollout's, and each rule's variant or rollout."""
    served = {setting.default_variant, *setting.rollout}
    for rule in setting.rules:
        if "variant" in rule:
            served.add(rule["variant"])
        served.update(str(pair[0]) for pair in rule.get("rollout") or [])
    return served


@transaction.atomic
def flag_update(
    *,
    actor: Actor,
    flag: Flag,
    description: str | None = None,
    variants: dict[str, Any] | None = None,
    kind: str | None = None,
    temporary: bool | None = None,
    note: str = "",
) -> Flag:
    """Change what a flag is (its type and key never change: the code asks by them); only the arguments given change.
    A variant that some environment still serves cannot be removed: that environment would serve nothing."""
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    before = _snapshot(flag)
    if variants is not None:
        variants = variants_check(flag.type, variants)
        for setting in flag.settings.select_related("environment"):
            if missing := sorted(_served_variants(setting) - set(variants)):
                raise ValidationError(
                    {
                        "variants": f"{setting.environment.name} still serves {', '.join(map(repr, missing))}: "
                        "change its setting first."
                    }
                )
        flag.variants = variants
    if description is not None:
        flag.description = description
    if kind is not None:
        flag.kind = kind
    if temporary is not None:
        flag.temporary = temporary
    flag.full_clean()
    flag.save()
    _changed(flag, actor=actor, action="flag.changed", before=before, note=note)
    return flag


def _setting_after(flag: Flag, setting: FlagSetting, proposed: dict[str, Any]) -> dict[str, Any]:
    """The checked values a setting will hold after `proposed` (enabled, default_variant, rules, rollout: the ones
    given), as it stores them; a bad one is a ValidationError naming its field."""
    after: dict[str, Any] = {}
    if (default_variant := proposed.get("default_variant")) is not None:
        if default_variant not in flag.variants:
            raise ValidationError({"default_variant": "The default variant must be one of the flag's variants."})
        after["default_variant"] = default_variant
    if (rules := proposed.get("rules")) is not None:
        after["rules"] = rules_check(rules, flag.variants)
    if (rollout := proposed.get("rollout")) is not None:
        after["rollout"] = dict(rollout_check(rollout, flag.variants)) if rollout else {}
    if (enabled := proposed.get("enabled")) is not None:
        after["enabled"] = bool(enabled)
    return after


def _setting_of(flag: Flag, environment: Environment) -> FlagSetting:
    setting, _ = FlagSetting.objects.get_or_create(
        flag=flag, environment=environment, defaults={"default_variant": next(iter(flag.variants))}
    )
    return setting


@transaction.atomic
def setting_update(
    *,
    actor: Actor,
    flag: Flag,
    environment: Environment,
    enabled: bool | None = None,
    default_variant: str | None = None,
    rules: object = None,
    rollout: object = None,
    note: str = "",
) -> FlagSetting:
    """Change what one environment serves; only the arguments given change. Not judged by policies: a person's
    change goes through `setting_change`; this is for it and for the system (the demo, a progressive rollout's
    steps, which were judged when the rollout started)."""
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    before = _snapshot(flag)
    setting = _setting_of(flag, environment)
    proposed = {"enabled": enabled, "default_variant": default_variant, "rules": rules, "rollout": rollout}
    for name, value in _setting_after(flag, setting, proposed).items():
        setattr(setting, name, value)
    setting.save()
    _changed(flag, actor=actor, action="flag.changed", before=before, note=note)
    return setting


def flag_facts(flag: Flag, setting: FlagSetting, after: dict[str, Any]) -> dict[str, Any]:
    """`change.flag` of the fact document (governance/facts.py, NO_FLAG): the flag and the setting as it would be."""
    on_in = (
        FlagSetting.objects.filter(flag=flag, enabled=True)
        .exclude(environment_id=setting.environment_id)
        .order_by("environment__order")
        .values_list("environment__slug", flat=True)
    )
    rules = after.get("rules", setting.rules)
    return {
        "key": flag.key,
        "kind": flag.kind,
        "type": flag.type,
        "temporary": flag.temporary,
        "enabled": after.get("enabled", setting.enabled),
        "was_enabled": setting.enabled,
        "default_variant": after.get("default_variant", setting.default_variant),
        "rollout": after.get("rollout", setting.rollout),
        "rules": len(rules),
        "on_in": list(on_in),
    }


def setting_change(
    *,
    actor: Actor,
    flag: Flag,
    environment: Environment,
    enabled: bool | None = None,
    default_variant: str | None = None,
    rules: object = None,
    rollout: object = None,
    note: str = "",
) -> FlagSetting | FlagChange:
    """A person's change to what one environment serves (pages, API). In a protected environment the enabled deploy
    policies judge it first, as they judge a deployment (governance/facts.py's `change` with `kind` "flag"), and the
    decision is kept: `deny` refuses it (a ValidationError with the policies' messages, nothing changed);
    `require_approval` parks it as a FlagChange, returned, applied when approved (flags/changes.py); otherwise it
    is applied and the FlagSetting returned."""
    proposed: dict[str, Any] = {
        "enabled": enabled,
        "default_variant": default_variant,
        "rules": rules,
        "rollout": rollout,
    }
    if not environment.protected:
        return _by_hand(actor=actor, flag=flag, environment=environment, note=note, **proposed)
    setting = _setting_of(flag, environment)
    after = _setting_after(flag, setting, proposed)  # a bad value is a field error before any policy is asked
    decision, held = policies_judge(
        actor=actor, flag=flag, environment=environment, setting=setting, after=after, proposed=after, note=note
    )
    if held is not None:
        return held
    warned = " ".join(decision.messages("warn"))
    note = (note + (" — " if note and warned else "") + (f"warned: {warned}" if warned else ""))[:200]
    return _by_hand(actor=actor, flag=flag, environment=environment, note=note, **after)


def policies_judge(
    *,
    actor: Actor,
    flag: Flag,
    environment: Environment,
    setting: FlagSetting,
    after: dict[str, Any],
    proposed: dict[str, Any],
    note: str,
) -> tuple[Any, FlagChange | None]:
    """The deploy policies' word on a flag change in a protected environment (`after`: what the setting would hold),
    and the decision kept: `deny` raises a ValidationError with the policies' messages, nothing changed;
    `require_approval` holds `proposed` as a FlagChange (returned with the decision); otherwise (decision, None)."""
    from governance import approvals as governance_approvals
    from governance import facts
    from governance import services as governance

    requester = actor if isinstance(actor, User) and actor.is_authenticated else None
    change = facts.Change(
        service=flag.service,
        environment=environment,
        strategy="",
        version="",
        requester=requester,
        kind="flag",
        flag=flag_facts(flag, setting, after),
    )
    decision = governance.change_judge(change=change)
    if decision.verdict == "deny":
        raise ValidationError(" ".join(governance.blocking_messages(decision)) or "A deploy policy refused it.")
    if decision.verdict != "approval":
        return decision, None
    requirements = governance_approvals.requirements_of(decision)
    with transaction.atomic():
        held = FlagChange.objects.create(
            flag=flag,
            environment=environment,
            proposed=proposed,
            note=note[:200],
            decision=decision,
            requirements=requirements,
            requested_by=requester,
            reason=" ".join(r["message"] for r in requirements),
            expires_at=timezone.now() + governance_approvals.expiry(),
        )
        event_record(
            actor=actor,
            action="flag_change.requested",
            target=held,
            after={"flag": flag.key, "environment": environment.slug, "proposed": proposed, "decision": decision.pk},
            service_id=flag.service_id,
        )
    return decision, held


@transaction.atomic
def _by_hand(*, actor: Actor, flag: Flag, environment: Environment, note: str, **proposed: Any) -> FlagSetting:
    """A person's change applied: a progressive rollout under way there stops where it stands, so that its next step
    does not overwrite what they set (turning a flag off by hand must stick)."""
    from flags import rollouts  # rollouts build on these services

    setting = setting_update(actor=actor, flag=flag, environment=environment, note=note, **proposed)
    who = actor.get_username() if isinstance(actor, User) else "someone"
    rollouts.rollouts_stop(
        flag=flag, environment=environment, actor=actor, reason=f"Stopped: {who} changed the setting by hand."
    )
    return setting


@transaction.atomic
def kill(*, actor: Actor, flag: Flag) -> int:
    """The kill switch: off in every environment at once, and every progressive rollout of it stopped (its next step
    would turn the flag on again). Returns how many environments it turned off."""
    from flags import rollouts  # rollouts build on these services

    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    before = _snapshot(flag)
    turned_off = FlagSetting.objects.filter(flag=flag, enabled=True).update(enabled=False, updated_at=timezone.now())
    _changed(flag, actor=actor, action="flag.killed", before=before, note="kill switch: off everywhere")
    rollouts.rollouts_stop(flag=flag, actor=actor, reason="Stopped by the kill switch: the flag is off everywhere.")
    return turned_off


@transaction.atomic
def segment_save(*, actor: Actor, slug: str, name: str, conditions: object, description: str = "") -> Segment:
    if not isinstance(conditions, list) or not conditions or len(conditions) > MAX_CONDITIONS:
        raise ValidationError({"conditions": f"A segment is a list of 1 to {MAX_CONDITIONS} conditions."})
    for condition in conditions:
        if isinstance(condition, dict) and condition.get("op") == "segment":
            raise ValidationError({"conditions": "A segment cannot refer to another segment."})
        condition_check(condition, set())
    segment = Segment.objects.filter(slug=slug).first()
    before = None if segment is None else {"name": segment.name, "conditions": segment.conditions}
    segment = segment or Segment(slug=slug)
    segment.name, segment.conditions, segment.description = name, conditions, description
    segment.full_clean()
    segment.save()
    event_record(
        actor=actor,
        action="segment.saved",
        target=segment,
        before=before,
        after={"name": name, "conditions": conditions},
    )
    transaction.on_commit(selectors.flag_sets_forget)
    return segment


def segment_users(segment: Segment) -> list[str]:
    """'checkout/new-checkout in Production' for every flag setting whose rules refer to the segment."""
    found = []
    for setting in FlagSetting.objects.exclude(rules=[]).select_related("flag__service", "environment"):
        conditions = (condition for rule in setting.rules for condition in rule.get("when", []))
        if any(c.get("op") == "segment" and c.get("value") == segment.slug for c in conditions):
            found.append(f"{setting.flag.service.slug}/{setting.flag.key} in {setting.environment.name}")
    return found


@transaction.atomic
def segment_delete(*, actor: Actor, segment: Segment) -> None:
    """Remove a segment no rule refers to (a rule naming a missing segment would match nobody, silently)."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if users := segment_users(segment):
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        raise Conflict(f"Rules still refer to the segment {segment.slug}: {shown}. Change them first.")
    event_record(
        actor=actor,
        action="segment.deleted",
        target=segment,
        before={"name": segment.name, "conditions": segment.conditions},
        after=None,
    )
    segment.delete()
    transaction.on_commit(selectors.flag_sets_forget)


@transaction.atomic
def sdk_key_create(*, actor: Actor, service: Service, environment: Environment, name: str) -> tuple[SdkKey, str]:
    """A new SDK key; the raw key is returned once and never stored."""
    raw = SdkKey.generate()
    author = actor if actor is not None and actor.is_authenticated else None
    key = SdkKey.objects.create(
        service=service,
        environment=environment,
        name=name[:100] or "SDK key",
        digest=sdk_key_digest(raw),
        hint=raw[:10],
        created_by=author,
    )
    event_record(
        actor=actor,
        action="flag_sdk_key.created",
        target=key,
        after={"name": key.name, "hint": key.hint},
        service_id=service.pk,
    )
    return key, raw


@transaction.atomic
def sdk_key_revoke(*, actor: Actor, key: SdkKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        event_record(actor=actor, action="flag_sdk_key.revoked", target=key, service_id=key.service_id)
    digest = key.digest
    transaction.on_commit(lambda: selectors.sdk_key_forget(digest))


@transaction.atomic
def flag_delete(*, actor: Actor, flag: Flag) -> None:
    """Remove a flag with its settings, history and counts; the audit log keeps its last snapshot. SDKs asking for it
    from their next poll get FLAG_NOT_FOUND (and their code default). Refused while it is on in a protected
    environment: turning it off there is a change the deploy policies judge, so deleting never skips them, and a
    deletion never changes what production serves."""
    flag = Flag.objects.select_for_update().get(pk=flag.pk)
    live = FlagSetting.objects.filter(flag=flag, enabled=True, environment__protected=True)
    if live:
        names = ", ".join(setting.environment.name for setting in live.select_related("environment"))
        raise ValidationError(f"{flag.key} is on in {names}: turn it off there first, then delete it.")
    event_record(actor=actor, action="flag.deleted", target=flag, before=_snapshot(flag), service_id=flag.service_id)
    flag.delete()
    transaction.on_commit(selectors.flag_sets_forget)
