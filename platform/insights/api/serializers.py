"""The DORA figures of one scope as the API shows them (read-only: nothing here is ever written)."""

from rest_framework import serializers

from insights.bands import BAND_LABELS

BAND_CHOICES = list(BAND_LABELS)


class ScopeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["org", "team", "system", "service"])
    slug = serializers.CharField(help_text="Empty for the organisation.")
    name = serializers.CharField()


class WindowSerializer(serializers.Serializer):
    first_day = serializers.DateField()
    last_day = serializers.DateField(help_text="Inclusive.")
    days = serializers.IntegerField()
    time_zone = serializers.CharField()


class FrequencySerializer(serializers.Serializer):
    per_day = serializers.FloatField(allow_null=True, help_text="Successful deployments per day; null: none at all.")
    per_week = serializers.FloatField(allow_null=True)
    share_of_days = serializers.FloatField(allow_null=True, help_text="Share of days with a successful deployment.")
    band = serializers.ChoiceField(choices=BAND_CHOICES)


class LeadTimeSerializer(serializers.Serializer):
    median_seconds = serializers.FloatField(allow_null=True, help_text="First commit of the change set to success.")
    p90_seconds = serializers.FloatField(allow_null=True)
    measured = serializers.IntegerField(
        help_text="Successful deployments that shipped new commits with a recorded change set (those measured)."
    )
    band = serializers.ChoiceField(choices=BAND_CHOICES)


class RateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="A fraction from 0 to 1; null: no deployments.")
    band = serializers.ChoiceField(choices=BAND_CHOICES, allow_null=True, help_text="Null where DORA has no bands.")


class RecoverySerializer(serializers.Serializer):
    median_seconds = serializers.FloatField(allow_null=True)
    p90_seconds = serializers.FloatField(allow_null=True)
    recovered = serializers.IntegerField()
    not_recovered = serializers.IntegerField()
    band = serializers.ChoiceField(choices=BAND_CHOICES)


class WeekSerializer(serializers.Serializer):
    week_start = serializers.DateField(help_text="The Monday that starts the week, in the window's time zone.")
    days = serializers.IntegerField(help_text="Days of this week inside the window.")
    deployments = serializers.IntegerField()
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    rework = serializers.IntegerField()
    change_fail_rate = serializers.FloatField(allow_null=True)
    rework_rate = serializers.FloatField(allow_null=True)
    recovery_median_seconds = serializers.FloatField(allow_null=True)
    lead_time_median_seconds = serializers.FloatField(allow_null=True)


class DoraSerializer(serializers.Serializer):
    scope = ScopeSerializer()
    window = WindowSerializer()
    environments = serializers.ListField(child=serializers.CharField(), help_text="The environments counted.")
    band_table = serializers.CharField(help_text="The table the bands come from.")
    deployments = serializers.IntegerField(help_text="Deployments with an outcome: succeeded or failed.")
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    rework = serializers.IntegerField()
    deployment_frequency = FrequencySerializer()
    lead_time = LeadTimeSerializer()
    change_fail_rate = RateSerializer()
    recovery_time = RecoverySerializer()
    rework_rate = RateSerializer()
    weekly = WeekSerializer(many=True)
