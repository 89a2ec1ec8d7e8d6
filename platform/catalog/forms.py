"""Catalog forms. Writes still go through catalog.services; these only parse and validate input."""

from typing import Any

from django import forms
from django.db.models import QuerySet

from catalog.models import Dependency, Service, System, Tag
from portal.forms import InlineValidationMixin
from teams.models import Team


class TagsField(forms.CharField):
    """Comma-separated tags, normalised to a sorted list of lowercase names."""

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return sorted({part.strip().lower() for part in text.split(",") if part.strip()})

    def validate(self, value: Any) -> None:
        for name in value:
            try:
                Tag(name=name).clean_fields()
            except forms.ValidationError as error:
                raise forms.ValidationError(f"“{name}” is not a valid tag: {error.messages[0]}") from error


class ServiceForm(InlineValidationMixin, forms.ModelForm):
    tags = TagsField(required=False, help_text="Comma-separated, for example: python, payments, pci")

    class Meta:
        model = Service
        fields = [
            "name",
            "slug",
            "owner",
            "description",
            "system",
            "lifecycle",
            "tier",
            "language",
            "tags",
            "repository_url",
            "docs_url",
            "dashboard_url",
            "chat_channel",
            "on_call_url",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}
        help_texts = {"slug": "Unique, lowercase letters, digits and hyphens; used in URLs and the API."}

    def __init__(self, *args: Any, owner_choices: QuerySet[Team] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Ownership moves only through the transfer flow; the slug is the service's identity.
            del self.fields["owner"]
            self.fields["slug"].disabled = True
            self.initial["tags"] = ", ".join(tag.name for tag in self.instance.tags.all())
        elif owner_choices is not None:
            self.fields["owner"].queryset = owner_choices  # type: ignore[attr-defined]
            self.fields["owner"].help_text = "Teams you belong to."
            self.fields["owner"].empty_label = "Choose a team…"  # type: ignore[attr-defined]
            if len(owner_choices) == 1:
                self.initial.setdefault("owner", owner_choices[0].pk)
        self.fields["system"].queryset = System.objects.order_by("name")  # type: ignore[attr-defined]
        self.fields["system"].empty_label = "No system"  # type: ignore[attr-defined]
        # Retirement is a workflow (Decommission on the service page), not a value to pick here.
        if self.instance.lifecycle in Service.RETIRING:
            self.fields["lifecycle"].disabled = True
        else:
            lifecycle = self.fields["lifecycle"]
            lifecycle.choices = [c for c in lifecycle.choices if c[0] not in Service.RETIRING]  # type: ignore[attr-defined]
            lifecycle.help_text = "To retire the service, use Decommission on its page."


class TransferForm(forms.Form):
    new_owner = forms.ModelChoiceField(queryset=Team.objects.all(), to_field_name="slug", label="New owner team")
    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the service moves; kept in the audit log.",
    )


class DependencyForm(forms.Form):
    target = forms.ModelChoiceField(
        queryset=Service.objects.all(),
        to_field_name="slug",
        label="Depends on",
        widget=forms.TextInput(attrs={"placeholder": "slug of the service it depends on"}),
        error_messages={"invalid_choice": "There is no service with this slug."},
    )
    kind = forms.ChoiceField(choices=Dependency.Kind.choices)


class SystemForm(InlineValidationMixin, forms.ModelForm):
    class Meta:
        model = System
        fields = ["name", "slug", "owner", "description"]


class ImportForm(forms.Form):
    archive = forms.FileField(help_text="A .zip, .tar or .tar.gz of a folder of catalog-info.yaml files and docs.")
    source = forms.RegexField(
        regex=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,150}$",
        required=False,
        help_text="Name of this source. Importing again under the same name updates what it imported before.",
        error_messages={"invalid": "Use letters, digits and . _ : / - only."},
    )
