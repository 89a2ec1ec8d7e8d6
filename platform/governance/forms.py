"""The policy editor's form: each expression is compiled and checked against the fact document as it is typed."""

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from governance import expressions
from governance.models import Action, Policy
from portal.forms import InlineValidationMixin

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
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                if field in self.fields and field not in self.errors:
                    self.add_error(field, messages)
        return data
