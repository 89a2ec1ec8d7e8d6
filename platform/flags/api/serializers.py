from rest_framework import serializers

from flags.models import Flag, FlagSetting


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
