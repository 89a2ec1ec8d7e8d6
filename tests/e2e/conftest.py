"""Chromium through Playwright against pytest-django's live server (which serves /static/ from the finders)."""

import contextlib
import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import call_command
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around it are still
# synchronous, so Django's async-safety guard must be told so.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "e2e"
TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Keep each phase's report on the item, so the page fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context per test; a screenshot lands in var/e2e/ when the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@contextlib.contextmanager
def worker_running() -> Iterator[None]:
    """A real Celery worker in a thread, on a queue of its own (other test runs may share the broker)."""
    from portal.celery import app

    queue = f"runway-e2e-{uuid.uuid4().hex[:12]}"
    saved = app.conf.task_default_queue

    def routes_forget() -> None:  # the queue declarations and router are cached from the first send
        for name in ("queues", "default_queue", "router"):
            app.amqp.__dict__.pop(name, None)

    app.conf.task_default_queue = queue
    routes_forget()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield
        app.control.purge()  # a countdown still held by the worker must not outlive the test in the broker
    finally:
        app.conf.task_default_queue = saved
        routes_forget()


@pytest.fixture
def demo(settings, tmp_path: Path) -> Iterator[None]:
    """The demo organisation `make run` shows: services, systems, teams, runbooks, ADRs, deployments with analysis
    charts; the local runtime's supervisord it may start is stopped afterwards."""
    from deployments.runtimes import local

    settings.GIT_ROOT = tmp_path / "git"
    settings.DEPLOY_ROOT = tmp_path / "deploy"
    settings.GOLDEN_PATH_STORE = tmp_path / "golden-paths"
    call_command("demo_load", stdout=io.StringIO(), stderr=io.StringIO())
    try:
        yield
    finally:
        local.supervisord_shutdown()
