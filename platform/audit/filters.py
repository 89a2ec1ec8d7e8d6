"""Audit log filters, shared by the audit page and the API: a service by slug, an object type from a list."""

import re
from pathlib import Path
from typing import Any

import django_filters
from django import forms
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.text import capfirst

from audit.models import AuditEvent
from portal.filters import UtcIsoDateTimeFilter

PLACEHOLDERS = {
    "action": "Action, e.g. service.",
    "actor": "Who (username)",
    "object_id": "Object id",
    "service": "Any service",
    "request_id": "Request id",
}
SLUG = re.compile(r"\A[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")


def object_type_choices() -> list[tuple[str, str]]:
    """The kinds of object the log can name (an event's object_type is its model's label), by name; no query."""
    platform = Path(settings.BASE_DIR) / "platform"
    own = [
        config
        for config in apps.get_app_configs()
        if config.label == "auth" or Path(config.path).is_relative_to(platform)
    ]
    models = [model for config in own for model in config.get_models() if not model._meta.auto_created]
    choices = {
        model._meta.label_lower: f"{capfirst(model._meta.verbose_name)} ({model._meta.app_label})" for model in models
    }
    return sorted(choices.items(), key=lambda choice: choice[1].lower())


class ServiceField(forms.CharField):
    """A service by slug, as people name it (or by number, as older links and API clients do); cleans to its id.

    A number is taken as an id without a lookup, as before; a slug no service has is an error that says so."""

    def clean(self, value: Any) -> int | None:
        text = super().clean(value)  # CharField refuses NUL characters before anything reaches the database
        if not text:
            return None
        if text.isdigit():
            return int(text)
        from catalog.models import Service

        found = Service.objects.filter(slug=text).values_list("pk", flat=True).first() if SLUG.match(text) else None
        if found is None:
            raise ValidationError(f"No service is called {text!r}: use its slug, as in its page's address.")
        return found


class ServiceFilter(django_filters.Filter):
    field_class = ServiceField


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(
        lookup_expr="startswith", help_text="For example service. or service.transferred"
    )
    actor = django_filters.CharFilter(field_name="actor_repr", label="Actor (username)")
    object_type = django_filters.ChoiceFilter(
        choices=object_type_choices, label="Object type", empty_label="Any type of object"
    )
    object_id = django_filters.CharFilter()
    service = ServiceFilter(
        field_name="service_id",
        label="Service",
        max_length=100,
        help_text="A service's slug (or id)",
        widget=forms.TextInput(attrs={"list": "audit-services", "autocomplete": "off", "spellcheck": "false"}),
    )
    request_id = django_filters.CharFilter()
    since = UtcIsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte", label="Since")
    until = UtcIsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt", label="Until")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.form.fields.items():
            if not isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("placeholder", PLACEHOLDERS.get(name, field.label or name))
        for name in ("since", "until"):
            self.form.fields[name].widget.input_type = "datetime-local"

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "service", "request_id", "since", "until"]
