from django.contrib.auth.models import User
from rest_framework import serializers

from catalog.models import Service
from deployments.models import Deployment
from incidents.models import Incident, IncidentDeployment, IncidentUpdate, Severity, Status
from portal.api import SlugRelatedField


class IncidentLinkSerializer(serializers.ModelSerializer):
    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    service = serializers.CharField(source="deployment.service.slug", read_only=True)
    version = serializers.CharField(source="deployment.release.version", read_only=True)

    class Meta:
        model = IncidentDeployment
        fields = ["deployment", "relation", "service", "version", "created_at"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    """An incident; `services` and `commander` are written as slugs and a username."""

    services = SlugRelatedField(slug_field="slug", many=True, queryset=Service.objects.all())
    commander = SlugRelatedField(
        slug_field="username",
        queryset=User.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="A username; by default whoever declares the incident.",
    )
    started_at = serializers.DateTimeField(required=False, help_text="When users began to be hurt; default now.")
    links = IncidentLinkSerializer(source="deployment_links", many=True, read_only=True)
    causes = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**62),
        write_only=True,
        required=False,
        max_length=50,
        help_text="Deployment ids known to have caused it (at declaration).",
    )

    class Meta:
        model = Incident
        fields = [
            "id",
            "title",
            "severity",
            "status",
            "summary",
            "services",
            "commander",
            "source",
            "started_at",
            "identified_at",
            "mitigated_at",
            "resolved_at",
            "created_at",
            "links",
            "causes",
        ]
        read_only_fields = ["id", "status", "source", "identified_at", "mitigated_at", "resolved_at", "created_at"]
        extra_kwargs = {"severity": {"choices": Severity.choices}}

    def validate_services(self, value: list[Service]) -> list[Service]:
        if not value:
            raise serializers.ValidationError("Name at least one affected service.")
        if len(value) > 50:
            raise serializers.ValidationError("Name at most 50 services.")
        return value

    def validate_causes(self, value: list[int]) -> list[Deployment]:
        found = {
            d.pk: d for d in Deployment.objects.select_related("service", "release", "environment").filter(pk__in=value)
        }
        missing = [str(pk) for pk in value if pk not in found]
        if missing:
            raise serializers.ValidationError(f"No deployment {', '.join(missing[:5])}.")
        return [found[pk] for pk in dict.fromkeys(value)]


class IncidentUpdateSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_repr", read_only=True)
    status = serializers.ChoiceField(
        choices=Status.choices, required=False, allow_blank=True, help_text="A new status; empty keeps it."
    )
    message = serializers.CharField(max_length=10000, required=False, allow_blank=True)

    class Meta:
        model = IncidentUpdate
        fields = ["id", "author", "status", "message", "created_at"]
        read_only_fields = ["id", "author", "created_at"]


class IncidentLinkRequestSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(min_value=1, max_value=2**62)
    relation = serializers.ChoiceField(choices=IncidentDeployment.Relation.choices)


class SuspectSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(source="deployment.pk")
    service = serializers.CharField(source="deployment.service.slug")
    environment = serializers.CharField(source="deployment.environment.slug")
    version = serializers.CharField(source="deployment.release.version")
    state = serializers.CharField(source="deployment.state")
    started_at = serializers.DateTimeField(source="deployment.started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="deployment.finished_at", allow_null=True)
    via = serializers.CharField(help_text="'affected', or the affected service that depends on it.")
    linked = serializers.CharField(allow_blank=True, help_text="'cause', 'fix', or empty.")


class AlertSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    labels = serializers.DictField(child=serializers.CharField(), help_text="`service` names the catalog's service.")
    annotations = serializers.DictField(child=serializers.CharField(), required=False)
    startsAt = serializers.DateTimeField()  # noqa: N815 (Alertmanager's names)
    endsAt = serializers.CharField(required=False, help_text="RFC 3339; Go's zero time while firing.")  # noqa: N815
    generatorURL = serializers.CharField(required=False)  # noqa: N815
    fingerprint = serializers.CharField(required=False)


class AlertmanagerPayloadSerializer(serializers.Serializer):
    """Alertmanager's webhook payload, version 4 (documentation only: the view checks the body itself)."""

    version = serializers.ChoiceField(choices=["4"])
    groupKey = serializers.CharField(max_length=1000)  # noqa: N815
    truncatedAlerts = serializers.IntegerField(required=False)  # noqa: N815
    status = serializers.ChoiceField(choices=["firing", "resolved"])
    receiver = serializers.CharField()
    groupLabels = serializers.DictField(child=serializers.CharField(), required=False)  # noqa: N815
    commonLabels = serializers.DictField(child=serializers.CharField(), required=False)  # noqa: N815
    commonAnnotations = serializers.DictField(child=serializers.CharField(), required=False)  # noqa: N815
    externalURL = serializers.CharField(required=False)  # noqa: N815
    alerts = AlertSerializer(many=True)


class AlertmanagerActionSerializer(serializers.Serializer):
    service = serializers.CharField()
    incident = serializers.IntegerField(allow_null=True)
    action = serializers.ChoiceField(choices=["opened", "joined", "reopened", "mitigated", "unchanged"])


class AlertmanagerResultSerializer(serializers.Serializer):
    incidents = AlertmanagerActionSerializer(many=True)
