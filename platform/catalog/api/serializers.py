from typing import Any

from rest_framework import serializers

from catalog.models import Dependency, ImportRun, Service, System, Tag
from portal.api import SlugRelatedField
from teams.models import Team


class TagListField(serializers.ListField):
    """Tags as a list of names; reads the (prefetched) many-to-many relation."""

    child = serializers.RegexField(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$", max_length=50)

    def to_representation(self, data: Any) -> list[str]:
        return [tag.name for tag in data.all()]


class SlugIdentityField(serializers.HyperlinkedIdentityField):
    """DRF's link to each row, with one reverse() per page instead of one per row: within a request, two rows' URLs
    differ only by their slug. Falls back to DRF for a slug that reverse() would have to quote."""

    _MARK = "__slug__"
    _PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

    def get_url(self, obj: Any, view_name: str, request: Any, format: Any) -> str | None:  # noqa: A002 - DRF's name
        slug = getattr(obj, self.lookup_field, None)
        if not slug or not set(slug) <= self._PLAIN or request is None:
            return super().get_url(obj, view_name, request, format)  # type: ignore[no-any-return]
        cached = getattr(self, "_around", None)
        if cached is None or cached[0] is not request or cached[1] != format:
            url = self.reverse(view_name, kwargs={self.lookup_url_kwarg: self._MARK}, request=request, format=format)
            before, _, after = url.partition(self._MARK)
            cached = self._around = (request, format, before, after)
        return f"{cached[2]}{slug}{cached[3]}"


class ServiceSerializer(serializers.ModelSerializer):
    owner = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    system = SlugRelatedField(slug_field="slug", queryset=System.objects.all(), required=False, allow_null=True)
    tags = TagListField(required=False, max_length=30)
    url = SlugIdentityField(view_name="api:service-detail", lookup_field="slug")
    # Kept by ownership reviews (reviews.Ownership, docs/reviews.md); null when never verified or not orphaned.
    ownership_verified_at = serializers.DateTimeField(source="ownership.verified_at", read_only=True, allow_null=True)
    ownership_verified_by = serializers.CharField(
        source="ownership.verified_by_repr", read_only=True, allow_null=True, help_text="A username."
    )
    orphaned_since = serializers.DateTimeField(source="ownership.orphaned_since", read_only=True, allow_null=True)

    class Meta:
        model = Service
        fields = [
            "url",
            "id",
            "slug",
            "name",
            "description",
            "owner",
            "system",
            "lifecycle",
            "tier",
            "language",
            "repository_url",
            "docs_url",
            "dashboard_url",
            "chat_channel",
            "on_call_url",
            "tags",
            "golden_path",
            "golden_path_version",
            "ownership_verified_at",
            "ownership_verified_by",
            "orphaned_since",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["golden_path", "golden_path_version", "created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            # The slug is the service's identity and the owner moves only through the transfer action.
            self.fields["slug"].read_only = True
            self.fields["owner"].read_only = True


class TransferSerializer(serializers.Serializer):
    new_owner = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    note = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class SystemSerializer(serializers.ModelSerializer):
    owner = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = System
        fields = ["id", "slug", "name", "description", "owner", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["slug"].read_only = True
            self.fields["owner"].read_only = True


class DependencySerializer(serializers.ModelSerializer):
    source = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())
    target = SlugRelatedField(slug_field="slug", queryset=Service.objects.all())

    class Meta:
        model = Dependency
        fields = ["id", "source", "target", "kind", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []  # duplicates and self-dependencies are refused by the service, as field errors

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("source") and attrs.get("source") == attrs.get("target"):
            raise serializers.ValidationError({"target": "A service cannot depend on itself."})
        return attrs


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["name"]


class ImportRunSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "source_name",
            "filename",
            "status",
            "report",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ImportSerializer(serializers.Serializer):
    archive = serializers.FileField(help_text="A .zip, .tar or .tar.gz of a catalog folder.")
    source = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,150}$",
        required=False,
        help_text="Name of the source; re-importing under the same name updates it.",
    )


class ExportQuerySerializer(serializers.Serializer):
    team = serializers.SlugField(required=False, help_text="Only this team's services (its slug).")
    service = serializers.SlugField(required=False, help_text="Only this service (its slug).")
