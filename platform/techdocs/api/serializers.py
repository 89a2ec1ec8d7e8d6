from typing import Any

from rest_framework import serializers

from catalog.models import Service
from portal.api import SlugRelatedField
from techdocs.models import ADR, Runbook, RunbookVersion


class RunbookSerializer(serializers.ModelSerializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    is_stale = serializers.BooleanField(read_only=True)
    note = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=300)

    class Meta:
        model = Runbook
        fields = [
            "id",
            "service",
            "slug",
            "title",
            "body",
            "review_interval_days",
            "last_reviewed_at",
            "last_reviewed_by",
            "review_due_at",
            "is_stale",
            "version",
            "source_path",
            "created_at",
            "updated_at",
            "note",
        ]
        read_only_fields = [
            "slug",
            "last_reviewed_at",
            "last_reviewed_by",
            "review_due_at",
            "version",
            "source_path",
            "created_at",
            "updated_at",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["service"].read_only = True


class RunbookVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_repr")

    class Meta:
        model = RunbookVersion
        fields = ["number", "title", "body", "author", "note", "created_at"]


class AdrSerializer(serializers.ModelSerializer):
    service = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    superseded_by = serializers.SerializerMethodField()
    supersedes = serializers.IntegerField(
        write_only=True,
        required=False,
        min_value=1,
        help_text="Number of an earlier ADR of the same service this replaces.",
    )

    class Meta:
        model = ADR
        fields = [
            "id",
            "service",
            "number",
            "title",
            "status",
            "date",
            "deciders",
            "context",
            "decision",
            "consequences",
            "body",
            "superseded_by",
            "supersedes",
            "source_path",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["number", "body", "source_path", "created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["service"].read_only = True

    def get_superseded_by(self, adr: ADR) -> int | None:
        return adr.superseded_by.number if adr.superseded_by_id else None  # type: ignore[union-attr]

    def validate_status(self, value: str) -> str:
        if value == ADR.Status.SUPERSEDED:
            raise serializers.ValidationError("An ADR becomes superseded when a newer one says it supersedes it.")
        return value
