from typing import Any

from rest_framework import serializers

from catalog.models import Service
from flags.models import Flag, FlagChange, FlagKind, FlagRollout, FlagRolloutEvent, FlagSetting, FlagType, Segment
from portal.api import SlugRelatedField, json_nul_errors

VARIANTS_HELP = 'Variant name → value of the flag\'s type, e.g. {"on": true, "off": false}.'
RULES_HELP = (
    'The first rule whose conditions hold decides, e.g. [{"name": "staff", "when": [{"op": "segment", "value": '
    '"internal-staff"}], "variant": "on"}].'
)
ROLLOUT_HELP = 'Percent per variant for everyone no rule matched, summing to 100, e.g. {"on": 10, "off": 90}.'


class _NoNul:
    """JSON values (variants, rules, conditions) take any text, so a NUL character is refused here, naming where it
    is, before PostgreSQL would refuse it."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if errors := json_nul_errors(attrs):
            raise serializers.ValidationError(errors)
        return attrs


class FlagSettingSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.slug", read_only=True)
    rules = serializers.ListField(
        child=serializers.DictField(), help_text="The first rule whose conditions hold decides."
    )
    rollout = serializers.DictField(child=serializers.FloatField(), help_text="Percent per variant; empty: none.")

    class Meta:
        model = FlagSetting
        fields = ["environment", "enabled", "default_variant", "rules", "rollout", "updated_at"]


class FlagSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.slug", read_only=True)
    variants = serializers.DictField(help_text="Variant name → value of the flag's type.")
    settings = FlagSettingSerializer(many=True, read_only=True)

    class Meta:
        model = Flag
        fields = [
            "id",
            "service",
            "key",
            "description",
            "type",
            "variants",
            "kind",
            "temporary",
            "version",
            "settings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class FlagCreateSerializer(_NoNul, serializers.Serializer):
    """A new flag: off in every environment until a setting turns it on."""

    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all(), help_text="The owning service.")
    key = serializers.CharField(max_length=100, help_text="What the code asks for, unique within the service.")
    type = serializers.ChoiceField(choices=FlagType.choices, default=FlagType.BOOLEAN)
    variants = serializers.DictField(required=False, help_text=VARIANTS_HELP + " Absent: a boolean on/off.")
    default_variant = serializers.CharField(
        max_length=100, required=False, help_text="Served when on and no targeting decides; absent: the first."
    )
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=FlagKind.choices, default=FlagKind.RELEASE)
    temporary = serializers.BooleanField(default=True)


class FlagUpdateSerializer(_NoNul, serializers.Serializer):
    """What a flag is; its key and type never change (the code asks by them). Only the fields sent change."""

    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    variants = serializers.DictField(required=False, help_text=VARIANTS_HELP)
    kind = serializers.ChoiceField(choices=FlagKind.choices, required=False)
    temporary = serializers.BooleanField(required=False)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Why, for the history.")


class SettingUpdateSerializer(_NoNul, serializers.Serializer):
    """What one environment serves; only the fields sent change."""

    enabled = serializers.BooleanField(required=False)
    default_variant = serializers.CharField(max_length=100, required=False)
    rules = serializers.ListField(child=serializers.DictField(), required=False, max_length=100, help_text=RULES_HELP)
    rollout = serializers.DictField(
        child=serializers.FloatField(), required=False, help_text=ROLLOUT_HELP + " Empty: the default variant."
    )
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Why, for the history.")


class SegmentSerializer(_NoNul, serializers.ModelSerializer):
    conditions = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=50,
        help_text='All must hold, e.g. [{"attribute": "email", "op": "ends_with", "value": "@example.com"}].',
    )

    class Meta:
        model = Segment
        fields = ["id", "slug", "name", "description", "conditions", "updated_at"]
        read_only_fields = ["id", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["slug"].read_only = True  # rules refer to a segment by its slug


class FlagChangeRequirementSerializer(serializers.Serializer):
    policy = serializers.CharField()
    approvers = serializers.CharField(help_text="owner_leads, team or platform_admins.")
    team = serializers.CharField(help_text="The team's slug when approvers is team.")
    count = serializers.IntegerField()
    message = serializers.CharField()
    by = serializers.ListField(child=serializers.CharField(), help_text="Who approved for it so far.")
    met = serializers.BooleanField()


class FlagChangeSerializer(serializers.ModelSerializer):
    """A production flag change a require_approval policy held: applied once approved."""

    flag = serializers.IntegerField(source="flag_id", read_only=True)
    flag_key = serializers.CharField(source="flag.key", read_only=True)
    service = serializers.CharField(source="flag.service.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    proposed = serializers.DictField(help_text="What it sets: any of enabled, default_variant, rules, rollout.")
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)
    requirements = FlagChangeRequirementSerializer(source="progress", many=True, read_only=True)
    status = serializers.ChoiceField(choices=FlagChange.Status.choices, read_only=True)
    decision = serializers.IntegerField(source="decision_id", read_only=True)

    class Meta:
        model = FlagChange
        fields = [
            "id",
            "flag",
            "flag_key",
            "service",
            "environment",
            "proposed",
            "note",
            "status",
            "reason",
            "requirements",
            "requested_by",
            "decision",
            "expires_at",
            "closed_at",
            "closed_reason",
            "created_at",
        ]
        read_only_fields = fields


class FlagChangeRejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why: the requester reads it on the flag's page.")


class RolloutStartSerializer(serializers.Serializer):
    """A progressive rollout of one variant in one environment (docs/flags.md)."""

    environment = serializers.SlugField(max_length=50, help_text="The environment's slug.")
    variant = serializers.CharField(max_length=100, help_text="The variant to release.")
    steps = serializers.ListField(
        child=serializers.FloatField(), required=False, max_length=20, help_text="Rising percentages ending at 100."
    )
    interval_seconds = serializers.IntegerField(min_value=5, max_value=86_400, default=300)
    metrics_url = serializers.URLField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="The service's Prometheus /metrics there; empty: every replica Runway deployed there.",
    )


class FlagRolloutEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)

    class Meta:
        model = FlagRolloutEvent
        fields = ["at", "level", "message", "actor"]
        read_only_fields = fields


class FlagRolloutSerializer(serializers.ModelSerializer):
    flag = serializers.IntegerField(source="flag_id", read_only=True)
    flag_key = serializers.CharField(source="flag.key", read_only=True)
    service = serializers.CharField(source="flag.service.slug", read_only=True)
    environment = serializers.CharField(source="environment.slug", read_only=True)
    steps = serializers.ListField(child=serializers.FloatField(), read_only=True)
    percent = serializers.FloatField(read_only=True, help_text="The variant's share now.")
    state = serializers.ChoiceField(choices=FlagRollout.State.choices, read_only=True)
    events = FlagRolloutEventSerializer(many=True, read_only=True, help_text="The timeline, oldest first.")

    class Meta:
        model = FlagRollout
        fields = [
            "id",
            "flag",
            "flag_key",
            "service",
            "environment",
            "variant",
            "control",
            "steps",
            "step",
            "percent",
            "interval_seconds",
            "metrics_url",
            "state",
            "message",
            "next_run_at",
            "created_at",
            "finished_at",
            "events",
        ]
        read_only_fields = fields
