"""Policies as CEL: checked when saved, versioned and audited, evaluated fail-closed with real CEL."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.models import AuditEvent
from governance import expressions, facts, services
from governance.models import Policy, PolicyVersion

pytestmark = pytest.mark.django_db


def refused(policy, **fields) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError) as caught:
        policy(fields.pop("name", "p"), fields.pop("rule", "true"), **fields)
    return caught.value.message_dict


def document(**groups: dict) -> dict:  # type: ignore[type-arg]
    base = facts.sample_document()
    for name, values in groups.items():
        base[name] = {**base[name], **values}
    return base


def test_a_syntax_error_is_a_field_error_with_its_position(policy) -> None:
    errors = refused(policy, rule="service.tier == 1 &&")
    assert list(errors) == ["rule"]
    assert "Line 1, column 21: Syntax error: mismatched input '<EOF>'" in errors["rule"][0]


def test_a_field_the_document_never_has_is_refused_at_save_time(policy) -> None:
    errors = refused(policy, rule="service.teir == 1")
    assert "service.teir: the fact document has no such field (it has slug, name, owner" in errors["rule"][0]
    errors = refused(policy, match="change.environment.protected.value", rule="true")
    assert "change.environment.protected has no fields" in errors["match"][0]
    errors = refused(policy, rule="deployment.tier == 1")
    assert (
        "unknown name 'deployment': the fact document has service, change, history, now, freeze, incidents, delivery"
        in errors["rule"][0]
    )


def test_names_inside_strings_and_comprehension_variables_are_not_fields(policy) -> None:
    saved = policy(
        "tags",
        "service.tags.all(t, t != 'service.nope') && !('staging.x' in change.succeeded_in)",
        action="warn",
    )
    assert saved.current.rule.startswith("service.tags.all")
    policy("open-map", "change.succeeded_in.staging != ''")  # environment slugs are data, not fields


def test_a_rule_must_give_true_or_false_and_a_message_expression_a_string(policy) -> None:
    errors = refused(policy, rule="service.tier")
    assert "must give true or false; on a sample fact document it gave 1" in errors["rule"][0]
    errors = refused(policy, rule="true", message="", message_expression="service.tier")
    assert "must give a string" in errors["message_expression"][0]


def test_require_approval_says_who_approves_and_how_many(policy, world) -> None:
    errors = refused(policy, action="require_approval")
    assert errors["approvers"] == ["Say who approves: one of owner_leads, team, platform_admins."]
    errors = refused(policy, action="require_approval", approvers="team")
    assert "Name the team whose members approve" in errors["approver_team"][0]
    errors = refused(policy, action="require_approval", approvers="team", approver_team="release-managers")
    assert "There is no team 'release-managers'" in errors["approver_team"][0]
    errors = refused(policy, action="require_approval", approvers="owner_leads", approvals_required=11)
    assert errors["approvals_required"] == ["11 approvals? Ask for 1 to 10."]
    assert "Choose one of: deny, require_approval, warn, audit." in refused(policy, action="block")["action"][0]
    saved = policy(
        "two-admins", "false", action="require_approval", approvers="team", approver_team="search", approvals_required=2
    )
    assert saved.current.content() | {} == {
        "match": "true",
        "rule": "false",
        "message": "two-admins failed",
        "message_expression": "",
        "action": "require_approval",
        "approvers": "team",
        "approver_team": "search",
        "approvals_required": 2,
    }
    assert saved.current.approvers_text() == "2 approvals from the search team"
    # The approval fields belong to require_approval policies only: a deny policy's content says nothing of them.
    denied = policy("plain", "true", approvers="team", approver_team="nobody")
    assert "approvers" not in denied.current.content() and denied.current.approvers == ""


def test_size_and_comprehension_limits(policy, settings) -> None:
    long = " || ".join(["service.tier == 1"] * 200)
    assert "characters long; the limit is 2000" in refused(policy, rule=long)["rule"][0]
    many = "service.tags.all(a, a != '') && service.tags.all(b, b != '') && service.tags.all(c, c != '') && " * 2
    assert "uses 6 comprehensions" in refused(policy, rule=many + "true")["rule"][0]


def test_comprehensions_nested_three_deep_are_refused_before_they_run(policy) -> None:
    """Three lists of 300 nested took 14 s to evaluate; the check refuses them without running them."""
    items = "[" + ",".join(["1"] * 300) + "]"
    deep = f"{items}.all(a, {items}.all(b, {items}.all(c, a == c)))"
    assert "nests comprehensions 3 deep; the limit is 2" in refused(policy, rule=deep)["rule"][0]
    policy("two-deep", "service.tags.all(a, service.tags.exists(b, a == b)) && service.tags.all(c, c != ')')")


def test_only_platform_admins_save_policies(world) -> None:
    for user in (world.owner, world.outsider):
        with pytest.raises(PermissionDenied):
            services.policy_save(user=user, name="mine", rule="true", message="m")
    assert not Policy.objects.exists()


def test_every_change_is_a_new_immutable_version_audited_with_before_and_after(policy, world) -> None:
    first = policy("tier-one-canary", "change.strategy != 'rolling'", message="Use canary.")
    same = policy("tier-one-canary", "change.strategy != 'rolling'", message="Use canary.")
    assert same.current == first.current and same.current.number == 1
    changed = policy("tier-one-canary", "change.strategy == 'canary'", message="Use canary.")
    assert changed.current.number == 2 and PolicyVersion.objects.filter(policy=changed).count() == 2
    assert changed.current.author == world.staff
    events = list(AuditEvent.objects.filter(object_type="governance.policy").order_by("pk"))
    assert [event.action for event in events] == ["policy.created", "policy.changed"]
    assert events[1].before["rule"] == "change.strategy != 'rolling'" and events[1].before["version"] == 1
    assert events[1].after["rule"] == "change.strategy == 'canary'" and events[1].after["version"] == 2
    version = changed.current
    version.rule = "false"
    with pytest.raises(ValueError, match="immutable"):
        version.save()


def test_evaluation_applies_deny_warn_and_audit_and_skips_what_does_not_match(policy) -> None:
    policy("prod-canary", "change.strategy != 'rolling'", match="change.environment.protected", message="Canary!")
    policy("golden", "!service.golden_path.behind", action="warn", message="Behind its golden path.")
    policy("hours", "now.hour >= 8 && now.hour < 18", action="audit", message="Outside working hours.")
    policy("tier-4-only", "false", match="service.tier == 4", message="never")
    facts_ = document(change={"strategy": "rolling"}, now={"hour": 22})
    evaluation = services.policies_evaluate(document=facts_)
    outcomes = {result.policy: result.outcome for result in evaluation.results}
    assert outcomes == {"golden": "fail", "hours": "fail", "prod-canary": "fail", "tier-4-only": "skip"}
    assert not evaluation.allowed and [r.message for r in evaluation.denials] == ["Canary!"]
    assert [r.message for r in evaluation.warnings] == ["Behind its golden path."]
    allowed = services.policies_evaluate(document=document(change={"strategy": "canary"}))
    assert allowed.allowed and allowed.warnings  # a warning never blocks


def test_a_message_expression_says_precisely_what_is_wrong(policy) -> None:
    policy(
        "staging-first",
        "'staging' in change.succeeded_in",
        message="Deploy to staging first.",
        message_expression="change.version + ' has not succeeded in staging yet.'",
    )
    evaluation = services.policies_evaluate(document=document(change={"succeeded_in": {}, "version": "v9"}))
    assert evaluation.denials[0].message == "v9 has not succeeded in staging yet."


def test_a_policy_that_errors_at_run_time_denies_and_says_why(policy) -> None:
    policy("ratio", "history.deployments_7d / history.failures_7d > 2", message="Too many failures.")
    policy("ratio-warn", "history.deployments_7d / history.failures_7d > 2", action="warn", message="w")
    evaluation = services.policies_evaluate(document=document(history={"failures_7d": 0}))
    deny = next(result for result in evaluation.results if result.policy == "ratio")
    assert deny.outcome == "error" and deny.blocks
    assert deny.message == "Policy ratio could not be evaluated: division by zero in CEL expression"
    warn = next(result for result in evaluation.results if result.policy == "ratio-warn")
    assert warn.outcome == "error" and not warn.blocks
    assert [result.policy for result in evaluation.denials] == ["ratio"]


def test_a_field_missing_at_run_time_denies(policy) -> None:
    policy("tier", "service.tier < 3", message="m")
    facts_ = facts.sample_document()
    del facts_["service"]["tier"]
    [result] = services.policies_evaluate(document=facts_).results
    assert result.outcome == "error" and "KeyError" in result.message and "tier" in result.message


def test_disabled_policies_do_not_judge(policy) -> None:
    policy("off", "false", enabled=False)
    assert services.policies_evaluate(document=facts.sample_document()).results == []


def test_expressions_are_compiled_once(policy) -> None:
    policy("once", "service.tier > 0 && now.hour >= 0")
    expressions.compiled.cache_clear()
    for _ in range(5):
        services.policies_evaluate(document=facts.sample_document())
    info = expressions.compiled.cache_info()
    assert info.misses == 2 and info.hits == 8  # match and rule, compiled on the first evaluation only


def test_a_message_with_a_text_direction_override_is_refused(policy, tmp_path) -> None:
    from governance import sync

    errors = refused(policy, message="Deploys are \u202eallowed")
    assert "U+202E" in errors["message"][0] and not Policy.objects.exists()
    (tmp_path / "p.yaml").write_text("name: sneaky\nrule: 'true'\ndescription: \"ok \\u202e\"\nmessage: m\n")
    [(_file, name, message)] = sync.policy_sync(root=tmp_path).errors
    assert name == "sneaky" and "U+202E" in message and not Policy.objects.exists()
