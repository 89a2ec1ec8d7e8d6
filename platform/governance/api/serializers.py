from rest_framework import serializers

from deployments.models import Strategy, commit_validator, version_validator
from governance.models import Action, Decision, Policy, PolicyVersion, Verdict

OUTCOMES = [
    ("pass", "The rule held."),
    ("fail", "The rule did not hold: the policy's action applies."),
    ("skip", "The policy does not apply to this change (its match is false)."),
    ("error", "The policy could not be evaluated; a deny policy then denies."),
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


class PolicyCheckSerializer(serializers.ModelSerializer):
    """What the enabled policies say about the change; `allowed` is false when a deny policy failed or errored."""

    decision = serializers.IntegerField(source="pk", read_only=True, help_text="The decision recorded.")
    allowed = serializers.BooleanField(read_only=True)
    verdict = serializers.ChoiceField(choices=Verdict.choices, read_only=True)
    results = PolicyResultSerializer(many=True, read_only=True)
    facts = serializers.DictField(read_only=True, help_text="The fact document judged (docs/governance.md).")

    class Meta:
        model = Decision
        fields = ["decision", "allowed", "verdict", "results", "duration_ms", "facts", "created_at"]
        read_only_fields = fields


class PolicyVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_repr", read_only=True, help_text="Who wrote it, or 'policy sync'.")

    class Meta:
        model = PolicyVersion
        fields = ["id", "number", "match", "rule", "message", "message_expression", "action", "author", "created_at"]
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
