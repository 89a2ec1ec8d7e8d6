"""The Governance pages: the policies and their versions, read-only, for every signed-in user."""

import pytest
from django.urls import reverse

from governance import sync

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_sign_in(client, world) -> None:  # type: ignore[no-untyped-def]
    for url in (reverse("governance:policy-list"), reverse("governance:policy-detail", kwargs={"name": "x"})):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_list_shows_every_policy_with_its_action_and_version(
    client, world, policy, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    policy("canary-in-production", "change.strategy != 'rolling'", match="change.environment.protected")
    policy("canary-in-production", "change.strategy == 'canary'", match="change.environment.protected")
    for index in range(10):
        policy(f"p-{index}", "true", action="warn", enabled=index % 2 == 0)
    client.force_login(world.outsider)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("governance:policy-list"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "canary-in-production" in page and "change.strategy == &#x27;canary&#x27;" in page and "v2" in page
    assert page.count(">disabled<") == 5 and 'aria-current="page">Governance' in page


def test_the_detail_lists_every_version_newest_first(client, world, policy) -> None:  # type: ignore[no-untyped-def]
    policy("canary-in-production", "change.strategy != 'rolling'", message="first")
    policy("canary-in-production", "change.strategy == 'canary'", message="second")
    client.force_login(world.owner)
    page = client.get(reverse("governance:policy-detail", kwargs={"name": "canary-in-production"})).content.decode()
    assert page.index(">v2 ") < page.index(">v1 ") and page.count("in force") == 1
    assert "second" in page and "first" in page and "by stella" in page
    assert "Changes from v1" in page
    assert '<span class="diff-del">- rule: change.strategy != &#x27;rolling&#x27;</span>' in page
    assert '<span class="diff-add">+ rule: change.strategy == &#x27;canary&#x27;</span>' in page
    assert '<span class="diff-add">+ message: second</span>' in page


def test_a_policy_missing_from_its_files_says_so(client, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.yaml").write_text("name: gone\nrule: 'true'\nmessage: m\n")
    sync.policy_sync(root=tmp_path)
    (tmp_path / "p.yaml").unlink()
    sync.policy_sync(root=tmp_path)
    client.force_login(world.owner)
    assert "missing from source" in client.get(reverse("governance:policy-list")).content.decode()
    detail = client.get(reverse("governance:policy-detail", kwargs={"name": "gone"})).content.decode()
    assert "missing from its policy files since" in detail and "p.yaml" in detail


def test_an_unknown_policy_is_a_404(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    assert client.get(reverse("governance:policy-detail", kwargs={"name": "nope"})).status_code == 404


def test_an_empty_list_says_what_that_means(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.owner)
    assert "every deployment is allowed" in client.get(reverse("governance:policy-list")).content.decode()


def test_a_decision_page_shows_each_policys_word_and_the_facts(client, world, policy) -> None:  # type: ignore[no-untyped-def]
    from deployments.models import Environment
    from governance import services
    from tests.deployments.support import release_make

    policy("canary-only", "change.strategy == 'canary'", message="Use a canary.")
    policy("never-tier-4", "false", match="service.tier == 4", message="never", action="warn")
    Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    release_make(world.service, "v7")
    decision = services.policy_check(
        service="payments-api", environment="production", version="v7", user=world.owner, strategy="rolling"
    )
    client.force_login(world.outsider)
    page = client.get(decision.get_absolute_url()).content.decode()
    assert f"Decision #{decision.pk}: denied" in page and "A dry run for payments-api → production" in page
    assert "Use a canary." in page and "skipped" in page and "failed" in page
    assert "&quot;strategy&quot;: &quot;rolling&quot;" in page
    assert client.get(reverse("governance:decision-detail", kwargs={"pk": decision.pk + 1})).status_code == 404


def test_a_deployments_decision_page_links_the_deployment(client, world, policy) -> None:  # type: ignore[no-untyped-def]
    from deployments import services as deployment_services
    from deployments.models import Environment
    from tests.deployments.support import drive, release_make, scripted, target_make

    staging = Environment.objects.create(name="Staging", slug="staging", order=1)
    target_make(world.service, staging, runtime="scripted", canary_steps=[50])
    with scripted():
        deployment = drive(
            deployment_services.deployment_request(
                service=world.service, environment=staging, user=world.owner, release=release_make(world.service)
            )
        )
    client.force_login(world.owner)
    page = client.get(deployment.policy_decision.get_absolute_url()).content.decode()
    assert deployment.get_absolute_url() in page and "No deploy policy was enabled" in page


def test_only_platform_admins_may_open_or_post_the_editor(client, world, policy) -> None:  # type: ignore[no-untyped-def]
    policy("canary-only", "change.strategy == 'canary'")
    body = {"name": "mine", "match": "true", "rule": "true", "message": "m", "action": "deny", "enabled": "on"}
    for user in (world.owner, world.outsider):
        client.force_login(user)
        for url in (reverse("governance:policy-new"), reverse("governance:policy-edit", args=["canary-only"])):
            assert client.get(url).status_code == 403
            assert client.post(url, body).status_code == 403
        assert "New policy" not in client.get(reverse("governance:policy-list")).content.decode()
    from governance.models import Policy

    assert list(Policy.objects.values_list("name", flat=True)) == ["canary-only"]


def test_an_admin_writes_a_policy_and_a_new_version_of_it(client, world) -> None:  # type: ignore[no-untyped-def]
    from audit.models import AuditEvent
    from governance.models import Policy

    client.force_login(world.staff)
    body = {
        "name": "canary-only", "description": "Slowly.", "match": "change.environment.protected",
        "rule": "change.strategy == 'canary'", "message": "Use a canary.", "action": "deny", "enabled": "on",
    }  # fmt: skip
    response = client.post(reverse("governance:policy-new"), body)
    assert response.status_code == 302 and response["Location"] == "/governance/policies/canary-only/"
    response = client.post(reverse("governance:policy-edit", args=["canary-only"]), {**body, "action": "warn"})
    assert response.status_code == 302
    policy = Policy.objects.get(name="canary-only")
    assert (policy.current.number, policy.current.action, policy.current.author) == (2, "warn", world.staff)
    events = AuditEvent.objects.filter(object_type="governance.policy").order_by("pk")
    assert list(events.values_list("action", flat=True)) == ["policy.created", "policy.changed"]


def test_the_editor_shows_cel_errors_with_their_position_as_you_type(client, world) -> None:  # type: ignore[no-untyped-def]
    client.force_login(world.staff)
    body = {"name": "p", "match": "true", "rule": "service.tier ==", "message": "m", "action": "deny"}
    response = client.post(reverse("governance:policy-new"), {**body, "_validate": "rule"}, HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert response.status_code == 200 and "<form" not in fragment
    assert "Line 1, column 16: Syntax error" in fragment
    page = client.post(reverse("governance:policy-new"), {**body, "rule": "service.teir == 1"}).content.decode()
    assert "service.teir: the fact document has no such field" in page
    page = client.post(reverse("governance:policy-new"), {**body, "action": "require_approval"}).content.decode()
    assert "Say who approves: one of owner_leads, team, platform_admins." in page
    page = client.post(reverse("governance:policy-new"), {**body, "action": "block"}).content.decode()
    assert "Select a valid choice" in page
    page = client.post(reverse("governance:policy-new"), {**body, "name": "new", "rule": "true"}).content.decode()
    assert "reserved for the new-policy page" in page
    from governance.models import Policy

    assert not Policy.objects.exists()


def test_a_policy_from_policy_files_is_changed_in_its_file(client, world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.yaml").write_text("name: from-file\nrule: 'true'\nmessage: m\n")
    sync.policy_sync(root=tmp_path)
    client.force_login(world.staff)
    response = client.post(
        reverse("governance:policy-edit", args=["from-file"]),
        {"match": "true", "rule": "false", "message": "m", "action": "deny"},
        follow=True,
    )
    assert "comes from the policy file p.yaml; change it there" in response.content.decode()
    from governance.models import Policy

    assert Policy.objects.get(name="from-file").current.rule == "true"


def test_the_editor_tries_the_policy_as_typed_against_a_real_service(client, world) -> None:  # type: ignore[no-untyped-def]
    from deployments.models import Environment
    from governance.models import Decision, Policy

    Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    body = {
        "name": "canary-tier-1", "match": "service.tier == 1", "rule": "change.strategy != 'rolling'",
        "message_expression": "service.slug + ' is tier ' + string(service.tier) + ': no rolling deploys.'",
        "action": "deny", "try_service": "payments-api", "try_environment": "production", "try_strategy": "rolling",
    }  # fmt: skip
    url = reverse("governance:policy-try")
    client.force_login(world.owner)
    assert client.post(url, body, HTTP_HX_REQUEST="true").status_code == 403
    client.force_login(world.staff)
    fragment = client.post(url, body, HTTP_HX_REQUEST="true").content.decode()
    assert "<form" not in fragment and "fails" in fragment and "payments-api is tier 1: no rolling deploys." in fragment
    fragment = client.post(url, {**body, "try_strategy": "canary"}, HTTP_HX_REQUEST="true").content.decode()
    assert "the rule holds" in fragment
    fragment = client.post(url, {**body, "rule": "change.strategy !="}, HTTP_HX_REQUEST="true").content.decode()
    assert "Fix the expressions above first." in fragment
    fragment = client.post(url, {**body, "try_service": "nope"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Name a service in the catalog" in fragment
    assert not Policy.objects.exists() and not Decision.objects.exists()


@pytest.mark.parametrize(
    ("page", "current"), [("governance:policy-list", "Deploy policies"), ("audit:event-list", "Audit log")]
)
def test_governance_pages_reach_each_other(client, world, page: str, current: str) -> None:  # type: ignore[no-untyped-def]
    """The Governance tab lands on the audit log; the deploy policies must be one click from it, and back."""
    client.force_login(world.owner)
    html = client.get(reverse(page)).content.decode()
    assert f'href="{reverse("governance:policy-list")}"' in html
    assert f'href="{reverse("audit:event-list")}"' in html
    assert f'aria-current="page">{current}</a>' in html
