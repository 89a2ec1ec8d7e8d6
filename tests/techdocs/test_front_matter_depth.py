"""Deeply nested YAML front matter is a clear error, never a RecursionError (a 500 on the live preview)."""

import pytest
from django.urls import reverse

from techdocs.markdown import split_front_matter

pytestmark = [pytest.mark.django_db]

DEEP = "---\ntitle: x\ntags: " + "[" * 600 + "]" * 600 + "\n---\n# Deep heading\n"


def test_split_front_matter_names_the_line_of_the_nesting():
    with pytest.raises(ValueError, match=r"^Front matter is not valid YAML at line 3: lists and mappings are nested"):
        split_front_matter(text=DEEP)


def test_the_preview_of_a_runbook_with_deeply_nested_front_matter_is_not_a_500(client, world):
    client.force_login(world.owner)

    response = client.post(reverse("techdocs:markdown-preview"), {"body": DEEP})

    assert response.status_code == 200
    assert "Deep heading" in response.content.decode()
    assert "Front matter is not valid YAML at line 3: lists and mappings are nested" in response.content.decode()
