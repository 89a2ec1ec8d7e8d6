"""Wizard forms built from a golden path's JSON Schema; the schema stays the single source of validation."""

from typing import Any

from django import forms
from django.utils.html import format_html

from catalog.models import System
from portal.forms import InlineValidationMixin
from scaffolder import publishers, services
from scaffolder.models import display_name_default
from scaffolder.registry import GoldenPath
from teams.models import Team


def _field(spec: dict[str, Any], required: bool) -> forms.Field:
    label, help_text = spec.get("title"), spec.get("description", "")
    if "enum" in spec:
        return forms.ChoiceField(
            label=label, help_text=help_text, required=required, choices=[(str(v), str(v)) for v in spec["enum"]]
        )
    kind = spec.get("type")
    if kind == "integer":
        return forms.IntegerField(label=label, help_text=help_text, required=required)
    if kind == "boolean":
        return forms.BooleanField(label=label, help_text=help_text, required=False)
    widget = forms.Textarea(attrs={"rows": 3}) if spec.get("maxLength", 0) > 120 else forms.TextInput()
    return forms.CharField(label=label, help_text=help_text, required=required, strip=True, widget=widget)


DISPLAY_NAME = "display_name"


def display_name_hint(slug: str) -> str:
    """What an empty display name becomes, in an element the name's inline check replaces as the name is typed."""
    made = display_name_default(slug) if publishers.REPO_NAME.fullmatch(slug) else ""
    return format_html(
        '<strong id="display-name-default">{}</strong>', f"“{made}”" if made else "made from the service name"
    )


class StepForm(InlineValidationMixin, forms.Form):
    """One wizard step: the step's parameters, checked by the golden path's schema.

    The step that asks for the service's `name` also asks for its display name, and checks as you type that the
    name is free: in the catalog, among the runs under way and on the publisher."""

    def __init__(self, *args: Any, path: GoldenPath, fields: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.path, self.names = path, fields
        self.display_name = ""
        required = set(path.schema.get("required", []))
        for name in fields:
            self.fields[name] = _field(path.properties[name], name in required)
            if name == "name":
                slug = str(self.data.get("name") or self.initial.get("name") or "")
                self.fields[DISPLAY_NAME] = forms.CharField(
                    label="Display name",
                    required=False,
                    strip=True,
                    help_text=format_html(
                        "The service's name as people read it in the catalog. Left empty, it is {}.",
                        display_name_hint(slug),
                    ),
                )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.display_name = str(data.pop(DISPLAY_NAME, "") or "")
        answers = {name: value for name, value in data.items() if value not in (None, "")}
        for name, spec in self.path.properties.items():
            if name in answers and "enum" in spec and spec.get("type") == "integer":
                answers[name] = int(answers[name])
        for name, messages in self.path.validate(answers, only=self.names).items():
            if name in self.fields and name not in self.errors:
                self.add_error(name, messages)
        if "name" in self.names and "name" in answers and "name" not in self.errors:
            if taken := services.name_check(str(answers["name"])):
                self.add_error("name", taken)
        if DISPLAY_NAME in self.fields and DISPLAY_NAME not in self.errors:
            if problems := services.display_name_errors(self.display_name):
                self.add_error(DISPLAY_NAME, problems)
        return answers


class OwnerForm(InlineValidationMixin, forms.Form):
    owner: Any = forms.ModelChoiceField(
        queryset=Team.objects.none(),  # narrowed to the user's teams in __init__
        to_field_name="slug",
        label="Owner team",
        empty_label="Choose a team…",
        help_text="The team that will own, run and be paged for the service.",
    )
    system = forms.ModelChoiceField(
        queryset=System.objects.order_by("name"),
        to_field_name="slug",
        required=False,
        empty_label="No system",
        label="System",
    )

    def __init__(self, *args: Any, teams: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = teams  # type: ignore[attr-defined]
