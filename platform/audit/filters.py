import django_filters

from audit.models import AuditEvent


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter(
        lookup_expr="startswith", help_text="For example service. or service.transferred"
    )
    actor = django_filters.CharFilter(field_name="actor_repr", label="Actor (username)")
    object_type = django_filters.CharFilter(help_text="For example catalog.service")
    object_id = django_filters.CharFilter()
    service = django_filters.NumberFilter(field_name="service_id", label="Service id")
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "object_type", "object_id", "service", "request_id", "since", "until"]
