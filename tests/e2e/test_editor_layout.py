"""The runbook editor in Chromium: the text and its preview share the width whatever the preview holds.

Plain `1fr` grid columns grow to their content's widest unbreakable part: one long line in a code block, or a wide
table, squeezed the text area to ~200 px beside a preview thousands of pixels wide.
"""

import re

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from teams import services as team_services
from teams.models import Membership
from tests.factories import service_make

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "a long and unguessable passphrase"
LONG_LINE = (
    "curl -s 'http://payments.internal.example.com/v1/charges?" + "&".join(f"p{i}=v{i}" for i in range(80)) + "'"
)
COLUMNS = 40  # a table this wide cannot wrap below ~1,000 px, however its cells break
TABLE = "\n".join(
    "| " + " | ".join(cells) + " |"
    for cells in ([f"column {n}" for n in range(COLUMNS)], ["---"] * COLUMNS, [str(n) for n in range(COLUMNS)])
)
BODY = f"# Long lines\n\n```\n{LONG_LINE}\n```\n\n{TABLE}\n"


def test_a_long_line_in_the_preview_leaves_the_editor_its_half(page: Page, live_server) -> None:  # type: ignore[no-untyped-def]
    team = team_services.team_create(name="Payments", slug="payments", created_by=None)
    owner = User.objects.create_user(username="olivia", password=PASSWORD)
    team_services.membership_set(team=team, user=owner, role=Membership.Role.MEMBER, changed_by=None)
    service_make(owner=team, slug="payments-api", name="Payments API")

    page.goto(f"{live_server.url}/accounts/login/?next=/docs/services/payments-api/runbooks/new/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/runbooks/new/$"))

    page.get_by_label("Markdown").fill(BODY)
    preview = page.get_by_role("region", name="Preview")
    expect(preview.locator("pre")).to_contain_text("p79=v79")

    editor = page.get_by_label("Markdown").bounding_box()
    shown = preview.bounding_box()
    assert editor and shown
    assert 0.8 < editor["width"] / shown["width"] < 1.25, (editor, shown)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing widens the page either
