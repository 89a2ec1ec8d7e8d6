from django import forms

from accounts.services import MAX_LIFETIME_DAYS


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, for example 'deploy script'.")
    lifetime_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        initial=90,
        choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (MAX_LIFETIME_DAYS, "1 year")],
    )
