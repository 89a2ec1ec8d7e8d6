"""`make run` serves the demo as production would: the portal's own error pages, static files through WhiteNoise, and
an API root that lists the API's endpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]

# Run with the settings `make run` uses (manage.py's and portal.wsgi's default), as a fresh process would read them.
_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.test import Client
call_command("collectstatic", "--no-input", verbosity=0)  # as `make run` does before it starts the server
client = Client(HTTP_HOST="127.0.0.1")
missing = client.get("/no-such-page/")
css = client.get("/static/css/runway.css")
print(json.dumps({
    "debug": settings.DEBUG,
    "missing": [missing.status_code, missing.content.decode()],
    "css": [css.status_code, "".join(chunk.decode() for chunk in css.streaming_content)[:40]],
}))
"""


def _probe(tmp_path: Path, **environment: str) -> dict:  # type: ignore[type-arg]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DEBUG", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        PYTHONPATH=str(ROOT / "platform"),
        DJANGO_SETTINGS_MODULE="portal.settings.dev",
        RUNWAY_VAR_DIR=str(tmp_path / "var"),
        LOG_LEVEL="ERROR",
        **environment,
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_make_run_shows_the_portals_own_404_page_and_serves_static_files(tmp_path: Path) -> None:
    served = _probe(tmp_path)
    assert served["debug"] is False
    status, body = served["missing"]
    assert status == 404
    assert "Nothing here" in body  # templates/404.html
    assert "URLconf" not in body and "api/v1/" not in body  # not Django's debug page listing every route
    assert served["css"][0] == 200 and served["css"][1].strip()


def test_a_developer_can_still_ask_for_debug(tmp_path: Path) -> None:
    served = _probe(tmp_path, DEBUG="1")
    assert served["debug"] is True
    assert "URLconf" in served["missing"][1]


@pytest.mark.django_db
def test_the_api_root_lists_the_apis_endpoints(api_client, world) -> None:
    assert api_client.get("/api/v1/").status_code == 401
    api_client.force_authenticate(world.outsider)
    response = api_client.get("/api/v1/")
    assert response.status_code == 200
    links = response.json()
    assert links["services"] == "http://testserver/api/v1/services/"
    assert links["audit-events"] == "http://testserver/api/v1/audit-events/"
    assert links["catalog/imports"] == "http://testserver/api/v1/catalog/imports/"
    api_client.force_authenticate(world.staff)  # some collections (catalog imports) are for platform admins
    for url in links.values():
        assert api_client.get(url.removeprefix("http://testserver")).status_code == 200, url
    assert reverse("api:root") == "/api/v1/"


@pytest.mark.django_db
def test_the_api_root_is_in_the_schema(api_client, world) -> None:
    api_client.force_authenticate(world.outsider)
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "get" in schema["paths"]["/api/v1/"]
