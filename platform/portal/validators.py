"""Validation shared by every app: text refuses the invisible characters that reorder how it is displayed."""

import re
import unicodedata

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

# The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): invisible characters that make
# text display in another order than it is stored ("Trojan Source", CVE-2021-42574), so that a name, a description or
# an API definition could show one thing and say another. Right-to-left text itself needs none of them.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

# Runway's own apps and django.contrib.auth (people's names); every text field of their models refuses the controls.
GUARDED_APPS = frozenset(
    {"auth", "accounts", "teams", "catalog", "techdocs", "scaffolder", "deployments", "governance"}
)


def bidi_controls_refuse(value: object) -> None:
    """Refuse text holding a bidirectional control character, naming the first one and where it is."""
    if not isinstance(value, str) or (found := BIDI_CONTROLS.search(value)) is None:
        return
    char = found.group()
    raise ValidationError(
        "Remove the invisible text-direction character U+%(code)04X (%(name)s) at position %(position)d: it makes "
        "text display in a different order from what it says.",
        code="bidi_control",
        params={"code": ord(char), "name": unicodedata.name(char), "position": found.start() + 1},
    )


def text_fields_guard() -> None:
    """Attach `bidi_controls_refuse` to every text field (CharField, TextField, and their kinds such as SlugField and
    URLField) of the guarded apps' models, when the apps are ready.

    It goes where Django itself puts CharField's max-length validator (the field's `validators` list, built once per
    field), not among the validators declared on the field, which migrations record: so model validation
    (`full_clean`, which every service function runs), model forms, DRF model serializers (which copy a model field's
    validators) and the catalog's descriptors (which run the models' field validation) all refuse the characters,
    with no migration in any app. Fields with choices take only their choices anyway.
    """
    for model in apps.get_models():
        if model._meta.app_label not in GUARDED_APPS:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, models.CharField | models.TextField) and not field.choices:
                if bidi_controls_refuse not in field.validators:
                    field.validators.append(bidi_controls_refuse)


def nul_path(value: object) -> str | None:
    """Where the first NUL character in parsed JSON or YAML is, as a path ("spec.tags[2]", a key's own path when the
    key holds it, "" for a bare string); None when there is none. PostgreSQL's text and jsonb cannot hold NUL. Walks
    without recursion, so depth is no concern."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                below = f"{path}.{key}".lstrip(".")
                if isinstance(key, str) and "\x00" in key:
                    return below
                stack.append((child, below))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in reversed(list(enumerate(item))))
    return None
