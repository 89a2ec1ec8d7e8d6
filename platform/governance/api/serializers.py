from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.models import Strategy, commit_validator, version_validator
from governance.models import Action, Approval, ApprovalRequest, Approvers, Decision, Policy, PolicyVersion, Verdict

OUTCOMES = [
    ("pass", "The rule held."),
    ("fail", "The rule did not hold: the policy's action applies."),
    ("skip", "The policy does not apply to this change (its match is false)."),
    ("error", "The policy could not be evaluated; a deny or require_approval policy then denies."),
]


class PolicyCheckRequestSerializer(serializers.Serializer):
    """A change a CD pipeline is about to make, to ask the policies first."""

    service = serializers.SlugField(help_text="The service's slug.")
    environment = serializers.SlugField(help_text="The environment's slug.")
    version = serializers.CharField(max_length=80, validators=[version_validator])
    commit_sha = serializers.CharField(
        required=False,
        allow_blank=True,
        validators=[commit_validator],
        help_text="The full 40-character commit sha; by default the commit of the release with this version.",
    )
    strategy = serializers.ChoiceField(
        choices=Strategy.choices, required=False, help_text="By default, the deploy target's strategy."
    )


class PolicyResultSerializer(serializers.Serializer):
    policy = serializers.CharField()
    version_id = serializers.IntegerField(help_text="The policy version that judged.")
    version = serializers.IntegerField()
    action = serializers.ChoiceField(choices=Action.choices)
    outcome = serializers.ChoiceField(choices=OUTCOMES)
    message = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)


@extend_schema_field(PolicyResultSerializer(many=True))
class StoredResultsField(serializers.Field):
    """A decision's results as stored: already plain JSON of exactly PolicyResultSerializer's shape (written by
    `Judged.as_dict`), so they go out as they are instead of through a nested serializer per policy (profiled: the
    nested serializer was a tenth of a policy check's time with 50 policies)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(OpenApiTypes.OBJECT)
class StoredDocumentField(serializers.Field):
    """A fact document as stored (plain JSON, see docs/governance.md), sent as it is."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value: Any) -> Any:
        return value


class PolicyCheckSerializer(serializers.ModelSerializer):
    """What the enabled policies say about the change. `allowed` is false when a deny policy failed or errored, or a
    require_approval policy failed (`verdict` is then `approval`: allowed once the approvals are given)."""

    decision = serializers.IntegerField(source="pk", read_only=True, help_text="The decision recorded.")
    allowed = serializers.BooleanField(read_only=True)
    verdict = serializers.ChoiceField(choices=Verdict.choices, read_only=True)
    results = StoredResultsField()
    facts = StoredDocumentField(help_text="The fact document judged (docs/governance.md).")

    class Meta:
        model = Decision
        fields = ["decision", "allowed", "verdict", "results", "duration_ms", "facts", "created_at"]
        read_only_fields = fields

    def to_representation(self, instance: Decision) -> dict[str, Any]:
        """What the declared fields give, written out: a ModelSerializer builds and copies its fields for every
        instance, which cost more than the rest of the response (profiled: 0.15 ms of a dry run's CPU; 0.02 ms now).
        The fields stay declared for the schema, and a test holds this to their output."""
        return {
            "decision": instance.pk,
            "allowed": instance.allowed,
            "verdict": str(instance.verdict),
            "results": instance.results,
            "duration_ms": float(instance.duration_ms),
            "facts": instance.facts,
            "created_at": _TIMESTAMP.to_representation(instance.created_at),
        }


_TIMESTAMP = serializers.DateTimeField(read_only=True)  # as a ModelSerializer renders a DateTimeField


class PolicyVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_repr", read_only=True, help_text="Who wrote it, or 'policy sync'.")

    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "number",
            "match",
            "rule",
            "message",
            "message_expression",
            "action",
            "approvers",
            "approver_team",
            "approvals_required",
            "author",
            "created_at",
        ]
        read_only_fields = fields


class PolicySerializer(serializers.ModelSerializer):
    current = PolicyVersionSerializer(read_only=True, allow_null=True, help_text="The version that judges.")

    class Meta:
        model = Policy
        fields = ["name", "description", "enabled", "source_path", "missing_since", "current", "updated_at"]
        read_only_fields = fields


class DecisionSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service_slug", read_only=True)
    environment = serializers.CharField(source="environment_slug", read_only=True)
    results = PolicyResultSerializer(many=True, read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "deployment", "service", "environment", "verdict", "results", "duration_ms", "created_at"]
        read_only_fields = fields


class DecisionDetailSerializer(DecisionSerializer):
    facts = serializers.DictField(read_only=True, help_text="The fact document judged (docs/governance.md).")

    class Meta(DecisionSerializer.Meta):
        fields = [*DecisionSerializer.Meta.fields, "facts"]
        read_only_fields = fields


class EvidenceQuerySerializer(serializers.Serializer):
    """Whose changes and when: a service, a team, or neither (everything the caller may read)."""

    service = serializers.SlugField(required=False, help_text="One service's changes (wins over team).")
    team = serializers.SlugField(required=False, help_text="The changes of every service the team owns.")
    since = serializers.DateField(required=False, help_text="First day, inclusive (organisation time); 30 days back.")
    until = serializers.DateField(required=False, help_text="Last day, inclusive; by default today.")


class EvidenceApprovalSerializer(serializers.Serializer):
    by = serializers.CharField(help_text="Who approved.")
    at = serializers.CharField(help_text="When, UTC.")
    role = serializers.CharField(required=False, help_text="As what: lead of the owning team, platform admin...")


class EvidencePolicySerializer(serializers.Serializer):
    policy = serializers.CharField()
    version = serializers.IntegerField()
    version_id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=Action.choices)
    outcome = serializers.ChoiceField(choices=OUTCOMES)
    message = serializers.CharField(allow_blank=True)


class EvidenceChangeSerializer(serializers.Serializer):
    deployment = serializers.IntegerField()
    url = serializers.CharField(help_text="The deployment's page.")
    requested_at = serializers.CharField(help_text="UTC.")
    service = serializers.CharField()
    team = serializers.CharField(help_text="The owning team's slug.")
    environment = serializers.CharField()
    version = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    strategy = serializers.CharField()
    source = serializers.ChoiceField(
        choices=[("runway", "Deployed by Runway"), ("reported", "Reported by a CD system")]
    )
    requester = serializers.CharField(allow_blank=True)
    approvals = EvidenceApprovalSerializer(many=True)
    break_glass = serializers.BooleanField()
    decision = serializers.IntegerField(allow_null=True, help_text="The policy decision; null when not judged.")
    verdict = serializers.ChoiceField(choices=Verdict.choices, allow_null=True)
    policies = EvidencePolicySerializer(many=True, help_text="Each enabled policy's version and what it said.")
    outcome = serializers.CharField(help_text="The deployment's final state, or the status a CD system reported.")
    finished_at = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField(allow_blank=True)


class EvidenceScopeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["organisation", "team", "service", "my_teams"])
    label = serializers.CharField()
    service = serializers.CharField(allow_null=True)
    team = serializers.CharField(allow_null=True)


class EvidenceSerializer(serializers.Serializer):
    scope = EvidenceScopeSerializer()
    since = serializers.DateField()
    until = serializers.DateField()
    time_zone = serializers.CharField(help_text="The organisation's time zone the dates are read in.")
    generated_at = serializers.DateTimeField()
    changes = EvidenceChangeSerializer(many=True, help_text="Oldest first.")


class ApprovalRequirementSerializer(serializers.Serializer):
    policy = serializers.CharField(allow_blank=True, help_text="The policy that asked; empty for break-glass.")
    version_id = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    approvers = serializers.ChoiceField(choices=Approvers.choices)
    team = serializers.CharField(allow_blank=True, help_text="The team's slug when approvers is team.")
    count = serializers.IntegerField(help_text="Distinct approvers needed.")
    message = serializers.CharField(allow_blank=True)
    by = serializers.ListField(child=serializers.CharField(), help_text="Who approved, counted for this requirement.")
    met = serializers.BooleanField()


class ApprovalAnswerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Approval
        fields = ["username", "verdict", "reason", "owner_roles", "platform_admin", "created_at"]
        read_only_fields = fields


class ApprovalRequestSerializer(serializers.ModelSerializer):
    """A deployment waiting for (or decided by) approvals."""

    deployment = serializers.IntegerField(source="deployment_id", read_only=True)
    service = serializers.CharField(source="deployment.service.slug", read_only=True)
    environment = serializers.CharField(source="deployment.environment.slug", read_only=True)
    version = serializers.CharField(source="deployment.release.version", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", default=None, allow_null=True, read_only=True)
    decision = serializers.IntegerField(source="decision_id", allow_null=True, read_only=True)
    requirements = ApprovalRequirementSerializer(source="progress", many=True, read_only=True)
    answers = ApprovalAnswerSerializer(many=True, read_only=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "url",
            "deployment",
            "service",
            "environment",
            "version",
            "kind",
            "status",
            "requested_by",
            "reason",
            "decision",
            "requirements",
            "answers",
            "expires_at",
            "closed_at",
            "closed_reason",
            "created_at",
        ]
        read_only_fields = fields


class ApprovalRejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why: the requester reads it on the timeline.")
