from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog.models import Service
from deployments.models import Environment
from monitoring.models import HealthCheck, HealthStatus
from monitoring.selectors import Health, health_for_checks
from monitoring.services import CHOSEN_SOURCES
from portal.api import SlugRelatedField


class UptimeSerializer(serializers.Serializer):
    """Percent of probes that passed; null where no probe ran in the window."""

    last_24h = serializers.FloatField(allow_null=True)
    last_7d = serializers.FloatField(allow_null=True)
    last_30d = serializers.FloatField(allow_null=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=HealthStatus.choices, help_text="unknown is never healthy.")
    reason = serializers.CharField()
    last_checked_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()
    last_latency_ms = serializers.IntegerField(allow_null=True)
    uptime = UptimeSerializer()


def health_data(health: Health) -> dict[str, Any]:
    return {
        "status": health.status,
        "reason": health.reason,
        "last_checked_at": health.last_checked_at,
        "last_error": health.last_error,
        "last_latency_ms": health.last_latency_ms,
        "uptime": {f"last_{name}": value for name, value in health.uptime.items()},
    }


class HealthCheckSerializer(serializers.ModelSerializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    environment = SlugRelatedField(slug_field="slug", queryset=Environment.objects.all())
    health = serializers.SerializerMethodField()

    class Meta:
        model = HealthCheck
        fields = [
            "id",
            "service",
            "environment",
            "url",
            "interval_seconds",
            "timeout_ms",
            "expected_status",
            "body_match",
            "enabled",
            "metrics_path",
            "metrics_error",
            "metrics_scraped_at",
            "source",
            "next_run_at",
            "health",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["next_run_at", "metrics_error", "metrics_scraped_at", "created_at", "updated_at"]
        # The unique (service, environment) pair is checked by the service function's full_clean (a 400 naming it).
        validators: list[Any] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["service"].read_only = True
            self.fields["environment"].read_only = True

    def validate_source(self, value: str) -> str:
        # Only the demo makes simulated checks; one made through the API always probes for real.
        if value not in CHOSEN_SOURCES:
            raise serializers.ValidationError(
                f"Choose {' or '.join(CHOSEN_SOURCES)}: {value} checks are made by the demo loader only."
            )
        return value

    @extend_schema_field(HealthSerializer)
    def get_health(self, check: HealthCheck) -> dict[str, Any]:
        known = self.context.get("health") or {}
        health = known.get(check.pk) or health_for_checks([check])[check.pk]
        return health_data(health)
