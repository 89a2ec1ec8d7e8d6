"""Forms for incidents: declare or edit one, post an update, link a deployment."""

import re
from typing import Any

from django import forms
from django.contrib.auth.models import User

from catalog.models import Service
from incidents.models import Incident, IncidentDeployment, Postmortem, Severity, Status
from teams.models import Team

SLUGS = re.compile(r"[\s,]+")


class IncidentForm(forms.ModelForm):
    """Title, severity, affected services (slugs), commander (a username), start and summary."""

    service_slugs = forms.CharField(
        label="Affected services",
        max_length=2000,
        help_text="Service slugs, separated by commas or spaces, e.g. payments-api, checkout-web.",
    )
    commander_name = forms.CharField(
        label="Commander", max_length=150, required=False, help_text="A username; empty means you."
    )
    started_at = forms.DateTimeField(
        label="Started",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="When users began to be hurt (UTC); empty means now.",
    )

    class Meta:
        model = Incident
        fields = ["title", "severity", "summary"]
        widgets = {"summary": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["severity"].choices = Severity.choices  # type: ignore[attr-defined]
        if self.instance.pk:
            self.fields["service_slugs"].initial = ", ".join(sorted(s.slug for s in self.instance.services.all()))
            if self.instance.commander:
                self.fields["commander_name"].initial = self.instance.commander.get_username()
            self.fields["started_at"].initial = self.instance.started_at

    def clean_service_slugs(self) -> list[Service]:
        slugs = [slug for slug in SLUGS.split(self.cleaned_data["service_slugs"]) if slug]
        if not slugs:
            raise forms.ValidationError("Name at least one affected service.")
        if len(slugs) > 50:
            raise forms.ValidationError("Name at most 50 services; declare the incident on the systems' key services.")
        found = {service.slug: service for service in Service.objects.filter(slug__in=slugs)}
        missing = [slug for slug in slugs if slug not in found]
        if missing:
            raise forms.ValidationError(f"No service called {', '.join(missing[:5])}; check the slugs in the catalog.")
        return list({slug: found[slug] for slug in slugs}.values())

    def clean_commander_name(self) -> User | None:
        name = self.cleaned_data["commander_name"].strip()
        if not name:
            return None
        user = User.objects.filter(username=name, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user called {name!r}.")
        return user


class UpdateForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Keep the status"), *Status.choices])
    message = forms.CharField(
        label="Update",
        max_length=10000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What was learnt or done; it goes on the timeline.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("message") or "").strip() and not data.get("status"):
            raise forms.ValidationError("Write what changed, or choose a new status.")
        return data


class LinkForm(forms.Form):
    deployment = forms.IntegerField(label="Deployment number", min_value=1, max_value=2**62)
    relation = forms.ChoiceField(label="It", choices=IncidentDeployment.Relation.choices)


class ReceiverForm(forms.Form):
    name = forms.SlugField(
        label="Receiver name", max_length=50, help_text="As in alertmanager.yml's receivers, e.g. runway-production."
    )

    def clean_name(self) -> str:
        from incidents.models import AlertReceiver

        name = self.cleaned_data["name"]
        if AlertReceiver.objects.filter(name=name).exists():
            raise forms.ValidationError(f"There is a receiver called {name} already; revoke it or pick another name.")
        return name


class PostmortemForm(forms.ModelForm):
    class Meta:
        model = Postmortem
        fields = ["summary", "impact", "timeline", "contributing_factors", "went_well"]
        labels = {"went_well": "What went well"}
        help_texts = {
            "summary": "What happened, in a few sentences. Markdown.",
            "impact": "Who was hurt, how much and for how long.",
            "timeline": "Filled in from the incident and the deployments around it; correct and complete it.",
            "contributing_factors": "Conditions, systems and gaps, never a person's name as a cause: "
            "ask what made the mistake possible and what would have caught it.",
        }
        widgets = {name: forms.Textarea(attrs={"rows": 6}) for name in fields}


class LessonForm(forms.Form):
    text = forms.CharField(label="Lesson", max_length=2000, help_text="One thing learnt, in a sentence.")


class ActionForm(forms.Form):
    title = forms.CharField(label="Action", max_length=300)
    owner_team = forms.ModelChoiceField(
        label="Owner team", queryset=Team.objects.order_by("name"), to_field_name="slug"
    )
    due_date = forms.DateField(label="Due", widget=forms.DateInput(attrs={"type": "date"}))
