from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from portal.api import SlugRelatedField
from teams.models import Membership, Team


class TeamSerializer(serializers.ModelSerializer):
    parent = SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False, allow_null=True)

    class Meta:
        model = Team
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "chat_channel",
            "on_call_url",
            "parent",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance is not None and not isinstance(self.instance, list):
            self.fields["slug"].read_only = True


class MembershipSerializer(serializers.ModelSerializer):
    team = SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    user = SlugRelatedField(slug_field="username", queryset=get_user_model().objects.filter(is_active=True))

    class Meta:
        model = Membership
        fields = ["id", "team", "user", "role", "created_at"]
        read_only_fields = ["created_at"]
        validators: list[Any] = []  # adding an existing member changes their role instead
