from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from scorecards.models import Initiative, Score, Scorecard, ScoreDay


class RuleSerializer(serializers.Serializer):
    key = serializers.SlugField()
    name = serializers.CharField()
    rule = serializers.CharField(help_text="CEL over the service's fact document (docs/governance.md).")
    why = serializers.CharField()
    fix = serializers.CharField(help_text="How to fix a service that fails it.")


class LevelSerializer(serializers.Serializer):
    name = serializers.CharField()
    rules = RuleSerializer(many=True)


class ScorecardSerializer(serializers.ModelSerializer):
    """A scorecard with its levels, lowest first; a service reaches a level when it passes its rules and those below."""

    filter = serializers.SerializerMethodField(help_text="CEL: which services it scores (with catalog_filter).")
    catalog_filter = serializers.SerializerMethodField(help_text="Catalog filters (owner, system, tier...).")
    levels = serializers.SerializerMethodField()

    class Meta:
        model = Scorecard
        fields = ["name", "title", "description", "enabled", "filter", "catalog_filter", "levels", "source_path",
                  "missing_since", "created_at", "updated_at"]  # fmt: skip
        read_only_fields = fields

    def get_filter(self, scorecard: Scorecard) -> str:
        return str(scorecard.definition.get("filter", "true"))

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_catalog_filter(self, scorecard: Scorecard) -> dict[str, str]:
        return dict(scorecard.definition.get("catalogFilter") or {})

    @extend_schema_field(LevelSerializer(many=True))
    def get_levels(self, scorecard: Scorecard) -> list[dict[str, Any]]:
        return scorecard.levels


class FailingSerializer(serializers.Serializer):
    rule = serializers.SlugField(help_text="The rule's key.")
    name = serializers.CharField()
    level = serializers.CharField(help_text="The level the rule belongs to.")
    fix = serializers.CharField()
    error = serializers.CharField(allow_blank=True, help_text="Why it could not be evaluated; empty when it failed.")


class ScoreSerializer(serializers.ModelSerializer):
    """Where a service stands on a scorecard now."""

    scorecard = serializers.CharField(source="scorecard.name", read_only=True, help_text="The scorecard's name.")
    service = serializers.CharField(source="service.slug", read_only=True, help_text="The service's slug.")
    team = serializers.CharField(source="service.owner.slug", read_only=True, help_text="The owning team's slug.")
    level = serializers.CharField(allow_blank=True, read_only=True, help_text="Empty when no level is reached.")
    failing = serializers.SerializerMethodField()

    class Meta:
        model = Score
        fields = ["id", "scorecard", "service", "team", "level", "rank", "passed", "total", "failing", "scored_at"]
        read_only_fields = fields

    @extend_schema_field(FailingSerializer(many=True))
    def get_failing(self, score: Score) -> list[dict[str, str]]:
        rules = score.scorecard.rules()
        found = []
        for item in score.failing:
            rule = rules.get(item["rule"])
            if rule is not None:
                found.append({"rule": item["rule"], "name": rule["name"], "level": rule["level"], "fix": rule["fix"],
                              "error": item["error"]})  # fmt: skip
        return found


class ScoreDaySerializer(serializers.ModelSerializer):
    """The level a service held on a scorecard at the end of a day (the organisation's days)."""

    scorecard = serializers.CharField(source="scorecard.name", read_only=True, help_text="The scorecard's name.")
    service = serializers.CharField(source="service.slug", read_only=True, help_text="The service's slug.")
    level = serializers.CharField(allow_blank=True, read_only=True, help_text="Empty when no level was reached.")

    class Meta:
        model = ScoreDay
        fields = ["id", "scorecard", "service", "day", "level", "rank"]
        read_only_fields = fields


class TeamProgressSerializer(serializers.Serializer):
    team = serializers.CharField(source="team_slug", help_text="The team's slug.")
    name = serializers.CharField(source="team_name")
    total = serializers.IntegerField(help_text="Its services in scope.")
    met = serializers.IntegerField(help_text="Of which at the target.")


class InitiativeSerializer(serializers.ModelSerializer):
    """A campaign of standards: a scorecard level (target_rank) or some of its rules, for a scope, by a deadline.

    On creation (platform admins) give either target_rank or rule_keys; scope takes the catalog filters owner, system,
    tier, lifecycle and tag."""

    scorecard = serializers.SlugRelatedField(slug_field="name", queryset=Scorecard.objects.all())
    rule_keys = serializers.ListField(child=serializers.SlugField(), required=False, max_length=60)
    scope = serializers.DictField(child=serializers.CharField(max_length=100), required=False)
    target = serializers.CharField(source="target_text", read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Initiative
        fields = ["name", "title", "description", "scorecard", "target_rank", "rule_keys", "target", "scope",
                  "deadline", "created_at", "ended_at", "progress", "report"]  # fmt: skip
        read_only_fields = ["created_at", "ended_at", "report"]
        extra_kwargs: dict[str, Any] = {"name": {"validators": []}}  # the service says when a name is taken

    @extend_schema_field(
        {"type": "object", "properties": {
            "total": {"type": "integer"}, "met": {"type": "integer"},
            "teams": {"type": "array", "items": {"type": "object", "properties": {
                "team": {"type": "string"}, "name": {"type": "string"},
                "total": {"type": "integer"}, "met": {"type": "integer"}}}}}}
    )  # fmt: skip
    def get_progress(self, initiative: Initiative) -> dict[str, Any]:
        from scorecards import selectors

        progress = selectors.initiative_progress(initiative=initiative)
        teams = TeamProgressSerializer(progress.teams, many=True).data
        return {"total": progress.total, "met": progress.met, "teams": teams}
