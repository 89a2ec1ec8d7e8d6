from django import forms
from django.utils import timezone

from catalog.models import Service
from reviews.models import QUESTIONS
from teams.models import Team


class CampaignForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="For example “Q3 ownership review”.")
    due_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Due on")
    message = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3}), help_text="Shown on every item."
    )
    questions = forms.MultipleChoiceField(
        choices=list(QUESTIONS.items()),
        initial=list(QUESTIONS),
        widget=forms.CheckboxSelectMultiple,
        help_text="Ownership is always asked.",
        required=False,
    )

    def clean_due_on(self):  # type: ignore[no-untyped-def]
        due_on = self.cleaned_data["due_on"]
        if due_on < timezone.localdate():
            raise forms.ValidationError("The due date cannot be in the past.")
        return due_on


OWNERSHIP_CHOICES = [
    ("confirm", "Yes, we still own it"),
    ("handover", "Hand it over to another team"),
    ("not_ours", "It is not ours (the platform admins will find its owner)"),
]


class AnswerForm(forms.Form):
    ownership = forms.ChoiceField(choices=OWNERSHIP_CHOICES, widget=forms.RadioSelect, initial="confirm")
    handover_to = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"), to_field_name="slug", required=False, label="Hand over to"
    )
    on_call_url = forms.URLField(required=False, max_length=500, label="On-call link")
    chat_channel = forms.CharField(required=False, max_length=100, label="Chat channel")
    tier = forms.TypedChoiceField(choices=Service.Tier.choices, coerce=int)
    lifecycle = forms.ChoiceField(
        choices=[(v, label) for v, label in Service.Lifecycle.choices if v not in Service.RETIRING]
    )
    runbooks_valid = forms.BooleanField(required=False, label="The runbooks are still valid (marks them reviewed)")
    retire = forms.BooleanField(required=False, label="Retire this service (opens a decommission request)")
    retire_reason = forms.CharField(required=False, max_length=2000, label="Why retire it")
    retire_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Planned for")
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, service: Service, campaign_questions: list[str], admins: bool = False, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.service = service
        for name in ("on_call_url", "chat_channel", "tier", "lifecycle"):
            self.fields[name].initial = getattr(service, name)
        others = Team.objects.exclude(pk=service.owner_id).order_by("name")
        self.fields["handover_to"].queryset = others  # type: ignore[attr-defined]
        if admins:  # an orphaned service: the admins name its owner
            self.fields["ownership"].choices = [  # type: ignore[attr-defined]
                ("confirm", f"{service.owner} owns it"),
                ("handover", "Another team owns it"),
            ]
        if "details" not in campaign_questions:
            for name in ("on_call_url", "chat_channel", "tier", "lifecycle"):
                del self.fields[name]
        elif service.lifecycle in Service.RETIRING:
            del self.fields["lifecycle"]
        if "runbooks" not in campaign_questions:
            del self.fields["runbooks_valid"]
        if "retire" not in campaign_questions:
            for name in ("retire", "retire_reason", "retire_on"):
                del self.fields[name]

    def clean(self):  # type: ignore[no-untyped-def]
        data = super().clean()
        if data.get("ownership") == "handover" and not data.get("handover_to"):
            self.add_error("handover_to", "Choose the team to hand the service over to.")
        if data.get("retire") and len((data.get("retire_reason") or "").strip()) < 10:
            self.add_error("retire_reason", "Say why it should be retired (at least 10 characters).")
        return data

    def details(self) -> dict[str, object]:
        """The detail fields whose value differs from the catalog's."""
        changes: dict[str, object] = {}
        for name in ("on_call_url", "chat_channel", "tier", "lifecycle"):
            if name in self.cleaned_data and self.cleaned_data[name] != getattr(self.service, name):
                changes[name] = self.cleaned_data[name]
        return changes


class DecisionForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class MoveForm(forms.Form):
    operation = forms.CharField(widget=forms.HiddenInput, initial="move")
    services = forms.ModelMultipleChoiceField(
        queryset=Service.objects.exclude(lifecycle__in=Service.RETIRING).select_related("owner").order_by("name"),
        to_field_name="slug",
        widget=forms.SelectMultiple(attrs={"size": 12}),
        help_text="Hold Ctrl (⌘ on a Mac) to choose several.",
    )
    to_team = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), to_field_name="slug", label="Move to")
    reason = forms.CharField(max_length=500, help_text="For example “Payments split into Payments and Ledger”.")


class MergeForm(forms.Form):
    operation = forms.CharField(widget=forms.HiddenInput, initial="merge")
    source = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), to_field_name="slug", label="Merge team")
    target = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), to_field_name="slug", label="Into team")
    confirm = forms.BooleanField(label="I understand that the merged team is deleted; this cannot be undone.")
