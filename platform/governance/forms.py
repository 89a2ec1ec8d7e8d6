"""The policy editor's form: each expression is compiled and checked against the fact document as it is typed."""

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from catalog.models import Service, System
from deployments.models import Environment
from governance import expressions, freezes
from governance.models import Action, Approvers, FreezeWindow, Policy
from portal.forms import InlineValidationMixin
from teams.models import Team

EXPRESSION = {"class": "mono", "spellcheck": "false", "autocomplete": "off"}


class PolicyForm(InlineValidationMixin, forms.Form):
    name = forms.SlugField(max_length=100, help_text="A slug, for example staging-before-production.")
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    match = forms.CharField(
        initial="true",
        help_text="CEL: which changes the policy applies to, for example change.environment.protected.",
        widget=forms.Textarea(attrs={"rows": 2, **EXPRESSION}),
    )
    rule = forms.CharField(
        help_text="CEL: what must hold for a matching change, for example 'staging' in change.succeeded_in.",
        widget=forms.Textarea(attrs={"rows": 3, **EXPRESSION}),
    )
    message = forms.CharField(required=False, max_length=500, help_text="Shown when the rule does not hold.")
    message_expression = forms.CharField(
        required=False,
        help_text="CEL giving a precise message instead, for example change.version + ' is not in staging yet'.",
        widget=forms.Textarea(attrs={"rows": 2, **EXPRESSION}),
    )
    action = forms.ChoiceField(choices=Action.choices, initial=Action.DENY)
    approvers = forms.ChoiceField(
        required=False,
        choices=[("", "–"), *Approvers.choices],
        help_text="Require approval only: who may approve (never the requester).",
    )
    approver_team = forms.SlugField(
        required=False, max_length=100, help_text="When approvers is a named team: its slug, e.g. release-managers."
    )
    approvals_required = forms.IntegerField(
        required=False, min_value=1, max_value=10, initial=1, help_text="Require approval only: distinct approvers."
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, policy: Policy | None = None, **kwargs: Any) -> None:
        if policy is not None and policy.current is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": policy.name,
                    "description": policy.description,
                    "enabled": policy.enabled,
                    **policy.current.content(),
                },
            )
        super().__init__(*args, **kwargs)
        self.policy = policy
        if policy is not None:
            self.fields["name"].disabled = True  # decisions cite policies by name

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if self.policy is None and Policy.objects.filter(name=name).exists():
            raise ValidationError("A policy with this name exists; edit it instead.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            expressions.version_check(
                match=data.get("match", "") or "true",
                rule=data.get("rule", ""),
                message=data.get("message", ""),
                message_expression=data.get("message_expression", ""),
                action=data.get("action", ""),
                approvers=data.get("approvers", "") or "",
                approver_team=data.get("approver_team", "") or "",
                approvals_required=data.get("approvals_required") or 1,
            )
            if data.get("action") == Action.REQUIRE_APPROVAL:
                from governance import services

                services.approver_team_check(
                    {"approvers": data.get("approvers", ""), "approver_team": data.get("approver_team", "")}
                )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                if field in self.fields and field not in self.errors:
                    self.add_error(field, messages)
        data["approvals_required"] = data.get("approvals_required") or 1
        return data


class FreezeWindowForm(InlineValidationMixin, forms.Form):
    """A freeze window: its times on its own time zone's clock, an optional RRULE, and whom it applies to."""

    name = forms.CharField(max_length=100, help_text="For example Weekend freeze, or Year-end freeze.")
    reason = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Shown with the freeze."
    )
    time_zone = forms.CharField(
        max_length=64, help_text="An IANA time zone; the times below are read on its clock (DST included)."
    )
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="The (first) start.")
    start_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    end_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="The (first) end.")
    end_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"))
    recurrence = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"class": "mono", "spellcheck": "false", "autocomplete": "off"}),
        help_text="Empty for once; an RFC 5545 RRULE to repeat, e.g. FREQ=WEEKLY;BYDAY=FR (every week from the "
        "start above to the end above, shifted by a week each time).",
    )
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.order_by("order", "name"),
        required=False,
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every environment.",
    )
    tiers = forms.TypedMultipleChoiceField(
        choices=Service.Tier.choices,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every tier.",
    )
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.order_by("name"), required=False, to_field_name="slug", help_text="None: every team."
    )
    systems = forms.ModelMultipleChoiceField(
        queryset=System.objects.order_by("name"), required=False, to_field_name="slug", help_text="None: every system."
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, window: FreezeWindow | None = None, **kwargs: Any) -> None:
        if window is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": window.name,
                    "reason": window.reason,
                    "time_zone": window.time_zone,
                    "start_date": window.start_date,
                    "start_time": window.start_time,
                    "end_date": window.end_date,
                    "end_time": window.end_time,
                    "recurrence": window.recurrence,
                    "environments": list(window.environments.all()),
                    "tiers": window.tiers,
                    "teams": list(window.teams.all()),
                    "systems": list(window.systems.all()),
                    "enabled": window.enabled,
                },
            )
        else:
            kwargs.setdefault("initial", {"time_zone": settings.GOVERNANCE["ORG_TIME_ZONE"], "enabled": True})
        super().__init__(*args, **kwargs)

    def clean_time_zone(self) -> str:
        name: str = self.cleaned_data["time_zone"].strip()
        try:
            freezes.zone(name)
        except ValueError as error:
            raise ValidationError(str(error)) from None
        return name

    def clean_recurrence(self) -> str:
        try:
            return freezes.recurrence_normalise(self.cleaned_data["recurrence"])
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        needed = ("time_zone", "start_date", "start_time", "end_date", "end_time")
        if all(data.get(name) is not None for name in needed):
            times = freezes.Times(
                time_zone=data["time_zone"],
                start=datetime.combine(data["start_date"], data["start_time"]),
                end=datetime.combine(data["end_date"], data["end_time"]),
                recurrence=data.get("recurrence") or "",
            )
            for name, message in times.check().items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, message)
        return data


class EvidenceForm(forms.Form):
    """The evidence report's scope and period: a service, or a team, or (neither) everything the reader may see.

    The lists offer what the reader may see; a slug typed into the address is still checked (another team's is a 403,
    an unknown one a field error) by `evidence.scope_resolve`."""

    team = forms.SlugField(required=False, widget=forms.Select, help_text="Every service the team owns.")
    service = forms.SlugField(required=False, widget=forms.Select, help_text="One service (wins over the team).")
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="From (incl.).")
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="To (incl.).")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from governance import evidence

        teams = Team.objects.order_by("name")
        services = Service.objects.order_by("slug")
        everything = "Every team" if evidence.sees_organisation(user) else "All my teams"
        if not evidence.sees_organisation(user):
            teams = teams.filter(memberships__user=user)
            services = services.filter(owner__memberships__user=user)
        slugs = services.values_list("slug", flat=True)
        self.fields["team"].widget.choices = [("", everything), *teams.values_list("slug", "name")]  # type: ignore[attr-defined]
        self.fields["service"].widget.choices = [("", "Every service"), *((slug, slug) for slug in slugs)]  # type: ignore[attr-defined]
