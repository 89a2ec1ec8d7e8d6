"""Flag forms. Rules, rollouts, variants and segment conditions are typed as JSON: the services check their meaning
(flags/services.py) and their ValidationError lands on the field it names."""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from deployments.models import Environment
from flags.models import FlagKind, FlagType

MAX_JSON = 64_000


class JsonText(forms.CharField):
    """JSON typed in a textarea. Refuses what PostgreSQL or the parser cannot take (NUL, deep nesting) as a field
    error instead of a 500; `empty` is what a blank box means."""

    widget = forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"})

    def __init__(self, *, empty: Any = None, **kwargs: Any) -> None:
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", MAX_JSON)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text.strip():
            return self.empty
        if "\\u0000" in text:
            raise ValidationError("JSON text cannot contain NUL characters (\\u0000).")
        try:
            return json.loads(text)
        except RecursionError:
            raise ValidationError("This JSON is nested too deeply.") from None
        except ValueError as error:
            raise ValidationError(f"This is not valid JSON: {error}.") from None


def json_initial(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value not in (None, [], {}) else ""


class FlagCreateForm(forms.Form):
    key = forms.CharField(
        max_length=100, help_text="What the code asks for, e.g. new-checkout. Lowercase, digits, . _ -"
    )
    type = forms.ChoiceField(choices=FlagType.choices, initial=FlagType.BOOLEAN)
    variants = JsonText(
        empty=None,
        help_text='Variant name → value of the flag\'s type, e.g. {"on": true, "off": false} or '
        '{"blue": "#00f", "red": "#f00"}. Blank gives a boolean flag on/off.',
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
    )
    default_variant = forms.CharField(
        max_length=100,
        required=False,
        help_text="Served when the flag is on and no targeting decides. Blank: the first.",
    )
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))
    kind = forms.ChoiceField(choices=FlagKind.choices, initial=FlagKind.RELEASE)
    temporary = forms.BooleanField(
        required=False, initial=True, help_text="Release and experiment flags are meant to be removed once settled."
    )


class SettingForm(forms.Form):
    default_variant = forms.ChoiceField(choices=())
    rules = JsonText(
        empty=[],
        help_text='A list; the first rule whose conditions all hold decides, e.g. [{"name": "staff", "when": '
        '[{"op": "segment", "value": "internal-staff"}], "variant": "on"}]. Blank: no targeting.',
    )
    rollout = JsonText(
        empty={},
        help_text='Percent per variant for everyone no rule matched, summing to 100, e.g. {"on": 10, "off": 90}. '
        "Blank: the default variant.",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
    )
    note = forms.CharField(max_length=200, required=False, help_text="Why, for the history (optional).")

    def __init__(self, *args: Any, variants: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["default_variant"].choices = [(name, name) for name in variants]  # type: ignore[attr-defined]


class PreviewForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("order"), to_field_name="slug")
    targeting_key = forms.CharField(
        max_length=200, required=False, label="targetingKey", help_text="Who is asking, e.g. a user id."
    )
    attributes = JsonText(
        empty={},
        label="Attributes",
        help_text='The rest of the evaluation context, e.g. {"country": "DE", "email": "ana@example.com"}.',
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono", "spellcheck": "false"}),
    )

    def clean_attributes(self) -> dict[str, Any]:
        attributes = self.cleaned_data["attributes"]
        if not isinstance(attributes, dict):
            raise ValidationError("Attributes are a JSON object: name → value.")
        return attributes  # type: ignore[no-any-return]


class SdkKeyForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("order"), to_field_name="slug")
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. checkout-web production.")


class SegmentForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=100, help_text='What rules name: {"op": "segment", "value": "<slug>"}.')
    description = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    conditions = JsonText(
        empty=[],
        required=True,
        help_text='All must hold, e.g. [{"attribute": "email", "op": "ends_with", "value": "@example.com"}].',
    )


class RolloutForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.order_by("order"), to_field_name="slug")
    variant = forms.ChoiceField(choices=(), help_text="The variant to release, step by step.")
    steps = forms.CharField(
        max_length=200, initial="1, 10, 50, 100", help_text="Percentages, rising, ending at 100 (comma-separated)."
    )
    interval_seconds = forms.IntegerField(
        min_value=5, max_value=86_400, initial=300, label="Seconds per step", help_text="How long each step bakes."
    )
    metrics_url = forms.URLField(
        max_length=500,
        required=False,
        label="Metrics URL",
        help_text="The service's Prometheus /metrics in that environment (http_requests_total, ideally labelled "
        "with flag and variant). Leave it empty where Runway deploys the service: every replica is read.",
    )

    def __init__(self, *args: Any, variants: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["variant"].choices = [(name, name) for name in variants]  # type: ignore[attr-defined]

    def clean_steps(self) -> list[float]:
        try:
            return [float(part) for part in self.cleaned_data["steps"].replace(" ", "").split(",") if part]
        except ValueError:
            raise ValidationError(
                "Write the percentages as numbers separated by commas, e.g. 1, 10, 50, 100."
            ) from None
