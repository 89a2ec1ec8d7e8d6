"""The wizard as a person uses it: steps in the session, inline checks, owner, dry-run preview, confirm, run page."""

import tempfile
import time
from pathlib import Path

import pytest
from django.urls import reverse

from catalog.models import Service, System
from scaffolder import leases, publishers, registry, services, tasks, views
from scaffolder.models import ScaffoldRun, display_name_default
from scaffolder.render import RenderError
from tests.factories import MembershipFactory, UserFactory
from tests.scaffolder.support import DESCRIPTION, SIZED, STDLIB, answers, git, paths_install, tree

pytestmark = pytest.mark.django_db

LIST = reverse("scaffolder:list")
STEP1 = reverse("scaffolder:step", args=[STDLIB, 1])
STEP2 = reverse("scaffolder:step", args=[STDLIB, 2])
OWNER = reverse("scaffolder:owner", args=[STDLIB])
PREVIEW = reverse("scaffolder:preview", args=[STDLIB])
CONFIRM = reverse("scaffolder:confirm", args=[STDLIB])
SESSION_KEY = f"wizard:{STDLIB}"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def git_root(settings, tmp_path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    settings.GIT_ROOT = tmp_path / "git"
    settings.GOLDEN_PATHS_DIR = paths_install(tmp_path)
    settings.VAR_DIR = tmp_path / "var"  # work and scratch folders (scaffolder.leases)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return settings.GIT_ROOT


def _walk_to_preview(client, **overrides) -> None:  # type: ignore[no-untyped-def]
    """Answer every step as a person would, ending on the preview."""
    values = answers(**overrides)
    response = client.post(STEP1, {"name": values["name"], "description": values["description"]})
    assert response.status_code == 302 and response["Location"] == STEP2, response.content[:2000]
    assert client.post(STEP2, {"greeting": values.get("greeting", "Hello")})["Location"] == OWNER
    assert client.post(OWNER, {"owner": "payments"})["Location"] == PREVIEW


def _confirmed_run(client) -> ScaffoldRun:  # type: ignore[no-untyped-def]
    _walk_to_preview(client)
    response = client.post(CONFIRM)
    run = ScaffoldRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    return run


# --- Choosing a path and answering the steps --------------------------------------------------------------------


@pytest.mark.smoke
def test_create_page_lists_the_golden_paths_as_cards(client, world, git_root):
    client.force_login(world.owner)
    response = client.get(LIST)
    assert response.status_code == 200
    assert [p.name for p in response.context["paths"]] == [SIZED, STDLIB]
    content = response.content.decode()
    assert content.count('class="card path-card"') == 2
    assert "Minimal HTTP service (Python standard library)" in content and "Sized service (test)" in content
    assert f'href="{STEP1}"' in content
    assert "Version 1.0.0 · maintained by platform" in content


@pytest.mark.smoke
def test_create_page_lists_only_my_recent_runs(client, world, git_root):
    path = registry.golden_path_get(STDLIB)
    mine = services.scaffold_request(
        path=path, answers=answers(), owner=world.owner_team, system=None, requested_by=world.owner
    )
    theirs = services.scaffold_request(
        path=path, answers=answers(name="search-api"), owner=world.other_team, system=None, requested_by=world.outsider
    )
    client.force_login(world.owner)
    content = client.get(LIST).content.decode()
    assert mine.get_absolute_url() in content and theirs.get_absolute_url() not in content


@pytest.mark.smoke
def test_unknown_path_and_step_are_404(client, world, git_root):
    client.force_login(world.owner)
    assert client.get(reverse("scaffolder:step", args=["no-such-path", 1])).status_code == 404
    assert client.get(reverse("scaffolder:step", args=[STDLIB, 3])).status_code == 404
    assert client.get(reverse("scaffolder:step", args=[STDLIB, 0])).status_code == 404


@pytest.mark.smoke
def test_step_one_shows_field_errors_and_keeps_nothing(client, world, git_root):
    client.force_login(world.owner)
    page = client.get(STEP1)
    assert page.status_code == 200 and 'name="name"' in page.content.decode()
    response = client.post(STEP1, {"name": "{{ 7*7 }}", "description": "short"})
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"name", "description"}
    assert form.errors["description"] == ["At least 10 characters."]
    content = response.content.decode()
    assert "At least 10 characters." in content
    assert "letters, digits and hyphens" in form.errors["name"][0] and form.errors["name"][0] in content
    assert 'value="{{ 7*7 }}"' in content  # echoed back as typed, never evaluated
    assert client.session[SESSION_KEY]["answers"] == {"greeting": "Hello", "with_feature_flags": False}  # defaults


@pytest.mark.smoke
def test_inline_validation_returns_only_that_fields_errors(client, world, git_root):
    client.force_login(world.owner)
    response = client.post(STEP1, {"name": "X", "description": "", "_validate": "name"}, headers=HTMX)
    assert response.status_code == 200
    content = response.content.decode().strip()
    assert content.startswith('<div class="field-errors" id="errors-name"')
    assert "<html" not in content and "errors-description" not in content and "This field is required" not in content
    assert "At least 4 characters." in content
    ok = client.post(STEP1, {"name": "ledger-api", "_validate": "name"}, headers=HTMX).content.decode().strip()
    assert ok.startswith('<div class="field-errors" id="errors-name" aria-live="polite"></div>')
    # ...and, out of band, the display name's placeholder made from the name being typed; what was typed there stays.
    both = {"name": "billing-gateway", "display_name": "Billing", "_validate": "name"}
    oob = client.post(STEP1, both, headers=HTMX).content.decode()
    assert oob.endswith('<strong hx-swap-oob="true" id="display-name-default">“Billing gateway”</strong>')
    assert "id_display_name" not in oob  # the inputs are never replaced under the person typing
    other = client.post(STEP1, {"description": "x", "_validate": "description"}, headers=HTMX).content.decode()
    assert "display-name-default" not in other  # only the name's check carries it
    # Without the htmx header the same post is a normal submit: the full page, with every field's errors.
    full = client.post(STEP1, {"name": "X", "description": "", "_validate": "name"})
    assert "<html" in full.content.decode() and set(full.context["form"].errors) == {"name", "description"}


@pytest.mark.smoke
def test_fields_carry_the_inline_validation_attributes(client, world, git_root):
    client.force_login(world.owner)
    content = client.get(STEP1).content.decode()
    assert f'hx-post="{STEP1}"' in content and 'hx-target="#errors-name"' in content
    assert "&quot;_validate&quot;: &quot;name&quot;" in content


@pytest.mark.smoke
def test_answers_are_kept_going_back_and_forward(client, world, git_root):
    client.force_login(world.owner)
    client.post(STEP1, {"name": "ledger-api", "description": DESCRIPTION})
    client.post(STEP2, {"greeting": "Bonjour"})
    assert client.session[SESSION_KEY]["answers"] == {**answers(), "greeting": "Bonjour", "with_feature_flags": False}

    back = client.get(STEP1)
    assert back.context["form"]["name"].value() == "ledger-api"
    assert back.context["form"]["description"].value() == DESCRIPTION
    assert 'value="ledger-api"' in back.content.decode()
    assert 'value="Bonjour"' in client.get(STEP2).content.decode()

    client.post(STEP1, {"name": "ledger-two", "description": DESCRIPTION})  # change an earlier answer
    assert client.session[SESSION_KEY]["answers"]["name"] == "ledger-two"
    assert client.session[SESSION_KEY]["answers"]["greeting"] == "Bonjour"  # later answers survive


def test_step_one_refuses_a_taken_name_as_you_type(client, world, git_root, tmp_path):
    """Taken in the catalog, by a run under way, or on the publisher: said at step 1, not at the last step."""
    client.force_login(world.owner)
    services.scaffold_request(  # under way: queued, its repository not made yet
        path=registry.golden_path_get(STDLIB), answers=answers(name="queued-api"), owner=world.owner_team,
        system=None, requested_by=world.owner,
    )  # fmt: skip
    worktree = tmp_path / "elsewhere"
    worktree.mkdir()
    (worktree / "README.md").write_text("# made by hand\n")
    publishers.local_publish(name="lonely-repo", worktree=worktree, author=("A", "a@example.com"), message="x")

    def inline(name: str) -> str:
        response = client.post(STEP1, {"name": name, "_validate": "name"}, headers=HTMX)
        return response.content.decode()

    assert "A service called payments-api already exists; choose another name." in inline("payments-api")
    assert "A service called queued-api is being created right now; choose another name." in inline("queued-api")
    assert "A repository called lonely-repo already exists; choose another name." in inline("lonely-repo")
    assert inline("ledger-api").startswith('<div class="field-errors" id="errors-name" aria-live="polite"></div>')

    response = client.post(STEP1, {"name": "payments-api", "description": DESCRIPTION})
    assert response.status_code == 200 and list(response.context["form"].errors) == ["name"]
    assert "name" not in client.session.get(SESSION_KEY, {}).get("answers", {})  # nothing kept


def test_the_display_name_defaults_from_the_slug_and_names_the_service(client, world, git_root):
    client.force_login(world.owner)
    page = client.get(STEP1).content.decode()
    assert 'name="display_name"' in page
    assert '<strong id="display-name-default">made from the service name</strong>' in page
    assert page.index('name="name"') < page.index('name="display_name"') < page.index('name="description"')
    bad = client.post(STEP1, {"name": "ledger-api", "display_name": "Ledger\x07", "description": DESCRIPTION})
    assert bad.context["form"].errors == {"display_name": ["Control characters and line breaks are not allowed here."]}

    _walk_to_preview(client)  # no display name given
    preview = client.get(PREVIEW)
    assert {"label": "Display name", "value": "Ledger API", "url": STEP1} in preview.context["summary"]
    assert "Create Ledger API" in preview.content.decode()

    client.post(STEP1, {"name": "ledger-api", "display_name": " Ledger of payments ", "description": DESCRIPTION})
    assert client.session[SESSION_KEY]["display_name"] == "Ledger of payments"
    back = client.get(STEP1).content.decode()
    assert 'value="Ledger of payments"' in back  # kept going back
    assert '<strong id="display-name-default">“Ledger API”</strong>' in back
    assert "Create Ledger of payments" in client.get(PREVIEW).content.decode()
    client.post(CONFIRM)
    run = ScaffoldRun.objects.get()
    assert run.display_name == "Ledger of payments"
    tasks.run_scaffold(run.pk)
    service = Service.objects.get(slug="ledger-api")
    assert service.name == "Ledger of payments"


@pytest.mark.parametrize(
    ("slug", "expected"),
    [("ledger-api", "Ledger API"), ("payments-ui", "Payments UI"), ("grpc-gateway", "GRPC gateway"), ("abcd", "Abcd")],
)
def test_display_names_made_from_slugs(slug, expected):
    assert display_name_default(slug) == expected


def test_the_preview_reads_as_a_person_would_write_it(client, world, git_root, mocker):
    """Titles from template.yaml, Yes/No, the team's and system's names; no parameter keys, slugs or Python values."""
    mocker.patch("scaffolder.views.render_in_child", side_effect=RenderError("sized-service has no template"))
    system = System.objects.create(slug="money-movement", name="Money movement", owner=world.owner_team)
    client.force_login(world.owner)
    session = client.session
    session[f"wizard:{SIZED}"] = {
        "answers": {**answers(), "replicas": 3, "public": False},
        "owner": "payments",
        "system": system.slug,
    }
    session.save()
    response = client.get(reverse("scaffolder:preview", args=[SIZED]))
    rows = {row["label"]: row["value"] for row in response.context["summary"]}
    assert rows == {
        "Name": "ledger-api",  # sized-service's parameters have no title here: their keys, made readable
        "Display name": "Ledger API",
        "Description": DESCRIPTION,
        "Replicas": "3",
        "Public": "No",
        "Owner team": "Payments",
        "System": "Money movement",
        "Golden path": "Sized service (test) 2.1.0",
    }
    content = response.content.decode()
    assert "<dt>Public</dt><dd>No" in content and "<dt>System</dt><dd>Money movement" in content
    assert "False" not in content and "money-movement" not in content and "<dt>public</dt>" not in content


@pytest.mark.smoke
def test_each_path_keeps_its_own_answers(client, world, git_root):
    client.force_login(world.owner)
    client.post(STEP1, {"name": "ledger-api", "description": DESCRIPTION})
    sized_step1 = reverse("scaffolder:step", args=[SIZED, 1])
    assert client.get(sized_step1).context["form"]["name"].value() is None
    sized_step2 = reverse("scaffolder:step", args=[SIZED, 2])
    response = client.post(sized_step2, {"replicas": "99"})
    assert response.status_code == 200 and response.context["form"].errors == {"replicas": ["At most 10."]}
    assert client.post(sized_step2, {"replicas": "many"}).context["form"].errors == {
        "replicas": ["Enter a whole number."]
    }
    assert client.post(sized_step2, {"replicas": "3"})["Location"] == reverse("scaffolder:owner", args=[SIZED])
    assert client.session[f"wizard:{SIZED}"]["answers"] == {"replicas": 3, "public": False}
    assert client.session[SESSION_KEY]["answers"]["name"] == "ledger-api"


# --- Owner ------------------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_owner_step_offers_only_my_teams(client, world, git_root):
    client.force_login(world.owner)
    response = client.get(OWNER)
    assert [t.slug for t in response.context["form"].fields["owner"].queryset] == ["payments"]
    content = response.content.decode()
    assert 'value="payments"' in content and 'value="search"' not in content
    refused = client.post(OWNER, {"owner": "search"})
    assert refused.status_code == 200 and "owner" in refused.context["form"].errors
    assert client.session[SESSION_KEY]["owner"] == ""


@pytest.mark.smoke
def test_owner_step_offers_staff_every_team(client, world, git_root):
    client.force_login(world.staff)
    response = client.get(OWNER)
    assert [t.slug for t in response.context["form"].fields["owner"].queryset] == ["payments", "search"]
    assert client.post(OWNER, {"owner": "search"})["Location"] == PREVIEW
    assert client.session[SESSION_KEY]["owner"] == "search"


@pytest.mark.smoke
def test_owner_step_tells_someone_without_a_team(client, world, git_root):
    client.force_login(UserFactory(username="loner"))
    response = client.get(OWNER)
    assert response.context["no_team"] is True and "You are not in any team" in response.content.decode()


# --- Preview ----------------------------------------------------------------------------------------------------


def test_preview_lists_the_rendered_files_and_shows_one(client, world, git_root, tmp_path):
    client.force_login(world.owner)
    _walk_to_preview(client)
    response = client.get(PREVIEW)
    assert response.status_code == 200
    files = response.context["files"]
    assert {"README.md", "catalog-info.yaml", "runway.yaml", "docs/runbook.md", "app/server.py"} <= set(files)
    assert files == sorted(files)
    assert response.context["selected"] == "README.md"
    content = response.content.decode()
    assert f"{len(files)} files" in content and 'hx-get="?file=catalog-info.yaml"' in content
    assert f'action="{CONFIRM}"' in content and "Create Ledger API" in content
    assert "# ledger-api" in content and DESCRIPTION in content
    # A dry run: nothing published, no run, no service, and the render folder is gone.
    assert tree(git_root) == [] and tree(tmp_path / "scratch") == [] and tree(leases.work_root()) == []
    assert not ScaffoldRun.objects.exists() and not Service.objects.filter(slug="ledger-api").exists()

    fragment = client.get(PREVIEW, {"file": "catalog-info.yaml"}, headers=HTMX)
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert "<html" not in text and text.startswith('<h2 class="mono">catalog-info.yaml</h2>')
    assert "name: &quot;ledger-api&quot;" in text and "lifecycle: experimental" in text
    assert "owner: &quot;group:payments&quot;" in text
    assert client.get(PREVIEW, {"file": "../../etc/passwd"}, headers=HTMX).status_code == 404


def test_preview_is_rendered_once_then_cached(client, world, git_root, mocker):
    client.force_login(world.owner)
    _walk_to_preview(client)
    render = mocker.spy(views, "render_in_child")
    client.get(PREVIEW)
    client.get(PREVIEW, {"file": "runway.yaml"}, headers=HTMX)
    assert render.call_count == 1
    client.post(STEP2, {"greeting": "Salut"})  # a changed answer is rendered again
    fragment = client.get(PREVIEW, {"file": "app/service.json"}, headers=HTMX).content.decode()
    assert render.call_count == 2 and "&quot;greeting&quot;: &quot;Salut&quot;" in fragment


@pytest.mark.smoke
def test_preview_of_invalid_answers_lists_the_problems_and_offers_no_confirm(client, world, git_root, mocker):
    render = mocker.patch("scaffolder.views.render_in_child")
    client.force_login(world.owner)
    session = client.session
    session[SESSION_KEY] = {"answers": {"name": "payments-api", "greeting": "Hi"}, "owner": "", "system": ""}
    session.save()
    response = client.get(PREVIEW)
    assert response.status_code == 200
    assert response.context["errors"] == [
        {
            "label": "Service name",
            "messages": ["A service called payments-api already exists; choose another name."],
            "url": STEP1,
        },
        {"label": "Description", "messages": ["This field is required."], "url": STEP1},
        {"label": "Owner team", "messages": ["Choose the team that will own the service."], "url": OWNER},
    ]
    content = response.content.decode()
    assert "Fix these first" in content and "A service called payments-api already exists" in content
    assert f'<a href="{STEP1}">Change service name</a>' in content
    assert f'<a class="button" href="{OWNER}">Back</a>' in content  # a way back from a preview that cannot go on
    assert CONFIRM not in content and "Create Payments API" not in content
    assert render.call_count == 0  # nothing is rendered for answers that cannot be used


@pytest.mark.smoke
def test_preview_for_a_team_i_am_not_in_is_refused(client, world, git_root):
    client.force_login(world.owner)
    session = client.session
    session[SESSION_KEY] = {"answers": answers(), "owner": "search", "system": ""}
    session.save()
    response = client.get(PREVIEW)
    assert "you are not in Search" in response.context["errors"][0]["messages"][0]
    assert CONFIRM not in response.content.decode()


@pytest.mark.smoke
def test_preview_shows_a_render_failure(client, world, git_root, mocker):
    mocker.patch("scaffolder.views.render_in_child", side_effect=RenderError("The template could not be rendered: x"))
    client.force_login(world.owner)
    _walk_to_preview(client)
    content = client.get(PREVIEW).content.decode()
    assert "The template could not be rendered: x" in content and CONFIRM not in content
    assert f'<a class="button" href="{OWNER}">Back</a>' in content


# --- Confirm and the run page -----------------------------------------------------------------------------------


def test_confirm_creates_a_run_and_redirects_to_its_page(client, world, git_root, mocker):
    client.force_login(world.owner)
    run = _confirmed_run(client)
    assert run.status == ScaffoldRun.Status.QUEUED and run.requested_by == world.owner
    assert (
        run.answers == {**answers(), "greeting": "Hello", "with_feature_flags": False} and run.owner == world.owner_team
    )
    assert SESSION_KEY not in client.session  # the wizard starts afresh next time

    page = client.get(run.get_absolute_url())
    content = page.content.decode()
    assert page.status_code == 200 and "Creating Ledger API" in content
    assert 'hx-trigger="every 700ms"' in content and "Waiting for a worker" in content
    fragment = client.get(run.get_absolute_url(), headers=HTMX).content.decode().strip()
    assert fragment.startswith('<div id="timeline"') and "<html" not in fragment and "every 700ms" in fragment

    tasks.run_scaffold(run.pk)
    # The page's poll that sees the run succeed takes the browser to the new service, which says what was made.
    poll = client.get(run.get_absolute_url(), headers=HTMX)
    assert poll["HX-Redirect"] == "/catalog/services/ledger-api/"
    landed = client.get(poll["HX-Redirect"]).content.decode()
    assert "Ledger API is in the catalog, owned by Payments, with its repository, runbook and decision" in landed
    # Visited later (no htmx), the run's page still shows its timeline, with a link to the service.
    done = client.get(run.get_absolute_url()).content.decode()
    assert "hx-trigger" not in done.split('id="timeline"', 1)[1].split(">", 1)[0]
    assert 'hx-trigger="every' not in done
    assert "Succeeded" in done and 'href="/catalog/' in done and "is in the catalog, owned by Payments" in done
    for step in ("validate", "render", "publish", "register", "audit"):
        assert f"<strong>{step}</strong>" in done
    assert done.count("badge-step-done") == 5 and 'aria-valuenow="100"' in done


@pytest.mark.smoke
def test_confirm_with_a_taken_name_goes_back_to_the_preview_with_the_reason(client, world, git_root):
    client.force_login(world.owner)
    session = client.session
    session[SESSION_KEY] = {"answers": answers(name="payments-api"), "owner": "payments", "system": ""}
    session.save()
    response = client.post(CONFIRM, follow=True)
    assert response.redirect_chain == [(PREVIEW, 302)]
    assert "A service called payments-api already exists" in response.content.decode()
    assert not ScaffoldRun.objects.exists()


@pytest.mark.smoke
def test_confirm_for_a_team_i_am_not_in_makes_nothing(client, world, git_root):
    client.force_login(world.owner)
    session = client.session
    session[SESSION_KEY] = {"answers": answers(), "owner": "search", "system": ""}
    session.save()
    response = client.post(CONFIRM)
    assert response.status_code == 302 and response["Location"] == PREVIEW
    assert not ScaffoldRun.objects.exists()


@pytest.mark.smoke
def test_confirm_needs_post(client, world, git_root):
    client.force_login(world.owner)
    assert client.get(CONFIRM).status_code == 405


def test_failed_run_page_shows_the_reason_and_retry_makes_a_new_run(client, world, git_root, mocker):
    mocker.patch("scaffolder.services.render_in_child", side_effect=RenderError("boom: the template broke"))
    client.force_login(world.owner)
    run = _confirmed_run(client)
    tasks.run_scaffold(run.pk)
    content = client.get(run.get_absolute_url()).content.decode()
    assert "boom: the template broke" in content and "Nothing was kept" in content
    assert 'hx-trigger="every' not in content
    retry_url = reverse("scaffolder:run-retry", args=[run.uuid])
    assert f'action="{retry_url}"' in content

    teammate = MembershipFactory(team=world.owner_team, user=UserFactory(username="tina")).user
    client.force_login(teammate)
    response = client.post(retry_url)
    retry = ScaffoldRun.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == retry.get_absolute_url()
    assert retry.status == ScaffoldRun.Status.QUEUED and retry.answers == run.answers
    assert retry.requested_by == teammate and retry.owner == world.owner_team


@pytest.mark.smoke
def test_retrying_a_run_that_did_not_fail_explains_why(client, world, git_root):
    client.force_login(world.owner)
    run = _confirmed_run(client)
    response = client.post(reverse("scaffolder:run-retry", args=[run.uuid]), follow=True)
    assert response.redirect_chain == [(run.get_absolute_url(), 302)]
    assert "Only a failed run can be retried." in response.content.decode()
    assert ScaffoldRun.objects.count() == 1


@pytest.mark.smoke
def test_someone_unrelated_gets_404_on_anothers_run(client, world, git_root):
    client.force_login(world.owner)
    run = _confirmed_run(client)
    client.force_login(world.outsider)
    assert client.get(run.get_absolute_url()).status_code == 404
    assert client.get(run.get_absolute_url(), headers=HTMX).status_code == 404
    assert client.post(reverse("scaffolder:run-retry", args=[run.uuid])).status_code == 404
    client.force_login(world.staff)
    assert client.get(run.get_absolute_url()).status_code == 200
    client.force_login(MembershipFactory(team=world.owner_team, user=UserFactory(username="tina")).user)
    assert client.get(run.get_absolute_url()).status_code == 200  # the owning team may follow it


@pytest.mark.smoke
def test_anonymous_is_sent_to_sign_in_everywhere(client, world, git_root):
    login = reverse("accounts:login")
    run_url = f"/create/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}/"
    urls = [
        ("get", LIST),
        ("get", STEP1),
        ("post", STEP1),
        ("get", OWNER),
        ("get", PREVIEW),
        ("post", CONFIRM),
        ("get", run_url),
        ("post", f"{run_url}retry/"),
        ("get", reverse("scaffolder:repository", args=["payments-api"])),
    ]
    for method, url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(f"{login}?next="), url
    assert not ScaffoldRun.objects.exists()


# --- The repository page ----------------------------------------------------------------------------------------


def test_repository_page_lists_files_and_commits_of_a_scaffolded_service(client, world, git_root):
    client.force_login(world.owner)
    run = _confirmed_run(client)
    tasks.run_scaffold(run.pk)
    run.refresh_from_db()
    assert run.status == ScaffoldRun.Status.SUCCEEDED, run.error

    client.force_login(world.outsider)  # the catalog, repositories included, is readable by everyone signed in
    response = client.get(reverse("scaffolder:repository", args=["ledger-api"]))
    assert response.status_code == 200
    files = git(git_root / "ledger-api.git", "ls-tree", "-r", "--name-only", "main").splitlines()
    assert response.context["files"] == files
    assert [c["subject"] for c in response.context["commits"]] == [f"Create ledger-api from {STDLIB} 1.0.0"]
    assert response.context["commits"][0]["author"] == "olivia"
    content = response.content.decode()
    assert "catalog-info.yaml" in content and "docs/runbook.md" in content
    assert f"git clone {git_root / 'ledger-api.git'}" in content
    fragment = client.get(reverse("scaffolder:repository", args=["ledger-api"]), headers=HTMX).content.decode()
    assert "<html" not in fragment and "Files on main" in fragment


@pytest.mark.smoke
def test_repository_page_of_a_service_without_one(client, world, git_root):
    client.force_login(world.owner)
    response = client.get(reverse("scaffolder:repository", args=["payments-api"]))
    assert response.status_code == 200 and "No repository on the local publisher." in response.content.decode()
    assert client.get(reverse("scaffolder:repository", args=["no-such-service"])).status_code == 404


# --- A real worker ----------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_confirmed_scaffold(client, world, git_root):
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.control.purge()  # leftovers from earlier runs on this broker would only be noise
    client.force_login(world.owner)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        run = _confirmed_run(client)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_done:
                break
            time.sleep(0.1)
    assert run.status == ScaffoldRun.Status.SUCCEEDED, (run.status, run.error, run.steps)
    assert [s["status"] for s in run.steps] == ["done"] * 5 and run.attempts == 1
    service = Service.objects.get(slug="ledger-api")
    assert run.service == service and service.owner == world.owner_team
    assert git(git_root / "ledger-api.git", "rev-list", "--count", "main").strip() == "1"


def test_a_run_whose_worker_died_shows_the_interrupted_step_and_is_listed_by_its_name(client, world, git_root):
    client.force_login(world.owner)
    run = services.scaffold_request(
        path=registry.golden_path_get(STDLIB), answers=answers(), owner=world.owner_team, system=None,
        requested_by=world.owner, display_name="Ledger of payments",
    )  # fmt: skip
    ScaffoldRun.objects.filter(pk=run.pk).update(
        status=ScaffoldRun.Status.QUEUED,
        steps=[{"name": "render", "status": "interrupted", "message": services.INTERRUPTED}],
    )
    content = client.get(run.get_absolute_url()).content.decode()
    assert "<h1>Creating Ledger of payments</h1>" in content
    assert '<strong>render</strong> <span class="badge badge-step-failed">interrupted</span>' in content
    assert f'<div class="small danger">{services.INTERRUPTED}</div>' in content
    assert f'<a href="{run.get_absolute_url()}">Ledger of payments</a>' in client.get(LIST).content.decode()
