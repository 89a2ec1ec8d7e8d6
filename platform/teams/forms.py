from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from portal.forms import InlineValidationMixin
from teams.models import Membership, Team


class TeamForm(InlineValidationMixin, forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name", "slug", "description", "chat_channel", "on_call_url", "parent"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["slug"].disabled = True
            self.fields["parent"].queryset = Team.objects.exclude(pk=self.instance.pk)  # type: ignore[attr-defined]


class MembershipForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"There is no active user called “{username}”.")
        return user
