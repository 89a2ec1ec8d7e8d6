"""Runbook and ADR pages: editing keeps versions, history and diffs, stale flags, reviews, permissions, preview."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from techdocs import services
from techdocs.models import ADR, Runbook, RunbookVersion
from tests.factories import service_make

pytestmark = [pytest.mark.django_db]

LOGIN = "/accounts/login/"
PREVIEW = reverse("techdocs:markdown-preview")
CATALOG = reverse("catalog:service-list")


def _runbook(world, **fields) -> Runbook:  # type: ignore[no-untyped-def]
    fields.setdefault("title", "On-call")
    fields.setdefault("body", "keep\nold line\n")
    return services.runbook_create(service=world.service, created_by=world.owner, **fields)


def _make_stale(runbook: Runbook) -> None:
    reviewed = timezone.now() - timedelta(days=runbook.review_interval_days + 10)
    Runbook.objects.filter(pk=runbook.pk).update(
        last_reviewed_at=reviewed, review_due_at=reviewed + timedelta(days=runbook.review_interval_days)
    )


def _url(name: str, runbook: Runbook) -> str:
    return reverse(f"techdocs:{name}", kwargs={"service": runbook.service.slug, "slug": runbook.slug})


def _login(client: Client, world, role: str) -> None:  # type: ignore[no-untyped-def]
    if role != "anonymous":
        client.force_login(getattr(world, role))


# --- creating and editing ---------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_owner_creates_a_runbook_through_the_page(client, world):
    client.force_login(world.owner)
    url = reverse("techdocs:runbook-create", kwargs={"service": "payments-api"})

    assert client.get(url).status_code == 200
    response = client.post(url, {"title": "Deploy guide", "review_interval_days": 30, "body": "# Deploy\nSteps."})

    runbook = Runbook.objects.get(service=world.service)
    assert response.status_code == 302
    assert response["Location"] == runbook.get_absolute_url() == "/docs/services/payments-api/runbooks/deploy-guide/"
    assert (runbook.title, runbook.version, runbook.review_interval_days) == ("Deploy guide", 1, 30)
    assert RunbookVersion.objects.get(runbook=runbook).author == world.owner
    assert AuditEvent.objects.filter(action="runbook.created", actor=world.owner).count() == 1


def test_invalid_runbook_form_shows_errors_and_writes_nothing(client, world):
    client.force_login(world.owner)
    url = reverse("techdocs:runbook-create", kwargs={"service": "payments-api"})

    response = client.post(url, {"title": "", "review_interval_days": 0, "body": "x"})

    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"title", "review_interval_days"}
    assert not Runbook.objects.exists()


def test_edit_saves_version_2_and_the_history_shows_both(client, world):
    runbook = _runbook(world)
    client.force_login(world.staff)

    response = client.post(
        _url("runbook-edit", runbook),
        {"title": "On-call", "review_interval_days": 90, "body": "keep\nnew line\n", "note": "fixed the steps"},
    )

    assert response.status_code == 302
    assert response["Location"] == runbook.get_absolute_url()
    runbook.refresh_from_db()
    assert runbook.version == 2
    v1, v2 = RunbookVersion.objects.filter(runbook=runbook).order_by("number")
    assert (v1.body, v1.author, v1.author_repr) == ("keep\nold line\n", world.owner, "olivia")
    assert (v2.body, v2.author, v2.note) == ("keep\nnew line", world.staff, "fixed the steps")

    history = client.get(_url("runbook-history", runbook))
    assert history.status_code == 200
    assert [v.number for v in history.context["versions"]] == [2, 1]
    html = history.content.decode()
    assert "<strong>v1</strong> · olivia" in html and "<strong>v2</strong> · stella" in html
    assert "fixed the steps" in html
    # By default the two latest versions are compared.
    assert (history.context["older"].number, history.context["newer"].number) == (1, 2)


def test_history_diff_between_two_versions_shows_added_and_removed_lines(client, world):
    runbook = _runbook(world, body="keep\nold line\n")
    services.runbook_update(runbook=runbook, updated_by=world.owner, title="On-call", body="keep\nnew line\n")
    services.runbook_update(runbook=runbook, updated_by=world.owner, title="On-call", body="keep\nthird\n")
    client.force_login(world.outsider)  # reading is open to every signed-in user

    response = client.get(_url("runbook-history", runbook), {"a": 1, "b": 2})

    assert response.status_code == 200
    assert (response.context["older"].number, response.context["newer"].number) == (1, 2)
    html = response.content.decode()
    assert '<span class="diff-del">-old line</span>' in html
    assert '<span class="diff-add">+new line</span>' in html
    assert "third" not in "".join(line for _, line in response.context["diff"])
    # The order of a and b does not matter: the older one is always the base.
    swapped = client.get(_url("runbook-history", runbook), {"a": 2, "b": 1})
    assert swapped.context["diff"] == response.context["diff"]
    assert client.get(_url("runbook-history", runbook), {"a": 1, "b": 3}).context["newer"].number == 3


@pytest.mark.parametrize("params", [{"a": 1, "b": 9}, {"a": 0, "b": 2}, {"a": "one", "b": 2}, {"a": -1, "b": 2}])
def test_history_with_bad_version_numbers_is_404(client, world, params):
    runbook = _runbook(world)
    services.runbook_update(runbook=runbook, updated_by=world.owner, title="On-call", body="changed")
    client.force_login(world.owner)
    assert client.get(_url("runbook-history", runbook), params).status_code == 404


def test_history_of_a_single_version_says_so(client, world):
    runbook = _runbook(world)
    client.force_login(world.owner)
    response = client.get(_url("runbook-history", runbook))
    assert response.status_code == 200
    assert response.context["diff"] is None
    assert b"Only one version so far." in response.content


def test_unknown_runbook_is_404(client, world):
    client.force_login(world.owner)
    assert client.get("/docs/services/payments-api/runbooks/nope/").status_code == 404
    assert client.get("/docs/services/payments-api/runbooks/nope/history/").status_code == 404
    assert client.get("/docs/services/nope/runbooks/new/").status_code == 404


# --- stale and reviews ------------------------------------------------------------------------------------------


def test_stale_runbook_is_flagged_on_service_page_runbook_page_and_catalog_filter(client, world):
    runbook = _runbook(world)
    _make_stale(runbook)
    service_make(owner=world.other_team, slug="search-api", name="Search API")
    client.force_login(world.outsider)

    service_page = client.get(world.service.get_absolute_url()).content.decode()
    assert '<span class="badge badge-stale"' in service_page
    runbook_page = client.get(runbook.get_absolute_url()).content.decode()
    assert "This runbook is past its review date." in runbook_page

    stale_yes = client.get(CATALOG, {"stale": "yes"})
    assert [s.slug for s in stale_yes.context["services"]] == ["payments-api"]
    assert "stale runbook</span>" in stale_yes.content.decode()
    stale_no = client.get(CATALOG, {"stale": "no"})
    assert [s.slug for s in stale_no.context["services"]] == ["search-api"]


def test_fresh_runbook_is_not_flagged(client, world):
    runbook = _runbook(world)
    client.force_login(world.owner)
    assert '<span class="badge badge-stale"' not in client.get(world.service.get_absolute_url()).content.decode()
    assert b"past its review date" not in client.get(runbook.get_absolute_url()).content
    assert [s.slug for s in client.get(CATALOG, {"stale": "yes"}).context["services"]] == []
    assert [s.slug for s in client.get(CATALOG, {"stale": "no"}).context["services"]] == ["payments-api"]


@pytest.mark.smoke
def test_mark_reviewed_records_the_review_and_unstales(client, world):
    runbook = _runbook(world)
    _make_stale(runbook)
    client.force_login(world.owner)

    response = client.post(_url("runbook-review", runbook))

    assert response.status_code == 302
    assert response["Location"] == runbook.get_absolute_url()
    runbook.refresh_from_db()
    assert not runbook.is_stale
    assert runbook.last_reviewed_by == "olivia"
    assert timezone.now() - runbook.last_reviewed_at < timedelta(minutes=1)
    assert runbook.version == 1
    assert AuditEvent.objects.filter(action="runbook.reviewed", actor=world.owner).count() == 1
    assert b"past its review date" not in client.get(runbook.get_absolute_url()).content
    assert [s.slug for s in client.get(CATALOG, {"stale": "yes"}).context["services"]] == []


def test_review_needs_post(client, world):
    runbook = _runbook(world)
    client.force_login(world.owner)
    assert client.get(_url("runbook-review", runbook)).status_code == 405


# --- permissions ------------------------------------------------------------------------------------------------

ALLOWED = {"owner", "staff"}


@pytest.mark.smoke
@pytest.mark.parametrize("role", ["owner", "staff", "outsider", "anonymous"])
def test_create_permissions(client, world, role):
    _login(client, world, role)
    url = reverse("techdocs:runbook-create", kwargs={"service": "payments-api"})

    page = client.get(url)
    response = client.post(url, {"title": "Deploy", "review_interval_days": 90, "body": "x"})

    if role in ALLOWED:
        assert (page.status_code, response.status_code) == (200, 302)
        assert Runbook.objects.filter(slug="deploy").exists()
    elif role == "outsider":
        assert (page.status_code, response.status_code) == (403, 403)
        assert not Runbook.objects.exists()
    else:
        assert page.status_code == response.status_code == 302
        assert page["Location"].startswith(LOGIN) and response["Location"].startswith(LOGIN)
        assert not Runbook.objects.exists()


@pytest.mark.smoke
@pytest.mark.parametrize("role", ["owner", "staff", "outsider", "anonymous"])
def test_edit_permissions(client, world, role):
    runbook = _runbook(world)
    _login(client, world, role)

    page = client.get(_url("runbook-edit", runbook))
    response = client.post(
        _url("runbook-edit", runbook), {"title": "On-call", "review_interval_days": 90, "body": "v2"}
    )

    runbook.refresh_from_db()
    if role in ALLOWED:
        assert (page.status_code, response.status_code) == (200, 302)
        assert runbook.version == 2
    elif role == "outsider":
        assert (page.status_code, response.status_code) == (403, 403)
        assert runbook.version == 1
    else:
        assert page.status_code == response.status_code == 302
        assert response["Location"].startswith(LOGIN)
        assert runbook.version == 1


@pytest.mark.smoke
@pytest.mark.parametrize("role", ["owner", "staff", "outsider", "anonymous"])
def test_review_permissions(client, world, role):
    runbook = _runbook(world)
    _make_stale(runbook)
    _login(client, world, role)

    response = client.post(_url("runbook-review", runbook))

    runbook.refresh_from_db()
    if role in ALLOWED:
        assert response.status_code == 302 and response["Location"] == runbook.get_absolute_url()
        assert not runbook.is_stale
    else:
        assert response.status_code == (403 if role == "outsider" else 302)
        if role == "anonymous":
            assert response["Location"].startswith(LOGIN)
        assert runbook.is_stale
        assert not AuditEvent.objects.filter(action="runbook.reviewed").exists()


def test_outsider_sees_no_edit_or_review_buttons(client, world):
    runbook = _runbook(world)
    client.force_login(world.outsider)
    html = client.get(runbook.get_absolute_url()).content.decode()
    assert _url("runbook-edit", runbook) not in html and _url("runbook-review", runbook) not in html
    client.force_login(world.owner)
    html = client.get(runbook.get_absolute_url()).content.decode()
    assert _url("runbook-edit", runbook) in html and _url("runbook-review", runbook) in html


# --- imported runbooks ------------------------------------------------------------------------------------------


def test_imported_runbook_cannot_be_edited_on_the_page(client, world):
    runbook = _runbook(world, source_path="payments-api/docs/runbook.md")
    client.force_login(world.owner)

    page = client.get(_url("runbook-edit", runbook))
    post = client.post(_url("runbook-edit", runbook), {"title": "Hijack", "review_interval_days": 90, "body": "x"})

    for response in (page, post):
        assert response.status_code == 302
        assert response["Location"] == world.service.get_absolute_url()
    messages = [str(m) for m in get_messages(post.wsgi_request)]
    assert any("comes from payments-api/docs/runbook.md" in m for m in messages)
    runbook.refresh_from_db()
    assert (runbook.title, runbook.version) == ("On-call", 1)
    # The page offers no Edit link, but reviewing is still possible.
    html = client.get(runbook.get_absolute_url()).content.decode()
    assert _url("runbook-edit", runbook) not in html and _url("runbook-review", runbook) in html


# --- live preview -----------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_preview_renders_and_sanitises(client, world):
    client.force_login(world.outsider)
    body = "# Title\n\nSome **bold** text.\n\n<script>alert('x')</script>\n\n<img src=x onerror=alert(1)>"

    response = client.post(PREVIEW, {"body": body})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<strong>bold</strong>" in html
    assert '<h2><a aria-hidden="true" class="anchor" id="h-title"' in html
    assert "<script" not in html and "alert('x')" not in html
    assert "onerror" not in html


def test_preview_drops_front_matter(client, world):
    client.force_login(world.owner)
    html = client.post(PREVIEW, {"body": "---\ntitle: Secret meta\n---\n# Body heading\n"}).content.decode()
    assert "Body heading" in html and "Secret meta" not in html


def test_preview_requires_login_and_post(client, world):
    response = client.post(PREVIEW, {"body": "# x"})
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    client.force_login(world.owner)
    assert client.get(PREVIEW).status_code == 405


@pytest.mark.smoke
def test_preview_requires_a_csrf_token(world):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(world.owner)

    assert browser.post(PREVIEW, {"body": "# x"}).status_code == 403

    browser.get(reverse("techdocs:runbook-create", kwargs={"service": "payments-api"}))  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    response = browser.post(PREVIEW, {"body": "# x"}, headers={"X-CSRFToken": token})
    assert response.status_code == 200 and b"<h2>" in response.content  # as on the page: below its title


# --- ADRs -------------------------------------------------------------------------------------------------------


def test_adr_pages_link_superseded_and_superseding(client, world):
    old = services.adr_create(created_by=world.owner, service=world.service, title="Use MySQL", status="accepted")
    new = services.adr_create(created_by=world.owner, service=world.service, title="Use PostgreSQL", supersedes=old)
    client.force_login(world.outsider)

    old_page = client.get(old.get_absolute_url())
    new_page = client.get(new.get_absolute_url())

    assert old_page.status_code == new_page.status_code == 200
    assert f'Superseded by <a href="{new.get_absolute_url()}">ADR-0002 Use PostgreSQL</a>' in old_page.content.decode()
    assert f'Supersedes <a href="{old.get_absolute_url()}">ADR-0001 Use MySQL</a>' in new_page.content.decode()
    assert b"Superseded by" not in new_page.content
    assert old.get_absolute_url() == "/docs/services/payments-api/adrs/1/"


def test_owner_records_an_adr_that_supersedes_one_through_the_page(client, world):
    old = services.adr_create(created_by=world.owner, service=world.service, title="Use MySQL", status="accepted")
    client.force_login(world.owner)
    url = reverse("techdocs:adr-create", kwargs={"service": "payments-api"})

    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "title": "Use PostgreSQL",
            "status": "accepted",
            "date": "2026-01-10",
            "decision": "We move.",
            "supersedes": old.pk,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/docs/services/payments-api/adrs/2/"
    new = ADR.objects.get(service=world.service, number=2)
    old.refresh_from_db()
    assert (old.status, old.superseded_by) == (ADR.Status.SUPERSEDED, new)


def test_adr_form_refuses_superseded_status_and_foreign_supersedes(client, world):
    other = service_make(owner=world.other_team, slug="search-api")
    foreign = services.adr_create(created_by=world.outsider, service=other, title="Elastic")
    client.force_login(world.staff)
    url = reverse("techdocs:adr-create", kwargs={"service": "payments-api"})

    response = client.post(url, {"title": "x", "status": "superseded", "date": "2026-01-10"})
    assert response.status_code == 200 and "status" in response.context["form"].errors
    response = client.post(url, {"title": "x", "status": "accepted", "date": "2026-01-10", "supersedes": foreign.pk})
    assert response.status_code == 200 and "supersedes" in response.context["form"].errors
    assert not ADR.objects.filter(service=world.service).exists()
    foreign.refresh_from_db()
    assert foreign.superseded_by is None


def test_adr_create_permissions(client, world):
    url = reverse("techdocs:adr-create", kwargs={"service": "payments-api"})
    data = {"title": "x", "status": "proposed", "date": "2026-01-10"}
    assert client.get(url)["Location"].startswith(LOGIN)
    client.force_login(world.outsider)
    assert client.get(url).status_code == 403
    assert client.post(url, data).status_code == 403
    assert not ADR.objects.exists()


def test_imported_adr_cannot_be_edited_on_the_page(client, world):
    adr = services.adr_create(
        created_by=None, service=world.service, title="Imported", source_path="payments-api/docs/adr/0001-imported.md"
    )
    client.force_login(world.owner)
    url = reverse("techdocs:adr-edit", kwargs={"service": "payments-api", "number": adr.number})

    response = client.post(url, {"title": "Changed", "status": "accepted", "date": "2026-01-10"})

    assert response.status_code == 302 and response["Location"] == world.service.get_absolute_url()
    adr.refresh_from_db()
    assert adr.title == "Imported"


def test_unknown_adr_is_404(client, world):
    client.force_login(world.owner)
    assert client.get("/docs/services/payments-api/adrs/7/").status_code == 404


def test_a_document_page_has_one_h1_and_the_documents_headings_sit_below_it(client, world):
    runbook = _runbook(world, body="# On-call\n\nFirst steps.\n\n## Paging\n\n###### Small print\n")
    client.force_login(world.outsider)
    page = client.get(runbook.get_absolute_url()).content.decode()
    assert page.count("<h1") == 1 and "<h1>On-call" in page  # the page's own title
    assert '<h2><a aria-hidden="true" class="anchor" id="h-on-call"' in page  # the document's h1, one level down
    assert '<h3><a aria-hidden="true" class="anchor" id="h-paging"' in page
    assert '<h6><a aria-hidden="true" class="anchor" id="h-small-print"' in page  # there is no h7
    assert 'href="#h-paging"' in page  # the table of contents still links to it
