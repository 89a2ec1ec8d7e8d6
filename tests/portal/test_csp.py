"""The Content-Security-Policy header, and the templates it lets through: no inline script or handler anywhere."""

import re
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

TEMPLATES = Path(settings.BASE_DIR) / "templates"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.I)
STYLE_ELEMENT = re.compile(r"<style(?![^>]*\bnonce=)[^>]*>", re.I)


def _directives(policy: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_every_page_carries_a_policy_without_inline_script(client, world) -> None:
    client.force_login(world.owner)
    for url in ("/catalog/", "/accounts/login/", "/no-such-page/", "/api/v1/"):
        policy = _directives(client.get(url)["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
        assert "'unsafe-inline'" not in policy["style-src"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_the_api_docs_page_loads_its_set_up_script_as_a_resource_and_nonces_its_style(client, world) -> None:
    client.force_login(world.owner)
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert not INLINE_SCRIPT.search(html)
    (nonce,) = re.findall(r'<style nonce="([^"]+)"', html)
    assert f"'nonce-{nonce}'" in _directives(page["Content-Security-Policy"])["style-src"]
    script = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', html)
    assert script is not None
    set_up = client.get(script.group(1).replace("&amp;", "&"))
    assert set_up.status_code == 200 and set_up["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in set_up.content.decode()


def test_no_template_has_an_inline_script_handler_or_style_element() -> None:
    found = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, HANDLER, STYLE_ELEMENT):
            found += [f"{path.relative_to(TEMPLATES)}: {match.group()}" for match in pattern.finditer(text)]
    assert found == []


def test_the_new_token_is_selected_by_the_sites_script_not_an_inline_handler(client, world) -> None:
    client.force_login(world.owner)
    html = client.post("/accounts/tokens/", {"name": "ci", "lifetime_days": 30}).content.decode()
    assert re.search(r'<input[^>]*value="rwy_[^"]+"[^>]*data-select-on-focus', html)
    assert "onclick" not in html
    assert "js/runway.js" in html


def test_a_kept_policy_is_the_policy_django_csp_builds_and_follows_changed_settings(client, world, settings) -> None:
    """The header text kept for responses without a nonce is django-csp's own, and changed settings are followed."""
    from csp.utils import build_policy

    client.force_login(world.owner)
    assert client.get("/api/v1/").headers["Content-Security-Policy"] == build_policy()
    assert client.get("/catalog/").headers["Content-Security-Policy"] == build_policy()  # kept: no nonce used
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"], "img-src": ["https://img.example"]}}
    changed = client.get("/api/v1/").headers["Content-Security-Policy"]
    assert changed == build_policy() and "https://img.example" in changed
    settings.CONTENT_SECURITY_POLICY = {**settings.CONTENT_SECURITY_POLICY, "EXCLUDE_URL_PREFIXES": ["/api/"]}
    assert "Content-Security-Policy" not in client.get("/api/v1/").headers
    assert "Content-Security-Policy" in client.get("/catalog/").headers
