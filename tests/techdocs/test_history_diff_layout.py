"""The runbook history's diff: one line per row, nothing between the rows."""

import re

import pytest
from django.urls import reverse

from techdocs import services

pytestmark = [pytest.mark.django_db]


def test_the_diff_has_no_blank_lines_between_its_rows(client, world) -> None:  # type: ignore[no-untyped-def]
    """Each row is a block span inside a <pre>: any text between two spans (a newline) renders as a blank line."""
    runbook = services.runbook_create(
        service=world.service, created_by=world.owner, title="On-call", body="keep\n\nold line\n"
    )
    services.runbook_update(runbook=runbook, updated_by=world.owner, title="On-call", body="keep\n\nnew line\n")
    client.force_login(world.outsider)

    url = reverse("techdocs:runbook-history", kwargs={"service": world.service.slug, "slug": runbook.slug})
    html = client.get(url, {"a": 1, "b": 2}).content.decode()

    pre = re.search(r'<pre class="diff"[^>]*>(.*?)</pre>', html, re.S)
    assert pre is not None
    rows = re.findall(r'<span class="diff-(\w+)">(.*?)</span>', pre.group(1), re.S)
    assert "".join(f'<span class="diff-{kind}">{line}</span>' for kind, line in rows) == pre.group(1)
    assert ("del", "-old line") in rows and ("add", "+new line") in rows
    assert ("same", " ") in rows  # the blank line of the runbook is a row of its own, one space high
