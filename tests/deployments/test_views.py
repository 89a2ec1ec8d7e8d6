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
    assert page.content.count(b'class="badge badge-dep-rolled_back">Rolled back') == 6
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


def analysing(world, target) -> Deployment:  # type: ignore[no-untyped-def]
    """A production-like canary waiting in its first analysis (a long bake), as a person would find it."""
    from deployments import services
    from tests.deployments.support import step

    target.bake_seconds = 3600
    target.save()
    deployment = services.deployment_request(
        service=world.service, environment=target.environment, user=world.owner, release=release_make(world.service)
    )
    while deployment.state != State.ANALYSING:
        deployment = step(deployment)
    return deployment


def test_irreversible_controls_ask_first_and_the_safe_one_is_primary(client, world, target) -> None:
    deployment = analysing(world, target)
    client.force_login(world.owner)
    controls = section(client.get(deployment.get_absolute_url()).content.decode(), 'aria-labelledby="controls-heading"')

    forms = {action: form for form in controls.split("<form")[1:] for action in ("promote", "pause", "abort")
             if f"/{action}/" in form}  # fmt: skip
    assert set(forms) == {"promote", "pause", "abort"}
    assert 'hx-confirm="Promote 1.0.0 to Staging now?' in forms["promote"]
    assert 'hx-confirm="Abort deployment' in forms["abort"] and "roll back" in forms["abort"]
    assert "hx-confirm" not in forms["pause"]  # pausing is safe and undone by Resume
    assert 'class="primary"' in forms["pause"] and 'class="primary"' not in forms["promote"]
    assert '"confirmed": "yes"' in forms["promote"] and "onclick" not in controls


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_an_unconfirmed_control_shows_a_confirmation_step_and_does_nothing(client, world, target, action) -> None:
    """Without JavaScript there is no dialog: the post lands on a page that asks, and only its button acts."""
    deployment = analysing(world, target)
    url = reverse("deployments:control", args=[deployment.pk, action])
    client.force_login(world.owner)

    asked = client.post(url)
    assert asked.status_code == 200
    html = asked.content.decode()
    assert 'name="confirmed" value="yes"' in html and deployment.get_absolute_url() in html
    assert Deployment.objects.get(pk=deployment.pk).state == State.ANALYSING

    done = client.post(url, {"confirmed": "yes"})
    assert done.status_code == 302 and done["Location"] == deployment.get_absolute_url()
    expected = State.PROMOTING if action == "promote" else State.FAILED
    assert Deployment.objects.get(pk=deployment.pk).state == expected


def test_a_confirmed_htmx_control_sends_the_browser_to_the_deployment(client, world, target) -> None:
    deployment = analysing(world, target)
    client.force_login(world.owner)
    url = reverse("deployments:control", args=[deployment.pk, "abort"])
    response = client.post(url, {"confirmed": "yes"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == deployment.get_absolute_url()
    assert Deployment.objects.get(pk=deployment.pk).state == State.FAILED


def test_outsiders_get_no_confirmation_step(client, world, target) -> None:
    deployment = analysing(world, target)
    client.force_login(world.outsider)
    assert client.post(reverse("deployments:control", args=[deployment.pk, "promote"])).status_code == 403


def finished_deployments(service, environment, count: int, *, state: str = State.SUCCEEDED) -> list[Deployment]:  # type: ignore[no-untyped-def]
    from django.utils import timezone

    made = []
    for n in range(count):
        release = release_make(service, f"3.{n}.{state[:1]}")
        made.append(
            Deployment.objects.create(
                release=release, service=service, environment=environment, strategy="rolling", runtime="simulated",
                state=state, finished_at=timezone.now(), previous_release=made[-1].release if made else None,
            )
        )  # fmt: skip
    return made


def test_the_board_pages_what_finished_in_few_queries(client, world, target, django_assert_max_num_queries) -> None:
    """The board showed only the latest 25 finished deployments, with no way to the others."""
    made = finished_deployments(world.service, target.environment, 60)
    client.force_login(world.outsider)

    with django_assert_max_num_queries(10):
        first = client.get(reverse("deployments:board")).content.decode()
    with django_assert_max_num_queries(10):
        third = client.get(reverse("deployments:board"), {"page": 3}).content.decode()

    assert "Page 1 of 3" in first and 'href="?page=2"' in first
    assert f'href="{made[-1].get_absolute_url()}"' in first  # newest first
    assert f'href="{made[0].get_absolute_url()}"' in third and f'href="{made[-1].get_absolute_url()}"' not in third
    assert third.count("<tr>") == 1 + 10  # the header and the last ten


def test_the_board_filters_by_service_environment_state_and_team(client, world, target, staging) -> None:
    from deployments.models import Environment
    from tests.factories import service_make

    production = Environment.objects.create(name="Production", slug="production", order=2)
    search = service_make(owner=world.other_team, slug="search-api")
    ours = finished_deployments(world.service, staging, 2)
    theirs = finished_deployments(search, production, 2, state=State.ROLLED_BACK)
    client.force_login(world.outsider)

    def shown(**query: str) -> set[int]:
        html = client.get(reverse("deployments:board"), query).content.decode()
        return {d.pk for d in (*ours, *theirs) if f'href="{d.get_absolute_url()}"' in html}

    everything = {d.pk for d in (*ours, *theirs)}
    assert shown() == everything
    assert shown(service="search-api") == {d.pk for d in theirs}
    assert shown(environment="staging") == {d.pk for d in ours}
    assert shown(state="rolled_back") == {d.pk for d in theirs}
    assert shown(team="payments") == {d.pk for d in ours}
    assert shown(team="payments", environment="production") == set()

    page = client.get(reverse("deployments:board"), {"team": "search", "page": "1"}).content.decode()
    assert 'hx-get="/deployments/?team=search&amp;page=1"' in page  # the live part polls with its filters
    assert '<option value="search-api">' in page  # the service box suggests slugs


@pytest.mark.parametrize("query", [{"service": "a\x00b"}, {"environment": "\x00"}, {"state": "nope"}, {"team": "x"}])
def test_bad_board_filters_say_what_is_wrong(client, world, target, query) -> None:
    client.force_login(world.outsider)
    response = client.get(reverse("deployments:board"), query)
    assert response.status_code == 200
    assert 'class="form-errors" role="alert"' in response.content.decode()
