"""Writes for governance: saving policies (platform admins only, audited) and recording decisions.

`deployment_judge` is the one function the deployment engine calls at a deployment's policy step.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as clock_time
from typing import Any

import cel
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import services as audit
from catalog.models import Service, System, slug_validator
from deployments.models import Deployment, Environment, Strategy
from governance import expressions, facts, freezes, selectors
from governance.expressions import Judged
from governance.models import Approvers, Decision, FreezeWindow, Policy, PolicyVersion, Verdict, content_of
from portal import db
from teams.models import Team


def _require_admin(user: User | AnonymousUser | None) -> None:
    """`None` is the system (a policy sync run by an operator); a person must be a platform admin."""
    if user is not None and not (user.is_authenticated and user.is_staff):
        raise PermissionDenied("Only platform admins may create or change deploy policies.")


def _policy_state(policy: Policy | None, version: PolicyVersion | None) -> dict[str, Any] | None:
    if policy is None:
        return None
    state: dict[str, Any] = {"enabled": policy.enabled, "description": policy.description}
    if version is not None:
        state |= {"version": version.number, **version.content()}
    return state


@transaction.atomic
def policy_save(
    *,
    user: User | AnonymousUser | None,
    name: str,
    rule: str,
    match: str = "true",
    message: str = "",
    message_expression: str = "",
    action: str = "deny",
    description: str = "",
    enabled: bool = True,
    source_path: str = "",
    approvers: str = "",
    approver_team: str = "",
    approvals_required: int = 1,
) -> Policy:
    """Create a policy or change one; what it says changes only by a new version, with its author and time."""
    _require_admin(user)
    name = name.strip()
    try:
        slug_validator(name)
    except ValidationError as error:
        raise ValidationError({"name": error.messages}) from None
    if name == "new":  # /governance/policies/new/ is the editor's address
        raise ValidationError({"name": ["“new” is reserved for the new-policy page; choose another name."]})
    match = match.strip() or "true"
    content = content_of(
        match=match,
        rule=rule,
        message=message,
        message_expression=message_expression,
        action=action,
        approvers=approvers,
        approver_team=approver_team.strip(),
        approvals_required=approvals_required,
    )
    expressions.version_check(**content)
    approver_team_check(content)
    policy = Policy.objects.select_for_update(of=("self",)).select_related("current").filter(name=name).first()
    before = _policy_state(policy, policy.current if policy else None)
    if policy is None:
        policy = Policy(name=name)
    policy.description, policy.enabled, policy.source_path = description, enabled, source_path
    policy.missing_since = None
    policy.full_clean(exclude=["current"])
    policy.save()
    version = policy.current
    if version is None or version.content() != content:
        version = PolicyVersion(
            policy=policy,
            number=(version.number + 1) if version else 1,
            author=user if isinstance(user, User) else None,
            author_repr=user.get_username() if isinstance(user, User) else "policy sync",
            **content,
        )
        version.full_clean()
        version.save()
        policy.current = version
        policy.save(update_fields=["current", "updated_at"])
    after = _policy_state(policy, version)
    selectors.policies_changed()
    if before != after:
        action_name = "policy.created" if before is None else "policy.changed"
        audit.event_record(actor=user, action=action_name, target=policy, before=before, after=after)
    return policy


def approver_team_check(content: dict[str, Any]) -> None:
    """A policy whose approvers are a named team must name a team that exists (nobody could approve otherwise)."""
    from teams.models import Team

    if content.get("approvers") != Approvers.TEAM:
        return
    slug = content.get("approver_team", "")
    if not Team.objects.filter(slug=slug).exists():
        raise ValidationError(
            {"approver_team": [f"There is no team {slug!r}; name an existing team's slug, such as release-managers."]}
        )


@transaction.atomic
def policy_disable_missing(*, policy: Policy, user: User | AnonymousUser | None) -> Policy:
    """A policy gone from the files it was synced from: disabled and marked, never deleted (decisions cite it)."""
    _require_admin(user)
    policy = Policy.objects.select_for_update(of=("self",)).select_related("current").get(pk=policy.pk)
    if policy.missing_since is not None and not policy.enabled:
        return policy
    before = _policy_state(policy, policy.current)
    policy.enabled, policy.missing_since = False, timezone.now()
    policy.save(update_fields=["enabled", "missing_since", "updated_at"])
    selectors.policies_changed()
    audit.event_record(
        actor=user, action="policy.missing", target=policy, before=before, after=_policy_state(policy, policy.current)
    )
    return policy


@dataclass(frozen=True)
class Evaluation:
    """Every enabled policy's word on one fact document."""

    results: list[Judged] = field(default_factory=list)
    duration_ms: float = 0.0

    @property
    def allowed(self) -> bool:
        return not any(result.blocks for result in self.results)

    @property
    def verdict(self) -> str:
        if not self.allowed:
            return Verdict.DENY
        return Verdict.APPROVAL if any(result.needs_approval for result in self.results) else Verdict.ALLOW

    @property
    def denials(self) -> list[Judged]:
        return [result for result in self.results if result.blocks]

    @property
    def warnings(self) -> list[Judged]:
        return [r for r in self.results if r.action == "warn" and r.outcome in ("fail", "error")]

    def summary(self) -> str:
        counted = len(self.results)
        if not counted:
            return "no deploy policies are enabled"
        if self.denials:
            return " ".join(result.message for result in self.denials)
        if waiting := [result.message for result in self.results if result.needs_approval]:
            return "Needs approval: " + " ".join(waiting)
        applied = sum(1 for result in self.results if result.outcome != "skip")
        return f"{applied} of {counted} policies applied, none denied"


def policies_evaluate(*, document: facts.Facts, generation: str | None = None) -> Evaluation:
    """Judge one fact document with every enabled policy. Reads one query; each expression compiles once.
    `generation`: the enabled policies' cache generation, when the caller read it already."""
    started = time.perf_counter()
    versions = selectors.policy_versions_enabled(generation=generation)
    context = cel.Context(document)  # converted to CEL values once, not once per policy
    results = [expressions.policy_evaluate(version, context) for version in versions]
    return Evaluation(results=results, duration_ms=(time.perf_counter() - started) * 1000)


def _decision_make(*, change: facts.Change, document: facts.Facts, evaluation: Evaluation, started: float) -> Decision:
    return Decision(
        deployment=change.deployment,
        service_slug=change.service.slug,
        environment_slug=change.environment.slug,
        facts=document,
        verdict=evaluation.verdict,
        results=[result.as_dict() for result in evaluation.results],
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        requested_by=change.requester,
    )


# Whether the deployment has its decision already, read with its fact document (facts_build_with).
_JUDGED = facts.Read(
    sql="SELECT d.id FROM governance_decision d WHERE d.deployment_id = %(deployment)s", columns=("id",)
)


def deployment_judge(*, deployment: Deployment) -> Decision:
    """The policy step: build the facts, evaluate the enabled policies and record the decision with the deployment.

    A deployment is judged once. A retry of its policy step (a crashed worker), or the step again after approvals,
    finds the decision already made and returns it, so a policy edited in between never re-judges a deployment."""
    return _judge(change=facts.Change.of(deployment), deployment=deployment)


def report_judge(*, deployment: Deployment) -> Decision:
    """Judge a deployment an external CD system reported, as of when it started (the freezes and the time of day then,
    not when the report arrived). The decision says whether it was compliant; nothing refuses the report."""
    change = facts.Change.of(deployment)
    change.at = deployment.started_at or change.at
    return _judge(change=change, deployment=deployment)


def _judge(*, change: facts.Change, deployment: Deployment) -> Decision:
    started = time.perf_counter()
    # The decision made before, if any, comes with the facts: one round trip for the usual step, which has none.
    document, found = facts.facts_build_with(change=change, reads={"judged": _JUDGED})
    if found["judged"]:
        return Decision.objects.get(pk=found["judged"][0][0])
    evaluation = policies_evaluate(document=document)
    decision = _decision_make(change=change, document=document, evaluation=evaluation, started=started)
    try:
        with transaction.atomic():
            decision.save()
            audit.event_record(
                actor=None,
                action="policy.decision",
                target=decision,
                after={"deployment": deployment.pk, "verdict": decision.verdict, "results": decision.results},
                service_id=deployment.service_id,
            )
    except IntegrityError:  # another delivery of the same step recorded it first
        found_decision = selectors.decision_for(deployment=deployment)
        assert found_decision is not None
        return found_decision
    return decision


def change_judge(*, change: facts.Change) -> Decision:
    """Judge a change that is not a deployment (a feature flag's setting in a protected environment) and keep the
    decision with its fact document, audited, as the evidence of what was allowed, held or refused."""
    started = time.perf_counter()
    document = facts.facts_build(change=change)
    evaluation = policies_evaluate(document=document)
    decision = _decision_make(change=change, document=document, evaluation=evaluation, started=started)
    with transaction.atomic():
        decision.save()
        audit.event_record(
            actor=change.requester,
            action="policy.decision",
            target=decision,
            after={"kind": change.kind, "verdict": decision.verdict, "results": decision.results},
            service_id=change.service.pk,
        )
    return decision


def blocking_messages(decision: Decision) -> list[str]:
    """What refused a change: the deny policies that failed or could not be evaluated, and the require_approval
    policies that could not be (an approval cannot be asked of a rule that does not evaluate)."""
    return [
        result["message"]
        for result in decision.results
        if (result["action"] == "deny" and result["outcome"] in ("fail", "error"))
        or (result["action"] == "require_approval" and result["outcome"] == "error")
    ]


def policy_check(
    *,
    service: str,
    environment: str,
    version: str,
    user: User | AnonymousUser,
    commit_sha: str = "",
    strategy: str = "",
    policies_generation: str | None = None,
) -> Decision:
    """A dry run: what the enabled policies would say now about a change a pipeline names by slugs. Records a
    decision with no deployment (the evidence of what a pipeline outside Runway was told) and changes nothing else.
    The strategy defaults to the deploy target's, the commit to that of the service's release of this version, if
    there is one: both read with the fact document, in its one statement.

    Raises Service.DoesNotExist for an unknown service, and ValidationError naming the field for an unknown
    environment or a strategy neither named nor set by a deploy target."""
    started = time.perf_counter()
    found = facts.facts_build_named(
        named=facts.Named(
            service=service,
            environment=environment,
            version=version,
            commit=commit_sha,
            strategy=strategy,
            requester=user if isinstance(user, User) else None,
        )
    )
    if found.service is None:
        raise Service.DoesNotExist(f"No service called {service}.")
    if found.environment is None:
        raise ValidationError({"environment": [f"No environment called {environment}."]})
    if found.change is None or found.facts is None:
        raise ValidationError(
            {
                "strategy": [
                    f"{service} has no deploy target in {environment}, so name the strategy the pipeline uses: one of "
                    f"{', '.join(Strategy.values)}."
                ]
            }
        )
    evaluation = policies_evaluate(document=found.facts, generation=policies_generation)
    decision = _decision_make(change=found.change, document=found.facts, evaluation=evaluation, started=started)
    _dry_run_insert(decision)
    return decision


# A dry run's decision in one prepared statement: Django composed its INSERT at every request and quoted the two JSON
# documents (about 8 KB with 50 policies) into the statement's text; bound on the server they go as they are
# (profiled: 0.17 ms less of the process's CPU a request and 0.08 ms less of PostgreSQL's). Nothing listens for a
# decision being saved.
_DRY_RUN_COLUMNS = (
    "service_slug", "environment_slug", "facts", "verdict", "results", "duration_ms", "requested_by_id", "created_at"
)  # fmt: skip
_DRY_RUN_INSERT = f"""INSERT INTO governance_decision ({", ".join(_DRY_RUN_COLUMNS)})
VALUES ({", ".join(["%s"] * len(_DRY_RUN_COLUMNS))}) RETURNING id"""  # noqa: S608 - the code's constants


def _dry_run_insert(decision: Decision) -> None:
    """Save a dry run's new decision (no deployment) as `save()` would: each value prepared by its model field (JSON,
    the time on SQLite), and its id and creation time set on it."""
    decision.created_at = timezone.now()
    fields = {field.attname: field for field in Decision._meta.concrete_fields}
    values = [fields[name].get_db_prep_save(getattr(decision, name), connection) for name in _DRY_RUN_COLUMNS]
    row = db.write_one(_DRY_RUN_INSERT, values, prepare=True)
    assert row is not None
    decision.pk = row[0]
    decision._state.adding = False


def _freeze_state(window: FreezeWindow) -> dict[str, Any]:
    return {
        "name": window.name,
        "reason": window.reason,
        "time_zone": window.time_zone,
        "starts": f"{window.start_date.isoformat()} {window.start_time:%H:%M}",
        "ends": f"{window.end_date.isoformat()} {window.end_time:%H:%M}",
        "recurrence": window.recurrence,
        "environments": sorted(environment.slug for environment in window.environments.all()),
        "tiers": sorted(window.tiers),
        "teams": sorted(team.slug for team in window.teams.all()),
        "systems": sorted(system.slug for system in window.systems.all()),
        "enabled": window.enabled,
    }


def _require_freeze_admin(user: User | AnonymousUser | None) -> None:
    if user is not None and not (user.is_authenticated and user.is_staff):
        raise PermissionDenied("Only platform admins may create or change freeze windows.")


@transaction.atomic
def freeze_window_save(
    *,
    user: User | AnonymousUser | None,
    window: FreezeWindow | None = None,
    name: str,
    time_zone: str,
    start_date: date,
    start_time: clock_time,
    end_date: date,
    end_time: clock_time,
    reason: str = "",
    recurrence: str = "",
    environments: Iterable[Environment] = (),
    tiers: Iterable[int] = (),
    teams: Iterable[Team] = (),
    systems: Iterable[System] = (),
    enabled: bool = True,
) -> FreezeWindow:
    """Create or change a freeze window (platform admins only), audited with the before and after."""
    _require_freeze_admin(user)
    if window is not None:
        window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    before = _freeze_state(window) if window is not None else None
    tier_list = sorted({int(tier) for tier in tiers})
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["Name the freeze, for example Weekend freeze or Year-end freeze."]
    if bad := [tier for tier in tier_list if tier not in Service.Tier.values]:
        errors["tiers"] = [f"Tiers are 1 to 4; {bad} is not."]
    try:
        recurrence = freezes.recurrence_normalise(recurrence)
    except ValueError as error:
        errors["recurrence"] = [str(error)]
    times = freezes.Times(
        time_zone=time_zone.strip(),
        start=datetime.combine(start_date, start_time),
        end=datetime.combine(end_date, end_time),
        recurrence="" if "recurrence" in errors else recurrence,
    )
    for field_name, message in times.check().items():
        errors.setdefault(field_name, [message])
    if errors:
        raise ValidationError(errors)
    window = window or FreezeWindow(created_by=user if isinstance(user, User) else None)
    window.name, window.reason, window.time_zone = name.strip(), reason, times.time_zone
    window.start_date, window.start_time, window.end_date, window.end_time = start_date, start_time, end_date, end_time
    window.recurrence, window.tiers, window.enabled = recurrence, tier_list, enabled
    window.full_clean()
    window.save()
    window.environments.set(environments)
    window.teams.set(teams)
    window.systems.set(systems)
    after = _freeze_state(window)
    if before != after:
        action = "freeze.created" if before is None else "freeze.changed"
        audit.event_record(actor=user, action=action, target=window, before=before, after=after)
    return window


@transaction.atomic
def freeze_window_delete(*, user: User | AnonymousUser | None, window: FreezeWindow) -> None:
    """Remove a freeze window (platform admins only); the audit event keeps what it said. Decisions made while it was
    in force keep it in their fact documents."""
    _require_freeze_admin(user)
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    before = _freeze_state(window)
    audit.event_record(actor=user, action="freeze.deleted", target=window, before=before, after=None)
    window.delete()


def policy_preview(
    *,
    service: Service,
    environment: Environment,
    version: str,
    commit_sha: str,
    strategy: str,
    user: User | AnonymousUser,
) -> Evaluation:
    """What the enabled policies would say about this change now, for the deploy form as it is filled in. Unlike
    `policy_check` nothing is recorded: the form asks at every change, and only pressing Deploy is a request."""
    change = facts.Change(
        service=service,
        environment=environment,
        strategy=strategy,
        version=version,
        commit=commit_sha,
        requester=user if isinstance(user, User) else None,
    )
    return policies_evaluate(document=facts.facts_build(change=change))
