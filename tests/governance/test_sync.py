"""Policies as code: YAML files with tests, per-policy errors, missing policies, and the starter set."""

import io
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.core.management import call_command

from deployments import services as deployment_services
from deployments.models import State
from governance import approvals, sync
from governance.models import Policy
from tests.deployments.support import drive, release_make, scripted, step, target_make
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

TWO = """
policies:
  - name: canary-only
    rule: change.strategy == 'canary'
    message: Canary only.
    tests:
      - {facts: {change: {strategy: canary}}, expect: pass}
      - {facts: {change: {strategy: rolling}}, expect: fail, message: Canary only.}
  - name: low-tiers-only
    match: service.tier == 1
    rule: "false"
    message: Tier 1 never.
    action: warn
    tests:
      - {name: tier 1 is warned, facts: {service: {tier: 1}}, expect: fail}
      - {name: tier 3 is not judged, facts: {service: {tier: 3}}, expect: skip}
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_many_policies_per_file_sync_when_their_tests_pass(tmp_path) -> None:
    write(tmp_path, "deploys.yaml", TWO)
    report = sync.policy_sync(root=tmp_path)
    assert report.errors == [] and sorted(report.created) == ["canary-only", "low-tiers-only"]
    policy = Policy.objects.get(name="low-tiers-only")
    assert (policy.source_path, policy.current.action, policy.current.author_repr) == (
        "deploys.yaml",
        "warn",
        "policy sync",
    )
    again = sync.policy_sync(root=tmp_path)
    assert sorted(again.unchanged) == ["canary-only", "low-tiers-only"] and again.created == again.changed == []


def test_a_policy_whose_tests_fail_is_refused_and_the_others_sync(tmp_path) -> None:
    write(
        tmp_path,
        "deploys.yaml",
        TWO.replace("{change: {strategy: canary}}, expect: pass", "{change: {strategy: canary}}, expect: fail"),
    )
    report = sync.policy_sync(root=tmp_path)
    assert report.created == ["low-tiers-only"]
    assert report.errors == [("deploys.yaml", "canary-only", "not accepted: test 1: expected fail, got pass")]
    assert not Policy.objects.filter(name="canary-only").exists()


def test_a_refused_change_keeps_the_version_in_force(tmp_path) -> None:
    write(tmp_path, "deploys.yaml", TWO)
    sync.policy_sync(root=tmp_path)
    write(
        tmp_path, "deploys.yaml", TWO.replace("rule: change.strategy == 'canary'", "rule: change.strategy == 'rolling'")
    )
    report = sync.policy_sync(root=tmp_path)
    assert [error[1] for error in report.errors] == ["canary-only", "canary-only"]
    assert "expected the message" not in report.errors[0][2]
    policy = Policy.objects.get(name="canary-only")
    assert policy.current.number == 1 and policy.current.rule == "change.strategy == 'canary'" and policy.enabled


def test_expression_errors_and_bad_files_are_reported_per_policy(tmp_path) -> None:
    write(tmp_path, "a.yaml", 'name: broken\nrule: "service.tier =="\nmessage: m\n')
    write(tmp_path, "b.yaml", "name: typo\nrule: service.teir == 1\nmessage: m\n")
    write(tmp_path, "c.yaml", "name: approve\nrule: 'true'\nmessage: m\naction: require_approval\n")
    write(tmp_path, "d.yaml", "name: extra\nrule: 'true'\nmessage: m\nowner: me\n")
    write(tmp_path, "e.yaml", "name: [unclosed\n")
    write(tmp_path, "f.yaml", "name: canary-only\nrule: 'true'\nmessage: twice\n")
    write(tmp_path, "g.yaml", TWO)
    report = sync.policy_sync(root=tmp_path)
    errors = {(file, name): message for file, name, message in report.errors}
    assert "rule: Line 1, column 16: Syntax error" in errors["a.yaml", "broken"]
    assert "service.teir: the fact document has no such field" in errors["b.yaml", "typo"]
    assert "approvers: Say who approves: one of owner_leads, team, platform_admins." in errors["c.yaml", "approve"]
    assert errors["d.yaml", "extra"].startswith("Unknown field(s) owner")
    assert errors["e.yaml", ""].startswith("This is not valid YAML (line 2, column 1)")
    assert errors["g.yaml", "canary-only"] == "Defined twice: first in f.yaml; this one is ignored."
    assert sorted(report.created) == ["canary-only", "low-tiers-only"]
    assert Policy.objects.get(name="canary-only").current.message == "twice"


def test_policies_gone_from_the_source_are_disabled_and_marked_not_deleted(tmp_path, policy) -> None:
    policy("made-in-the-portal", "true")
    write(tmp_path, "deploys.yaml", TWO)
    sync.policy_sync(root=tmp_path)
    write(tmp_path, "deploys.yaml", TWO.split("  - name: low-tiers-only")[0])
    report = sync.policy_sync(root=tmp_path)
    assert report.missing == ["low-tiers-only"]
    gone = Policy.objects.get(name="low-tiers-only")
    assert not gone.enabled and gone.missing_since is not None and gone.current.number == 1
    assert Policy.objects.get(name="made-in-the-portal").enabled  # not from this source
    assert sync.policy_sync(root=tmp_path).missing == []  # reported once
    write(tmp_path, "deploys.yaml", TWO)
    back = sync.policy_sync(root=tmp_path)
    assert back.changed == ["low-tiers-only"]
    gone.refresh_from_db()
    assert gone.enabled and gone.missing_since is None


def test_only_platform_admins_sync(world, tmp_path) -> None:
    write(tmp_path, "deploys.yaml", TWO)
    with pytest.raises(PermissionDenied):
        sync.policy_sync(root=tmp_path, user=world.owner)
    assert sync.policy_sync(root=tmp_path, user=world.staff).created


def test_the_command_prints_the_report(tmp_path) -> None:
    write(tmp_path, "deploys.yaml", TWO.replace("expect: skip", "expect: pass"))
    out = io.StringIO()
    call_command("policy_sync", str(tmp_path), stdout=out)
    text = out.getvalue()
    assert "created canary-only" in text
    assert "deploys.yaml: low-tiers-only: not accepted: test 2 (tier 3 is not judged): expected pass, got skip" in text


@pytest.mark.smoke
def test_the_starter_policies_sync_with_all_their_tests_passing() -> None:
    report = sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"])
    assert report.errors == []
    assert sorted(report.created) == [
        "current-golden-path", "flags-on-in-staging-first", "no-production-deploys-in-a-freeze",
        "production-in-working-hours",
        "progressive-delivery-for-tier-1", "staging-before-production", "two-person-rule-for-tier-1",
    ]  # fmt: skip
    actions = dict(Policy.objects.values_list("name", "current__action"))
    assert actions["staging-before-production"] == actions["progressive-delivery-for-tier-1"] == "deny"
    assert (actions["current-golden-path"], actions["production-in-working-hours"]) == ("warn", "audit")
    two_person = Policy.objects.get(name="two-person-rule-for-tier-1").current
    assert (two_person.action, two_person.approvers, two_person.approvals_required) == (
        "require_approval",
        "owner_leads",
        1,
    )


def test_every_starter_policy_has_tests_that_exercise_both_outcomes() -> None:
    import yaml

    for path in Path(django_settings.GOVERNANCE["POLICIES_DIR"]).glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            for item in document.get("policies", [document]):
                expected = {test["expect"] for test in item["tests"]}
                assert {"pass", "fail"} <= expected, item["name"]


def test_the_starter_set_refuses_a_tier_1_rolling_deploy_straight_to_production(world, staging, production) -> None:
    sync.policy_sync(root=django_settings.GOVERNANCE["POLICIES_DIR"])
    target_make(world.service, staging, runtime="scripted", strategy="rolling")
    target_make(world.service, production, runtime="scripted", strategy="rolling")
    release = release_make(world.service, "v1.0.0")

    def deploy(environment, **kwargs):  # type: ignore[no-untyped-def]
        return drive(
            deployment_services.deployment_request(
                service=world.service, environment=environment, user=world.owner, release=release, **kwargs
            )
        )

    with scripted():
        refused = deploy(production, strategy="rolling")
        assert refused.state == State.CANCELLED
        assert refused.failure_reason == (
            "Policy check refused the deployment: payments-api is tier 1: deploy it to Production as a canary or "
            "blue-green, not rolling. Release v1.0.0 has not succeeded in staging yet; deploy it there first, then "
            "promote it."
        )
        assert deploy(staging).state == State.SUCCEEDED
        # Staging passed and the strategy is right: the two-person rule holds it for a lead of payments.
        waiting = deployment_services.deployment_request(
            service=world.service, environment=production, user=world.owner, release=release, strategy="canary"
        )
        for _ in range(3):
            waiting = step(waiting)
        assert waiting.state == State.AWAITING_APPROVAL
        assert waiting.policy_decision.verdict == "approval"
        lead = MembershipFactory(team=world.owner_team, user=UserFactory(username="lena"), role="lead").user
        approvals.approval_approve(request_id=waiting.approval_requests.get().pk, user=lead)
        assert drive(waiting).state == State.SUCCEEDED
