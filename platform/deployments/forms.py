"""The deploy form on a service: environment (among the service's deploy targets), commit or tag, strategy."""

from typing import Any

from django import forms

from deployments.models import Environment, Strategy


class DeployForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), empty_label=None)
    ref = forms.CharField(
        label="Commit or tag",
        max_length=100,
        help_text="A tag (v1.2.0), a branch (main) or a commit sha from the service's repository.",
        widget=forms.TextInput(attrs={"list": "refs", "autocomplete": "off", "spellcheck": "false"}),
    )
    strategy = forms.ChoiceField(
        choices=[("", "The environment's default")] + list(Strategy.choices),
        required=False,
        help_text="Canary shifts traffic in steps with an analysis at each; blue-green switches all at once.",
    )

    def __init__(self, *args: Any, environments: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments  # type: ignore[attr-defined]


class DecommissionForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why it is retired and what replaces it; it stays on the service's record.",
    )
    planned_for = forms.DateField(
        label="Planned date",
        # ISO, whatever the locale: a date input shows nothing for any other format (en-gb would give 29/11/2026).
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The day it stops. Approval before then schedules the work for that day.",
    )
