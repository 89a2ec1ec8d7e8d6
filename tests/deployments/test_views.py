"""Deployment pages: the deploy form, the board, one deployment live, controls and the environments matrix."""

import pytest
from django.urls import reverse

from deployments.models import Deployment, Placement, State
from tests.deployments.support import drive, release_make

pytestmark = pytest.mark.django_db


def test_deploy_form_starts_a_deployment_and_shows_it(client, world, repo, target) -> None:
    client.force_login(world.owner)
    url = reverse("deployments:deploy", args=[world.service.slug])
    page = client.get(url)
    assert page.status_code == 200
    assert b'<option value="v1.0.0">' in page.content  # the repository's tags are offered
    response = client.post(url, {"environment": target.environment.pk, "ref": "v1.0.0", "strategy": ""})
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == deployment.get_absolute_url()
    assert deployment.strategy == "canary" and deployment.release.commit_sha == repo.first
    detail = client.get(deployment.get_absolute_url())
    assert b"v1.0.0" in detail.content and b'hx-trigger="every 1s"' in detail.content


def test_deploy_form_shows_field_errors_and_conflicts(client, world, repo, target) -> None:
    client.force_login(world.owner)
    url = reverse("deployments:deploy", args=[world.service.slug])
    bad = client.post(url, {"environment": target.environment.pk, "ref": "v7"})
    assert bad.status_code == 200 and b"No commit, tag or branch called v7" in bad.content
    client.post(url, {"environment": target.environment.pk, "ref": "v1.0.0"})
    second = client.post(url, {"environment": target.environment.pk, "ref": "main"})
    assert second.status_code == 409 and b"already has deployment #" in second.content
    assert Deployment.objects.count() == 1


def test_outsiders_cannot_open_the_deploy_form_or_control(client, world, repo, target) -> None:
    client.force_login(world.outsider)
    assert client.get(reverse("deployments:deploy", args=[world.service.slug])).status_code == 403
    client.force_login(world.owner)
    client.post(
        reverse("deployments:deploy", args=[world.service.slug]),
        {"environment": target.environment.pk, "ref": "v1.0.0"},
    )
    deployment = Deployment.objects.get()
    client.force_login(world.outsider)
    response = client.post(reverse("deployments:control", args=[deployment.pk, "abort"]))
    assert response.status_code == 403
    assert Deployment.objects.get().state == State.PENDING
    page = client.get(deployment.get_absolute_url())
    assert b"Only Payments and platform admins can control" in page.content


def test_controls_need_csrf(world, target) -> None:
    from django.test import Client

    release = release_make(world.service)
    deployment = Deployment.objects.create(
        release=release, service=world.service, environment=target.environment, strategy="canary",
        runtime="simulated", requested_by=world.owner,
    )  # fmt: skip
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.owner)
    response = strict.post(reverse("deployments:control", args=[deployment.pk, "abort"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert Deployment.objects.get().state == State.PENDING


def test_board_lists_in_flight_and_finished(client, world, target, django_assert_max_num_queries) -> None:
    from deployments import services

    for n in range(6):
        release = release_make(world.service, f"1.{n}.0")
        Deployment.objects.create(
            release=release, service=world.service, environment=target.environment, strategy="canary",
            runtime="simulated", state=State.ROLLED_BACK, failure_reason=f"bad {n}",
        )  # fmt: skip
    release = release_make(world.service, "2.0.0")
    active = services.deployment_request(
        service=world.service, environment=target.environment, user=world.owner, release=release
    )
    client.force_login(world.outsider)
    with django_assert_max_num_queries(8):
        page = client.get(reverse("deployments:board"))
    assert page.content.count(b"Rolled back") == 6
    assert f'aria-label="Progress of #{active.pk}"'.encode() in page.content
    fragment = client.get(reverse("deployments:board"), HTTP_HX_REQUEST="true")
    assert fragment.content.lstrip().startswith(b'<div id="board"')


def test_deployment_page_draws_analysis_charts(client, world, target) -> None:
    from deployments import services
    from tests.deployments.support import scripted

    target.runtime = "scripted"
    target.save()
    release_make(world.service, "1.0.0")
    with scripted():
        first = services.deployment_request(
            service=world.service,
            environment=target.environment,
            user=world.owner,
            release=release_make(world.service, "0.9.0"),
        )
        drive(first)
        second = drive(services.deployment_request(
            service=world.service, environment=target.environment, user=world.owner,
            release=world.service.releases.get(version="1.0.0"),
        ))  # fmt: skip
    client.force_login(world.owner)
    page = client.get(second.get_absolute_url())
    assert page.status_code == 200
    assert page.content.count(b'class="bar-canary"') == 3 * 2  # three analyses, two charts
    assert page.content.count(b'class="bar-baseline"') == 3 * 2
    assert b"Redeploy 1.0.0" in page.content


def test_environments_matrix_shows_versions(client, world, target, staging, django_assert_max_num_queries) -> None:
    from django.utils import timezone

    from deployments.models import DeployTarget, Environment

    production = Environment.objects.create(name="Production", slug="production", order=2, protected=True)
    DeployTarget.objects.create(service=world.service, environment=production, runtime="simulated")
    Placement.objects.create(
        service=world.service, environment=staging, release=release_make(world.service, "2.0.0"), since=timezone.now()
    )
    Placement.objects.create(
        service=world.service,
        environment=production,
        release=release_make(world.service, "1.0.0"),
        since=timezone.now(),
    )
    client.force_login(world.outsider)
    with django_assert_max_num_queries(10):
        page = client.get(reverse("deployments:environments"))
    body = page.content.decode()
    assert "2.0.0" in body and "1.0.0" in body and 'class="differs"' in body
    assert "payments-api" not in client.get(reverse("deployments:environments"), {"q": "zzz"}).content.decode()


def test_service_page_shows_where_it_runs_and_a_deploy_button(client, world, target) -> None:
    client.force_login(world.owner)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert reverse("deployments:deploy", args=[world.service.slug]) in page and "not deployed" in page
    client.force_login(world.outsider)
    page = client.get(world.service.get_absolute_url()).content.decode()
    assert reverse("deployments:deploy", args=[world.service.slug]) not in page


def test_an_error_rate_reads_the_same_in_the_timeline_the_table_and_the_chart(client, world, target) -> None:
    """One failed request in 40 is 2.5 %: the table once said "2 %" beside a timeline saying "2.5 %"."""
    from deployments import services
    from tests.deployments.support import scripted

    target.runtime = "scripted"
    target.save()
    with scripted() as runtime:
        runtime.script.extend(["one_error"])
        deployment = drive(
            services.deployment_request(
                service=world.service,
                environment=target.environment,
                user=world.owner,
                release=release_make(world.service),
            )
        )
    assert deployment.state == State.ROLLED_BACK  # 2.5 % is above the default 1 % limit
    client.force_login(world.owner)
    html = client.get(deployment.get_absolute_url()).content.decode()

    assert "canary error rate 2.5 % is above the 1.0 % limit" in html  # the timeline and the failure reason
    assert "<td>2.5 % / –</td>" in html  # the analysis table
    assert "canary at 10 % canary: 2.5 %</title>" in html  # the chart's bar
    assert " 2 %" not in html and "2.50" not in html


def test_deploy_form_offers_tags_and_recent_commits_to_pick(client, world, repo, target, staging) -> None:
    """Each tag and recent commit is a link that fills the box (a script does it in place; without one the link
    reloads the form with it filled in, keeping the chosen environment)."""
    client.force_login(world.owner)
    url = reverse("deployments:deploy", args=[world.service.slug])
    html = client.get(url, {"environment": staging.slug}).content.decode()

    picks = section(html, 'aria-labelledby="refs-heading"')
    assert 'data-ref="v1.0.0"' in picks and f"?environment={staging.slug}&amp;ref=v1.0.0" in picks
    assert f'data-ref="{repo.second}"' in picks and f'data-ref="{repo.first}"' in picks
    assert picks.index("v1.0.0") < picks.index(repo.second)  # tags first, then commits, newest first
    assert "/static/deployments/deploy-form.js" in html
    assert "onclick" not in html  # the Content-Security-Policy forbids inline scripts

    filled = client.get(url, {"environment": staging.slug, "ref": "v1.0.0"}).content.decode()
    assert 'name="ref" value="v1.0.0"' in filled


def test_the_plan_counts_its_promotion_and_one_replica_is_singular(client, world, target) -> None:
    """The timeline said "Step n of 7" beside an 8-item plan, and "on 1 replicas"."""
    from deployments import services

    target.strategy, target.replicas = "rolling", 1
    target.save()
    deployment = drive(
        services.deployment_request(
            service=world.service, environment=target.environment, user=world.owner, release=release_make(world.service)
        )
    )
    client.force_login(world.owner)
    html = client.get(deployment.get_absolute_url()).content.decode()

    items = len(deployment.plan) + 1  # the page lists the promotion after the plan's steps
    assert section(html, 'class="plan"').count("<li") == items
    assert f"Step 1 of {items}: Start new replicas until 1 runs." in html
    assert f"Step 3 of {items}: Stop old replicas until 0 remain." in html
    assert "Start replicas until 1 runs" in html
    assert f"now runs in {target.environment} on 1 replica." in html
    assert "1 replicas" not in html


def section(html: str, marker: str) -> str:
    """The element that carries `marker`, up to its closing tag (good enough for these flat pages)."""
    start = html.index(marker)
    tag = html.rfind("<", 0, start)
    name = html[tag + 1 : html.index(" ", tag)]
    return html[start : html.index(f"</{name}>", start)]
