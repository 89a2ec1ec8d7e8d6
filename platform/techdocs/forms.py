from typing import Any

from django import forms

from portal.forms import InlineValidationMixin
from techdocs import markdown
from techdocs.models import ADR, Runbook


def _markdown_clean(text: str) -> str:
    """The limits rendering applies (size, nesting...), as a field error before anything is saved."""
    try:
        markdown.limits_check(text=text)
    except markdown.LimitError as error:
        raise forms.ValidationError(str(error), code="markdown_limit") from error
    return text


class RunbookForm(InlineValidationMixin, forms.ModelForm):
    note = forms.CharField(required=False, max_length=300, help_text="What changed, for the history.")

    class Meta:
        model = Runbook
        fields = ["title", "review_interval_days", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 24, "class": "mono"})}
        labels = {"review_interval_days": "Review every (days)", "body": "Markdown"}

    def clean_body(self) -> str:
        return _markdown_clean(self.cleaned_data["body"])


class AdrForm(InlineValidationMixin, forms.ModelForm):
    supersedes = forms.ModelChoiceField(
        queryset=ADR.objects.none(),
        required=False,
        help_text="An earlier decision this one replaces; it becomes superseded.",
    )

    class Meta:
        model = ADR
        fields = ["title", "status", "date", "deciders", "context", "decision", "consequences"]
        widgets = {
            "date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),  # ISO: a date input reads no other
            "context": forms.Textarea(attrs={"rows": 6}),
            "decision": forms.Textarea(attrs={"rows": 6}),
            "consequences": forms.Textarea(attrs={"rows": 6}),
        }

    def __init__(self, *args: Any, candidates: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        status: Any = self.fields["status"]
        status.choices = [c for c in ADR.Status.choices if c[0] != ADR.Status.SUPERSEDED]
        if candidates is not None:
            self.fields["supersedes"].queryset = candidates  # type: ignore[attr-defined]
        else:
            del self.fields["supersedes"]

    def clean_context(self) -> str:
        return _markdown_clean(self.cleaned_data["context"])

    def clean_decision(self) -> str:
        return _markdown_clean(self.cleaned_data["decision"])

    def clean_consequences(self) -> str:
        return _markdown_clean(self.cleaned_data["consequences"])
