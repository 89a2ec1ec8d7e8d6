"""Markdown limits: input that crashed or hung the renderer is refused before rendering and sanitising, on save, in
the preview and on import, with a message naming the limit; accepted documents render as before."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from techdocs import markdown, selectors, services
from techdocs.markdown import LimitError, Limits, limits_check, render
from techdocs.models import ADR, Runbook
from tests.catalog.test_sync import assert_base_imported, base_tree, import_tree, write

ROOT = Path(__file__).resolve().parents[2]
PREVIEW = reverse("techdocs:markdown-preview")
RUNBOOKS = "/api/v1/runbooks/"
ADRS = "/api/v1/adrs/"
NESTING = markdown.DEFAULT_MAX_NESTING

# --- the inputs that killed or hung a worker, each rendered in a child process -----------------------------------

# The inputs: markdown-it-pyrs overflowed its stack on the first three (SIGSEGV), nh3 spent ~20 s on the last.
# `<div>` × 100,000 is 500 KB, over the size limit; × 50,000 is under it, so the nesting check is what stops it.
CRASH_INPUTS = {
    "nested block quotes": ('">" * 100_000', "MARKDOWN_MAX_NESTING"),
    "repeated bullets": ('"- " * 50_000 + "item"', "MARKDOWN_MAX_NESTING"),
    "repeated numbers": ('"1. " * 30_000', "MARKDOWN_MAX_NESTING"),
    "nested div": ('"<div>" * 100_000', "MARKDOWN_MAX_BYTES"),
    "nested div under the size limit": ('"<div>" * 50_000', "MARKDOWN_MAX_NESTING"),
    "a long run of stars": ('"*" * 100_000 + "a" + "*" * 100_000', "at most 64 are rendered"),
}

# Rendered on a thread with a 512 KB stack, as a threaded worker might have (musl's default is 128 KB): the renderer
# recursed once per level, so depth that a main thread survived still killed such a worker.
_CHILD = """
import json, threading, django
django.setup()
from techdocs.markdown import render
out = {{}}
def run():
    rendered = render(text={expression})
    out.update(problem=rendered.problem, html=rendered.html, toc=len(rendered.toc))
threading.stack_size(512 * 1024)
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(json.dumps(out))
"""


@pytest.mark.parametrize(("expression", "limit"), CRASH_INPUTS.values(), ids=CRASH_INPUTS.keys())
def test_a_crash_input_renders_as_plain_text_in_a_child_process_that_exits_cleanly(expression, limit):
    # A child process, so a segfault fails this test instead of killing the test run; the timeout stops a hang.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform"), "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD.format(expression=expression)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert child.returncode == 0, child.stderr[-2000:]
    outcome = json.loads(child.stdout)
    assert limit in outcome["problem"]
    assert outcome["html"].startswith('<p class="notice" role="note">This document is shown as plain text')
    assert '<pre class="markdown-source">' in outcome["html"] and outcome["toc"] == 0


# --- the limits themselves ---------------------------------------------------------------------------------------


def _refusal(text: str, **limits: int) -> str:
    with pytest.raises(LimitError) as caught:
        limits_check(text=text, limits_=Limits(**{"max_bytes": 256 * 1024, "max_nesting": NESTING, **limits}))
    return str(caught.value)


def test_nesting_up_to_the_limit_renders_and_one_more_level_is_refused():
    deepest = "> " * NESTING + "deep"
    assert render(text=deepest).html.count("<blockquote>") == NESTING
    assert render(text="- " * NESTING + "x").html.count("<ul>") == NESTING
    assert f"Line 3 nests block quotes and list items {NESTING + 1} deep" in _refusal("a\n\n" + "> " * (NESTING + 1))
    # Indentation after a `>` can continue list items of earlier lines, so it counts.
    assert "MARKDOWN_MAX_NESTING" in _refusal(">" + " " * 2 * NESTING + "- x")
    assert "the limit is 32 (MARKDOWN_MAX_NESTING)" in _refusal("- " * 40 + "x")
    assert "MARKDOWN_MAX_NESTING" in _refusal("1) " * 40 + "x")


def test_indentation_counts_towards_list_nesting():
    nested = "".join(" " * 2 * level + "- item\n" for level in range(NESTING))
    assert render(text=nested).problem == ""
    assert "MARKDOWN_MAX_NESTING" in _refusal(nested + " " * 2 * NESTING + "- one too deep\n")


def test_raw_html_nesting_is_refused_but_balanced_tags_code_and_autolinks_are_not():
    assert "Line 2 nests HTML tags more than 32 deep" in _refusal("`<p>`\n" + "<div>" * 33)
    # A stray end tag closes nothing, as in the sanitiser's parser: it cannot hide depth.
    assert "nests HTML tags" in _refusal("<div>" * 20 + "</b>" * 20 + "<div>" * 20)
    fine = "<details><summary>s</summary>x</details>\n" * 100 + "<br>" * 100 + "<https://example.com/a>\n" * 100
    code = "```java\n" + "List<String> names;\n" * 100 + "```\n" + "`Map<String>` " * 100
    limits_check(text=fine + code)


def test_size_is_refused_over_the_byte_limit():
    assert "The document is 2.0 KB; the limit is 1.0 KB (MARKDOWN_MAX_BYTES)" in _refusal("é" * 1024, max_bytes=1024)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|a" * 2000 + "|\n" + "|-" * 2000 + "|\n" + "|\n" * 100, "more than 65,536 cells"),
        ("# h\n" * 201, "201 headings with the same text"),
        ("- # h\n" * 201, "201 headings with the same text"),
        ("h\n=\n\n" * 201, "201 headings with the same text"),
        ("".join(f"# h{i}\n" for i in range(2001)), "2,001 headings"),
        ("".join(f"[l{i}]: /u{i}\n" for i in range(501)), "501 link reference definitions"),
        ("*a* **b**\n" * 600, "more than 2,000 runs of *, _ or ~"),
        ("a <?" * 21, "21 '<?' or '<![CDATA['"),
    ],
    ids=[
        "table cells",
        "same heading",
        "same heading in list items",
        "same setext heading",
        "headings",
        "link definitions",
        "emphasis runs",
        "unclosed <?",
    ],
)
def test_the_renderers_superlinear_paths_are_bounded(text, message):
    assert message in _refusal(text)


def test_long_runs_of_stars_are_refused_outside_thematic_breaks_and_code():
    assert "Line 3 has a run of 65 *, _ or ~; at most 64" in _refusal("a\n\n" + "*" * 65 + "a" + "*" * 65)
    assert "run of 70" in _refusal("> ```\n" + "_" * 70 + "a")  # a fence in a block quote ends with it
    limits_check(text="x\n\n" + "*" * 80 + "\n\n" + "_ " * 80 + "\n```c\n/" + "*" * 80 + "/\n```\n")


def test_emphasis_that_nests_too_deep_is_not_given_to_the_sanitiser():
    rendered = render(text="*a " * 40 + "b" + " a*" * 40)  # short runs, each opening one more level
    assert "emphasis nests more than 32 deep" in rendered.problem and "<em>" not in rendered.html


def test_the_bench_runbook_renders_within_the_limits():
    from tests.bench.bench_catalog_as_code import runbook_200kb

    rendered = render(text=runbook_200kb())
    assert rendered.problem == "" and len(rendered.toc) > 500


def test_plain_text_stand_in_escapes_the_source():
    rendered = render(text="<script>alert(1)</script>\n" + "> " * 40)
    assert "&lt;script&gt;" in rendered.html and "<script" not in rendered.html


# --- save, preview, pages, import --------------------------------------------------------------------------------

DEEP = "> " * 40 + "deep"


@pytest.mark.django_db
def test_the_runbook_form_names_the_limit_and_saves_nothing(client, world):
    client.force_login(world.owner)
    url = reverse("techdocs:runbook-create", kwargs={"service": "payments-api"})

    response = client.post(url, {"title": "Deep", "review_interval_days": 30, "body": DEEP})

    assert response.status_code == 200
    assert "MARKDOWN_MAX_NESTING" in response.context["form"].errors["body"][0]
    assert not Runbook.objects.exists()


@pytest.mark.django_db
def test_the_adr_form_names_the_limit_on_its_field(client, world):
    client.force_login(world.owner)
    url = reverse("techdocs:adr-create", kwargs={"service": "payments-api"})

    response = client.post(url, {"title": "Deep", "status": "proposed", "date": "2026-01-02", "decision": DEEP})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"decision"}
    assert not ADR.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "patch"])
def test_the_api_answers_400_naming_the_field_and_the_limit(api_client, world, method):
    api_client.force_authenticate(world.owner)
    if method == "post":
        response = api_client.post(RUNBOOKS, {"service": "payments-api", "title": "Deep", "body": DEEP})
    else:
        runbook = services.runbook_create(service=world.service, title="Fine", body="fine", created_by=world.owner)
        response = api_client.patch(f"{RUNBOOKS}{runbook.pk}/", {"body": DEEP})

    assert response.status_code == 400, response.content
    assert "MARKDOWN_MAX_NESTING" in response.json()["body"][0]
    assert Runbook.objects.filter(body=DEEP).count() == 0


@pytest.mark.django_db
def test_adr_sections_are_checked_apart_and_together(api_client, world, settings):
    settings.MARKDOWN_MAX_BYTES = 1000
    api_client.force_authenticate(world.owner)

    alone = api_client.post(ADRS, {"service": "payments-api", "title": "Big", "context": "x" * 1001})
    together = api_client.post(
        ADRS,
        {
            "service": "payments-api",
            "title": "Big",
            **dict.fromkeys(("context", "decision", "consequences"), "y" * 400),
        },
    )

    assert alone.status_code == together.status_code == 400
    assert "MARKDOWN_MAX_BYTES" in alone.json()["context"][0]
    assert "MARKDOWN_MAX_BYTES" in together.json()["non_field_errors"][0]
    assert not ADR.objects.exists()


@pytest.mark.django_db
def test_the_preview_shows_the_error_instead_of_rendering(client, world):
    client.force_login(world.owner)

    html = client.post(PREVIEW, {"body": "---\ntitle: t\n---\n" + "1. " * 30_000}).content.decode()

    assert 'role="alert"' in html and "MARKDOWN_MAX_NESTING" in html
    assert "<ol" not in html and "<pre" not in html


@pytest.mark.django_db
def test_a_stored_document_over_the_limits_shows_its_text_with_a_notice(client, world):
    # Stored before the limits existed (written straight to the table, as the API once accepted it).
    runbook = Runbook.objects.create(service=world.service, slug="deep", title="Deep", body=">" * 100_000)
    client.force_login(world.outsider)

    response = client.get(runbook.get_absolute_url())

    assert response.status_code == 200
    html = response.content.decode()
    assert "This document is shown as plain text" in html and "MARKDOWN_MAX_NESTING" in html
    assert '<pre class="markdown-source">&gt;&gt;&gt;' in html and "<blockquote>" not in html
    assert selectors.markdown_render(text=runbook.body).problem  # cached like any rendering


@pytest.mark.django_db
def test_an_imported_document_over_the_limits_is_reported_and_the_rest_imports(tmp_path):
    base_tree(tmp_path)
    write(tmp_path, "api-svc/docs/runbook-deep.md", "# Deep\n\n" + "- " * 1000 + "item\n")
    write(tmp_path, "api-svc/docs/adr/0003-deep.md", "# 3. Deep\n\n## Status\n\nAccepted\n\n" + "<div>" * 1000)

    report = import_tree(tmp_path)

    problems = {problem.file: problem.message for problem in report.errors}
    assert set(problems) == {"api-svc/docs/runbook-deep.md", "api-svc/docs/adr/0003-deep.md"}
    assert "nests block quotes and list items" in problems["api-svc/docs/runbook-deep.md"]
    assert "nests HTML tags" in problems["api-svc/docs/adr/0003-deep.md"]
    assert_base_imported()
    assert list(Runbook.objects.filter(service__slug="api-svc").values_list("slug", flat=True)) == ["runbook"]
    assert list(ADR.objects.filter(service__slug="api-svc").values_list("number", flat=True)) == [1, 2]


_PARSE_CHILD = """
import django
django.setup()
from techdocs import files
padded = "a" + " " * 200_000 + "b"
print(files.runbook_parse(filename="runbook.md", text="# " + padded).title[:1])
print(files.adr_parse(filename="0001-x.md", text="# 1. T\\n\\nDate: 2026-01-02\\nDeciders: " + padded).deciders[:1])
"""


def test_a_title_or_field_padded_with_spaces_is_read_in_one_pass():
    # `(.+?)\s*$` retried the trailing spaces at every character: minutes for this, on every import of the file.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "platform"), "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    child = subprocess.run(
        [sys.executable, "-c", _PARSE_CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["a", "a"]
