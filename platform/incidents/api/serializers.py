from django.contrib.auth.models import User
from rest_framework import serializers

from catalog.models import Service
from deployments.models import Deployment
from incidents.models import (
    ActionItem,
    AlertReceiver,
    Incident,
    IncidentDeployment,
    IncidentUpdate,
    Lesson,
    Postmortem,
    Severity,
    Status,
)
from portal.api import SlugRelatedField
from teams.models import Team


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


# Postmortems and Alertmanager receivers


class LessonSerializer(serializers.ModelSerializer):
    adr = serializers.IntegerField(source="adr_id", read_only=True, allow_null=True)
    runbook = serializers.IntegerField(source="runbook_id", read_only=True, allow_null=True)

    class Meta:
        model = Lesson
        fields = ["id", "text", "adr", "runbook", "created_at"]
        read_only_fields = ["id", "adr", "runbook", "created_at"]


class ActionItemSerializer(serializers.ModelSerializer):
    """An action item; `owner_team` is written as a team's slug."""

    owner_team = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    closed_by = serializers.CharField(source="closed_by.username", read_only=True, allow_null=True, default=None)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)

    class Meta:
        model = ActionItem
        fields = ["id", "title", "owner_team", "due_date", "status", "closed_by", "closed_at", "overdue", "created_at"]
        read_only_fields = ["id", "status", "closed_by", "closed_at", "overdue", "created_at"]


class ActionStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ActionItem.Status.choices)


class PostmortemSerializer(serializers.ModelSerializer):
    """A postmortem: its sections are Markdown (rendered sanitised on its page); lessons and action items are added
    with their own routes, the state moved with `state/`."""

    incident = serializers.PrimaryKeyRelatedField(queryset=Incident.objects.all())
    incident_title = serializers.CharField(source="incident.title", read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True, default=None)
    lessons = LessonSerializer(many=True, read_only=True)
    actions = ActionItemSerializer(many=True, read_only=True)

    class Meta:
        model = Postmortem
        fields = [
            "id",
            "incident",
            "incident_title",
            "state",
            "summary",
            "impact",
            "timeline",
            "contributing_factors",
            "went_well",
            "author",
            "lessons",
            "actions",
            "created_at",
            "updated_at",
            "published_at",
        ]
        read_only_fields = ["id", "state", "author", "created_at", "updated_at", "published_at"]


class PostmortemStateSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Postmortem.State.choices)


class AlertReceiverSerializer(serializers.ModelSerializer):
    """A receiver; its token is in the answer to its creation only (`token`), never again."""

    token = serializers.SerializerMethodField(help_text="Only when it is made: copy it into alertmanager.yml.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = AlertReceiver
        fields = ["id", "name", "prefix", "token", "active", "created_by", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "token", "active", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_token(self, receiver: AlertReceiver) -> str | None:
        return self.context.get("token")
