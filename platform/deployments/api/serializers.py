from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments import policies
from deployments.models import (
    Decommission,
    DecommissionEvent,
    Deployment,
    DeploymentEvent,
    Environment,
    Placement,
    Release,
    Strategy,
)
from portal import validators


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "slug", "name", "order", "protected", "description"]


class ReleaseSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)

    class Meta:
        model = Release
        fields = ["id", "service", "version", "commit_sha", "committed_at", "created_at"]


class DeploymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentEvent
        fields = ["at", "step", "from_state", "level", "message", "data"]


class DeploymentSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    release = ReleaseSerializer(read_only=True)
    previous_version = serializers.CharField(
        source="previous_release.version", default=None, allow_null=True, read_only=True
    )
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True, read_only=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)
    break_glass = serializers.BooleanField(read_only=True, help_text="An emergency deploy a platform admin approved.")

    class Meta:
        model = Deployment
        fields = [
            "id",
            "url",
            "service",
            "environment",
            "release",
            "previous_version",
            "strategy",
            "runtime",
            "state",
            "paused",
            "needs_attention",
            "current_step",
            "plan",
            "traffic_share",
            "failure_reason",
            "break_glass",
            "break_glass_reason",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ComplianceSerializer(serializers.Serializer):
    """What the deploy policies said about a reported deploy: recorded as compliant or not, never refused."""

    compliant = serializers.BooleanField(allow_null=True, help_text="Null when the policies could not judge it.")
    decision = serializers.IntegerField(allow_null=True, source="decision_id", help_text="The decision record.")
    url = serializers.CharField(allow_null=True, help_text="The decision's page.")
    messages = serializers.ListField(child=serializers.CharField(), help_text="Why it is not compliant.")


class DeployEventResultSerializer(DeploymentSerializer):
    """A reported deploy as recorded, with its compliance with the deploy policies."""

    compliance = serializers.SerializerMethodField()

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "compliance"]

    @extend_schema_field(ComplianceSerializer)
    def get_compliance(self, deployment: Deployment) -> dict:
        return ComplianceSerializer(policies.report_compliance(deployment)).data


class DeploymentDetailSerializer(DeploymentSerializer):
    events = DeploymentEventSerializer(many=True, read_only=True)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "events"]


class DeploymentRequestSerializer(serializers.Serializer):
    service = serializers.SlugField(help_text="The service's slug.")
    environment = serializers.SlugField(help_text="The environment's slug.")
    ref = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="Tag, branch or commit.")
    release = serializers.CharField(required=False, allow_blank=True, max_length=80, help_text="A known version.")
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False, allow_blank=True)

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("ref") and not attrs.get("release"):
            raise serializers.ValidationError({"ref": "Give a tag, branch or commit (ref), or a known release."})
        return attrs


class DeployEventCommitSerializer(serializers.Serializer):
    sha = serializers.RegexField(r"\A[0-9a-f]{40}\Z", help_text="The full 40-character commit sha.")
    committed_at = serializers.DateTimeField(help_text="When it was committed, with its UTC offset.")


DEPLOY_EVENT_COMMITS_MAX = 1000


class DeployEventSerializer(serializers.Serializer):
    """A deployment done by an external CD system, reported so history and DORA metrics include it."""

    service = serializers.SlugField()
    environment = serializers.SlugField()
    version = serializers.CharField(max_length=80)
    commit_sha = serializers.RegexField(r"\A[0-9a-f]{40}\Z", help_text="The full 40-character commit sha.")
    status = serializers.ChoiceField(choices=["succeeded", "failed", "rolled_back"])
    strategy = serializers.ChoiceField(
        choices=Strategy.choices,
        required=False,
        help_text="How the CD system rolled it out; by default the strategy of the service's deploy target there, "
        "else rolling. The deploy policies judge the report with it.",
    )
    committed_at = serializers.DateTimeField(required=False, allow_null=True)
    commits = serializers.ListField(
        child=DeployEventCommitSerializer(),
        required=False,
        max_length=DEPLOY_EVENT_COMMITS_MAX,
        help_text="The release's change set: the commits in it and not in the release production ran before, each "
        "with its time. Change lead time runs from the oldest to the deployment's success. Recorded with the "
        "release's first report that has them; Runway's own repository is read when this is left out.",
    )
    started_at = serializers.DateTimeField(required=False, allow_null=True)
    finished_at = serializers.DateTimeField(required=False, allow_null=True)
    # Written to the timeline without model validation, so it refuses bidirectional controls here, as model text does.
    message = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, validators=[validators.bidi_controls_refuse]
    )

    def validate(self, attrs: dict) -> dict:
        started, finished = attrs.get("started_at"), attrs.get("finished_at")
        if started and finished and finished < started:
            raise serializers.ValidationError({"finished_at": "A deployment cannot finish before it starts."})
        latest = finished or timezone.now()
        late = [n for n, c in enumerate(attrs.get("commits") or []) if c["committed_at"] > latest]
        if late:
            raise serializers.ValidationError(
                {"commits": {n: {"committed_at": ["A commit cannot be later than the deployment."]} for n in late[:20]}}
            )
        return attrs


class PlacementSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    version = serializers.CharField(source="release.version", default=None, allow_null=True, read_only=True)
    commit_sha = serializers.CharField(source="release.commit_sha", default=None, allow_null=True, read_only=True)

    class Meta:
        model = Placement
        fields = ["service", "environment", "version", "commit_sha", "deployment", "since"]


class DecommissionEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DecommissionEvent
        fields = ["at", "step", "from_state", "level", "message", "data"]


class DecommissionSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)
    state_display = serializers.CharField(source="get_state_display", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True, read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", default=None, allow_null=True, read_only=True)

    class Meta:
        model = Decommission
        fields = [
            "id",
            "service",
            "state",
            "state_display",
            "reason",
            "planned_for",
            "requested_by",
            "approved_by",
            "approved_at",
            "failed_step",
            "failure_reason",
            "created_at",
            "finished_at",
        ]


class DecommissionDetailSerializer(DecommissionSerializer):
    events = DecommissionEventSerializer(many=True, read_only=True)

    class Meta(DecommissionSerializer.Meta):
        fields = [*DecommissionSerializer.Meta.fields, "events"]


class DecommissionRequestSerializer(serializers.Serializer):
    service = serializers.SlugField(max_length=100)
    reason = serializers.CharField(max_length=2000)
    planned_for = serializers.DateField()


class BreakGlassSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why this cannot wait: the approving admin reads it.")
