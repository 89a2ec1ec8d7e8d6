from rest_framework import serializers

from deployments.models import Environment


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "slug", "name", "order", "protected", "description"]
