from typing import Any

from rest_framework import serializers

from catalog.models import Service
from portal.api import SlugRelatedField
from reviews.models import QUESTIONS, Campaign, Handover, Item
from teams.models import Team


class CampaignSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:review-campaign-detail")
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    scope = serializers.DictField(child=serializers.CharField(), read_only=True)
    questions = serializers.ListField(child=serializers.ChoiceField(choices=list(QUESTIONS)), read_only=True)
    items_total = serializers.IntegerField(source="item_count", read_only=True)
    items_answered = serializers.IntegerField(source="answered_count", read_only=True)

    class Meta:
        model = Campaign
        fields = [
            "url",
            "id",
            "title",
            "kind",
            "status",
            "scope",
            "scope_summary",
            "team",
            "message",
            "questions",
            "due_on",
            "created_by",
            "created_at",
            "closed_at",
            "items_total",
            "items_answered",
        ]
        read_only_fields = fields


class CampaignCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    scope = serializers.DictField(
        child=serializers.CharField(max_length=200, allow_blank=True),
        required=False,
        default=dict,
        help_text="Catalog filters, as on /api/v1/services/: owner, system, tier, lifecycle, tag, stale, golden_path, "
        "verified, q. Empty: every service.",
    )
    due_on = serializers.DateField()
    message = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    questions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(QUESTIONS)), required=False, max_length=len(QUESTIONS)
    )


class ItemSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:review-item-detail")
    service: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    answered_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    answer = serializers.DictField(read_only=True)
    outcome = serializers.ListField(child=serializers.DictField(child=serializers.CharField()), read_only=True)
    overdue = serializers.BooleanField(source="is_overdue", read_only=True)

    class Meta:
        model = Item
        fields = [
            "url",
            "id",
            "campaign",
            "service",
            "team",
            "audience",
            "reason",
            "status",
            "due_on",
            "overdue",
            "answer",
            "comment",
            "outcome",
            "answered_by",
            "answered_at",
            "escalated_at",
            "created_at",
        ]
        read_only_fields = fields


class DetailsSerializer(serializers.Serializer):
    on_call_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    chat_channel = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tier = serializers.ChoiceField(choices=Service.Tier.choices, required=False)
    lifecycle = serializers.ChoiceField(
        choices=[value for value in Service.Lifecycle.values if value not in Service.RETIRING], required=False
    )


class AnswerSerializer(serializers.Serializer):
    ownership = serializers.ChoiceField(choices=["confirm", "handover", "not_ours"], default="confirm")
    handover_to = SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)
    details = DetailsSerializer(required=False, help_text="Only the fields that are wrong, with their right value.")
    runbooks_valid = serializers.BooleanField(required=False, allow_null=True, default=None)
    retire = serializers.BooleanField(required=False, default=False)
    retire_reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    retire_on = serializers.DateField(required=False, allow_null=True, default=None)
    comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class BulkConfirmSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.IntegerField(min_value=1), min_length=1, max_length=1000)
    comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")


class BulkConfirmResultSerializer(serializers.Serializer):
    answered = serializers.ListField(child=serializers.IntegerField(), help_text="The items answered.")
    refused = serializers.DictField(child=serializers.CharField(), help_text="Item id → why it was not answered.")


class HandoverSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:handover-detail")
    service: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    from_team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True
    )
    to_team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    proposed_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Handover
        fields = [
            "url",
            "id",
            "service",
            "from_team",
            "to_team",
            "status",
            "note",
            "item",
            "proposed_by",
            "created_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = fields


class HandoverCreateSerializer(serializers.Serializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    to_team = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
