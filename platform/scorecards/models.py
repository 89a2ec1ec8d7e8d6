"""Scorecards: levels of rules (CEL over a service's fact document), each service's score, and a day-by-day history."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from catalog.models import Service, slug_validator


class Scorecard(models.Model):
    """A standard services are graded against: levels (Bronze, Silver, Gold...) of rules, and which services it scores.

    What it says is `definition`, the scorecard as written in its file (levels, rules, filters, tests), checked before
    it is saved; `source_path` is the scorecard file it was synced from, empty for one written in the portal. One gone
    from its files is disabled and gets `missing_since`, never deleted (its history stays readable)."""

    name = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=2000)
    enabled = models.BooleanField(default=True)
    definition = models.JSONField(help_text="Levels, rules and filters, as written in the scorecard file.")
    digest = models.CharField(max_length=64, editable=False)
    source_path = models.CharField(max_length=1000, blank=True, help_text="Scorecard file it was synced from, if any.")
    missing_since = models.DateTimeField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "name"]

    def __str__(self) -> str:
        return self.title or self.name

    def get_absolute_url(self) -> str:
        return reverse("scorecards:scorecard-detail", kwargs={"name": self.name})

    @property
    def levels(self) -> list[dict]:
        return list(self.definition.get("levels", []))

    def level_name(self, rank: int) -> str:
        """The name of level `rank` (1 is the first level); empty for 0, no level reached."""
        levels = self.levels
        return levels[rank - 1]["name"] if 0 < rank <= len(levels) else ""

    def rules(self) -> dict[str, dict]:
        """Every rule by key, each with the rank and name of its level."""
        found = {}
        for rank, level in enumerate(self.levels, start=1):
            for rule in level["rules"]:
                found[rule["key"]] = {**rule, "rank": rank, "level": level["name"]}
        return found


class Score(models.Model):
    """Where one service stands on one scorecard now: the highest level whose rules (and all below) it passes.

    `failing` lists every rule it does not pass, at any level, with the error for a rule that could not be evaluated:
    an error counts as failing and says why. A service out of a scorecard's scope has no score."""

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="scores")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="scores")
    rank = models.PositiveSmallIntegerField(default=0, help_text="0: no level reached; 1: the first level...")
    level = models.CharField(max_length=50, blank=True)
    failing = models.JSONField(default=list)  # [{"rule": key, "error": "" or why it could not be evaluated}]
    passed = models.PositiveSmallIntegerField(default=0)
    total = models.PositiveSmallIntegerField(default=0)
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scorecard", "service"], name="score_unique_service")]
        indexes = [models.Index(fields=["scorecard", "rank"], name="score_scorecard_rank")]

    def __str__(self) -> str:
        return f"{self.service_id} on {self.scorecard_id}: {self.level or 'no level'}"


class ScoreDay(models.Model):
    """The level one service held on one scorecard at the end of a day (the organisation's days): the trend charts.

    Written with every scoring of the day, so the last one that day stands."""

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="days")
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="score_days")
    day = models.DateField()
    rank = models.PositiveSmallIntegerField(default=0)
    level = models.CharField(max_length=50, blank=True)
    failing = models.JSONField(default=list, help_text="Keys of the rules it failed (an initiative's burn-up).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scorecard", "service", "day"], name="score_day_unique")]
        indexes = [models.Index(fields=["scorecard", "day"], name="score_day_scorecard_day")]

    def __str__(self) -> str:
        return f"{self.service_id} on {self.scorecard_id} {self.day}: {self.level or 'no level'}"


class Initiative(models.Model):
    """A campaign of standards: the services in `scope` that a scorecard scores must reach `target_rank` on it (or
    pass every rule of `rule_keys`) by `deadline`. Progress is read from the scores; the owning teams' leads and
    maintainers are reminded; when it ends, `report` records who made it."""

    name = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=2000)
    scorecard = models.ForeignKey(Scorecard, on_delete=models.PROTECT, related_name="initiatives")
    target_rank = models.PositiveSmallIntegerField(
        default=0, help_text="The level to reach (1 is the first); 0 when the target is a set of rules."
    )
    rule_keys = models.JSONField(default=list, blank=True, help_text="The rules to pass, when the target is rules.")
    scope = models.JSONField(
        default=dict, blank=True, help_text="Catalog filters: owner, system, tier, lifecycle, tag."
    )
    deadline = models.DateField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True, help_text="Who made it, written when the initiative ends.")

    class Meta:
        ordering = ["deadline", "name"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("scorecards:initiative-detail", kwargs={"name": self.name})

    @property
    def target_text(self) -> str:
        if self.target_rank:
            return f"{self.scorecard.level_name(self.target_rank) or f'level {self.target_rank}'} on {self.scorecard}"
        return f"{len(self.rule_keys)} rule{'s' if len(self.rule_keys) != 1 else ''} of {self.scorecard}"

    def met(self, *, rank: int, failing: list) -> bool:
        """Whether a score (its rank and failing rules, as stored) meets this initiative's target."""
        if self.target_rank:
            return rank >= self.target_rank
        failed = {item["rule"] if isinstance(item, dict) else item for item in failing}
        return not failed.intersection(self.rule_keys)


class InitiativeReminder(models.Model):
    """One reminder to one team about one initiative on one day: the unique row is how a send is claimed, so that any
    number of beat or worker processes send it once."""

    initiative = models.ForeignKey(Initiative, on_delete=models.CASCADE, related_name="reminders")
    team = models.ForeignKey("teams.Team", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    services = models.PositiveIntegerField(default=0, help_text="Services not there yet, named in the reminder.")
    recipients = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["initiative", "team", "day"], name="initiative_reminder_once_per_day")
        ]

    def __str__(self) -> str:
        return f"reminder of {self.initiative_id} to team {self.team_id} on {self.day}"
