from typing import Any

import django_filters

from audit.models import AuditEvent

PLACEHOLDERS = {
    "action": "Action, e.g. service.",
    "actor": "Who (username)",
    "object_type": "Type, e.g. catalog.service",
    "object_id": "Object id",
    "service": "Service id",
    "request_id": "Request id",
}


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(
        lookup_expr="startswith", help_text="For example service. or service.transferred"
    )
    actor = django_filters.CharFilter(field_name="actor_repr", label="Actor (username)")
    object_type = django_filters.CharFilter(help_text="For example catalog.service")
    object_id = django_filters.CharFilter()
    service = django_filters.NumberFilter(field_name="service_id", label="Service id")
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte", label="Since")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt", label="Until")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.form.fields.items():
            field.widget.attrs.setdefault("placeholder", PLACEHOLDERS.get(name, field.label or name))
        for name in ("since", "until"):
            self.form.fields[name].widget.input_type = "datetime-local"

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "service", "request_id", "since", "until"]
