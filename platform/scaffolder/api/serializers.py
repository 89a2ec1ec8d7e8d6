from typing import Any

from rest_framework import serializers

from catalog.models import Service, System
from portal.api import SlugRelatedField
from scaffolder.models import GoldenPathUpdate, ScaffoldRun
from teams.models import Team


class GoldenPathSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField()
    version = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    parameters = serializers.JSONField(source="schema")
    steps = serializers.SerializerMethodField()

    def get_steps(self, path: Any) -> list[dict[str, Any]]:
        return [{"title": step.title, "fields": list(step.fields)} for step in path.steps]


class ScaffoldRequestSerializer(serializers.Serializer):
    golden_path = serializers.CharField(max_length=100)
    answers = serializers.DictField(help_text="Answers to the golden path's parameters.")
    owner = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    system = SlugRelatedField(slug_field="slug", queryset=System.objects.all(), required=False, allow_null=True)
    # Checked by the service (length, control characters), with the wizard's messages.
    display_name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="The new service's name as people read it (e.g. Ledger API); empty, it is made from answers.name.",
    )


class ScaffoldRunSerializer(serializers.ModelSerializer):
    owner: Any = SlugRelatedField(slug_field="slug", read_only=True)
    system: Any = SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    service: Any = SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    requested_by = serializers.CharField(source="requested_by.username")

    class Meta:
        model = ScaffoldRun
        fields = [
            "uuid",
            "golden_path",
            "golden_path_version",
            "answers",
            "display_name",
            "owner",
            "system",
            "requested_by",
            "status",
            "steps",
            "error",
            "service",
            "repository_url",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class GoldenPathUpdateRequestSerializer(serializers.Serializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())


class GoldenPathUpdateSerializer(serializers.ModelSerializer):
    service: Any = SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username")
    merged_by = serializers.CharField(source="merged_by.username", default=None, allow_null=True)
    conflicted = serializers.ListField(child=serializers.CharField(), read_only=True)
    # Empty on the local publisher: a read-only model field would be documented as a URI, which "" is not.
    change_request_url = serializers.URLField(read_only=True, allow_blank=True)

    class Meta:
        model = GoldenPathUpdate
        fields = [
            "uuid",
            "service",
            "golden_path",
            "from_version",
            "to_version",
            "branch",
            "change_request_url",
            "base_sha",
            "head_sha",
            "status",
            "steps",
            "files",
            "conflicted",
            "diff",
            "diff_truncated",
            "error",
            "requested_by",
            "created_at",
            "finished_at",
            "merged_by",
            "merged_at",
        ]
        read_only_fields = fields


class GoldenPathUpdateListSerializer(GoldenPathUpdateSerializer):
    """An update in a list: everything but its diff (read one update for that), which the list does not load."""

    class Meta(GoldenPathUpdateSerializer.Meta):
        fields = [name for name in GoldenPathUpdateSerializer.Meta.fields if name != "diff"]
        read_only_fields = fields
