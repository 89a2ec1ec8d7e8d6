"""Deploy policies (CEL), their immutable versions, the decisions they made, and the approvals they asked for."""

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from catalog.models import slug_validator
from deployments.models import Deployment


class Action(models.TextChoices):
    DENY = "deny", "Deny"
    REQUIRE_APPROVAL = "require_approval", "Require approval"
    WARN = "warn", "Warn"
    AUDIT = "audit", "Audit (dry run)"


class Approvers(models.TextChoices):
    """Who may approve what a require_approval policy holds; the requester never may."""

    OWNER_LEADS = "owner_leads", "Leads of the owning team"
    TEAM = "team", "Members of a named team"
    PLATFORM_ADMINS = "platform_admins", "Platform admins"


class Policy(models.Model):
    """A named rule for deployments. What it says lives in its versions; `current` is the one that judges.

    `source_path` is empty for a policy edited in the portal, or the file a policy sync read it from; a policy gone
    from its source is disabled and gets `missing_since`, never deleted (decisions refer to its versions)."""

    name = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True, max_length=2000)
    enabled = models.BooleanField(default=True)
    source_path = models.CharField(max_length=1000, blank=True, help_text="Policy file it was synced from, if any.")
    missing_since = models.DateTimeField(null=True, blank=True)
    current = models.ForeignKey(
        "PolicyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("governance:policy-detail", kwargs={"name": self.name})


class PolicyVersion(models.Model):
    """One immutable version of a policy: a decision names the versions that judged it, so they never change."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    match = models.TextField(default="true", help_text="CEL: which changes the policy applies to.")
    rule = models.TextField(help_text="CEL: what must hold for a matching change.")
    message = models.CharField(max_length=500, blank=True)
    message_expression = models.TextField(blank=True, help_text="CEL giving a precise message; wins over `message`.")
    action = models.CharField(max_length=20, choices=Action.choices, default=Action.DENY)
    # require_approval only: how many distinct people, and from whom.
    approvers = models.CharField(max_length=20, choices=Approvers.choices, blank=True)
    approver_team = models.CharField(max_length=100, blank=True, help_text="The team's slug, when approvers is team.")
    approvals_required = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(10)]
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    author_repr = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy__name", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policy_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.number}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Policy versions are immutable: save a new version instead.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def content(self) -> dict[str, Any]:
        """What the version says, as written in a policy file (audit before/after, diffs, change detection)."""
        return content_of(
            match=self.match,
            rule=self.rule,
            message=self.message,
            message_expression=self.message_expression,
            action=self.action,
            approvers=self.approvers,
            approver_team=self.approver_team,
            approvals_required=self.approvals_required,
        )

    def approvers_text(self) -> str:
        return approvers_text(
            {"approvers": self.approvers, "team": self.approver_team, "count": self.approvals_required}
        )


def content_of(
    *,
    match: str,
    rule: str,
    message: str,
    message_expression: str,
    action: str,
    approvers: str = "",
    approver_team: str = "",
    approvals_required: int = 1,
) -> dict[str, Any]:
    """A version's content; the approval fields belong to require_approval policies only (so that the others'
    content, audit trail and diffs say nothing about approvals)."""
    content: dict[str, Any] = {
        "match": match,
        "rule": rule,
        "message": message,
        "message_expression": message_expression,
        "action": action,
    }
    if action == Action.REQUIRE_APPROVAL:
        content |= {
            "approvers": approvers,
            "approver_team": approver_team if approvers == Approvers.TEAM else "",
            "approvals_required": approvals_required,
        }
    return content


def approvers_text(requirement: dict[str, Any]) -> str:
    """“1 approval from a lead of the owning team”, for pages, timelines and emails."""
    count = int(requirement.get("count") or 1)
    plural = "approval" if count == 1 else "approvals"
    whom = {
        Approvers.OWNER_LEADS: "a lead of the owning team" if count == 1 else "leads of the owning team",
        Approvers.TEAM: f"the {requirement.get('team')} team",
        Approvers.PLATFORM_ADMINS: "a platform admin" if count == 1 else "platform admins",
    }.get(requirement.get("approvers", ""), "an eligible approver")
    return f"{count} {plural} from {whom}"


class Verdict(models.TextChoices):
    ALLOW = "allow", "Allowed"
    # A require_approval policy failed and nothing denied: allowed once the approvals it asks for are given.
    APPROVAL = "approval", "Needs approval"
    DENY = "deny", "Denied"


class Decision(models.Model):
    """One evaluation of the enabled policies against one fact document: what was known, who judged, what they said.

    A deployment has at most one: its policy step is judged once, and a retry of that step finds the decision made."""

    deployment = models.OneToOneField(
        Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="policy_decision"
    )
    service_slug = models.CharField(max_length=100, blank=True, db_index=True)
    environment_slug = models.CharField(max_length=50, blank=True)
    facts = models.JSONField(help_text="The fact document the policies saw.")
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    # [{policy, version_id, version, action, outcome, message, error}], one per enabled policy
    results = models.JSONField(default=list)
    duration_ms = models.FloatField(help_text="Time to build the facts and evaluate the policies.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        # Give it to an auditors group: the change evidence of every team (docs/governance.md, "Evidence").
        permissions = [("view_evidence", "Can read the change evidence of the whole organisation")]

    def __str__(self) -> str:
        return f"decision #{self.pk} ({self.verdict})"

    def get_absolute_url(self) -> str:
        return reverse("governance:decision-detail", kwargs={"pk": self.pk})

    @property
    def allowed(self) -> bool:
        return self.verdict == Verdict.ALLOW

    def messages(self, action: str) -> list[str]:
        """The messages of the `action` policies that failed or could not be evaluated."""
        return [r["message"] for r in self.results if r["action"] == action and r["outcome"] in ("fail", "error")]


class FreezeWindow(models.Model):
    """A time when changes are frozen: once (a date range) or recurring (an RFC 5545 RRULE), in a named time zone.

    Times are wall-clock times in `time_zone`: a recurring window from Friday 14:00 to Monday 08:00 keeps those local
    times across a DST change (its length in hours changes instead). Each scope left empty means "every": a window
    with no scope at all is organisation-wide; a filled scope must match (environments AND tiers AND teams AND
    systems, any of each). Freezes are a fact (`freeze` in the fact document); policies decide what a freeze means."""

    name = models.CharField(max_length=100)
    reason = models.TextField(blank=True, max_length=2000, help_text="Why: shown to whoever is refused by it.")
    time_zone = models.CharField(max_length=64, help_text="An IANA time zone such as Europe/Paris.")
    start_date = models.DateField()
    start_time = models.TimeField()
    end_date = models.DateField()
    end_time = models.TimeField()
    recurrence = models.CharField(
        max_length=500,
        blank=True,
        help_text="An RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=FR; empty for a one-off window.",
    )
    environments = models.ManyToManyField("deployments.Environment", blank=True, related_name="+")
    tiers = models.JSONField(default=list, blank=True, help_text="Service tiers (1 to 4); empty for every tier.")
    teams = models.ManyToManyField("teams.Team", blank=True, related_name="+")
    systems = models.ManyToManyField("catalog.System", blank=True, related_name="+")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start_date", "start_time", "name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("governance:freeze-edit", kwargs={"pk": self.pk})

    @property
    def recurring(self) -> bool:
        return bool(self.recurrence)


class ApprovalRequest(models.Model):
    """A deployment parked until enough eligible people approve it: for the require_approval policies its decision
    failed (`requirements` copies what each asked for), or for a break-glass deploy (one platform admin).

    At most one of each kind per deployment. Answers lock the deployment first, then this row, so approvals,
    rejections, expiry and cancellation of one deployment happen one after another."""

    class Kind(models.TextChoices):
        POLICY = "policy", "Deploy policy"
        BREAK_GLASS = "break_glass", "Break-glass"

    class Status(models.TextChoices):
        OPEN = "open", "Waiting"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="approval_requests")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.POLICY)
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="approval_requests"
    )
    # [{policy, version_id, version, approvers, team, count, message}]
    requirements = models.JSONField(default=list)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True, help_text="Why it is asked: the policies' messages, or break-glass reason.")
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "kind"], name="approval_request_one_per_kind"),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="approval_request_open")]

    def __str__(self) -> str:
        return f"approval request #{self.pk} for deployment #{self.deployment_id}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:detail", args=[self.deployment_id]) + "#approval"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def progress(self) -> list[dict[str, Any]]:
        """Each requirement with who approved for it so far: [{..., "by": [usernames], "met", "text"}]. Reads the
        answers through `answers.all()`, so a prefetch serves a whole list."""
        approved = [a for a in self.answers.all() if a.verdict == Approval.Verdict.APPROVE]
        rows = []
        for index, requirement in enumerate(self.requirements):
            by = [a.username for a in approved if index in a.counts_for]
            met = len(by) >= int(requirement["count"])
            rows.append({**requirement, "by": by, "met": met, "text": approvers_text(requirement)})
        return rows


class Approval(models.Model):
    """One person's answer to an approval request: approve, or reject with a reason. Who they were when they
    answered is kept (their roles in the owning team, their teams, admin or not), and which requirements it counts
    for, so later membership changes never rewrite the record."""

    class Verdict(models.TextChoices):
        APPROVE = "approve", "Approved"
        REJECT = "reject", "Rejected"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    reason = models.TextField(blank=True, max_length=2000)
    owner_roles = models.JSONField(default=list)
    teams = models.JSONField(default=list)
    platform_admin = models.BooleanField(default=False)
    counts_for = models.JSONField(default=list, help_text="Indexes of the request's requirements it satisfies.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["request", "user"], name="approval_one_answer_per_person")]

    def __str__(self) -> str:
        return f"{self.username} {self.get_verdict_display().lower()} #{self.request_id}"
