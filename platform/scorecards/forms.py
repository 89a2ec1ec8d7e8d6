"""The scorecard editor's form: the scorecard as YAML, read exactly as a scorecard file is."""

from typing import Any

import yaml
from django import forms

from governance import sync as governed
from scorecards.models import Scorecard

MAX_CHARS = 200_000


class ScorecardForm(forms.Form):
    text = forms.CharField(
        label="Scorecard (YAML)",
        max_length=MAX_CHARS,
        help_text="The same format as a scorecard file (docs/scorecards.md): name, title, filter, levels with rules, "
        "and tests that must pass before it is saved.",
        widget=forms.Textarea(attrs={"rows": 30, "class": "mono", "spellcheck": "false", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, scorecard: Scorecard | None = None, **kwargs: Any) -> None:
        if scorecard is not None:
            kwargs.setdefault("initial", {"text": yaml.safe_dump(scorecard.definition, sort_keys=False, width=110)})
        super().__init__(*args, **kwargs)

    def clean_text(self) -> dict[str, Any]:
        """The one scorecard the text holds; a YAML or shape error is a field error saying what to fix."""
        report = governed.Report()
        items = governed.text_documents(
            self.cleaned_data["text"], "editor", report, plural="scorecards", noun="scorecard"
        )
        if report.errors:
            raise forms.ValidationError([message for _file, _name, message in report.errors])
        if len(items) != 1:
            raise forms.ValidationError(f"Write exactly one scorecard here; this text has {len(items)}.")
        return items[0]


class InitiativeForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="A slug for its address, for example tier-1-silver-march.")
    title = forms.CharField(max_length=200, help_text="For example: every tier-1 service at Silver by 31 March.")
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    scorecard = forms.ModelChoiceField(queryset=Scorecard.objects.filter(enabled=True), to_field_name="name")
    target_rank = forms.TypedChoiceField(
        label="Level to reach", coerce=int, required=False, empty_value=None, choices=[("", "—")],
        help_text="A level of the scorecard; or leave it empty and name rules below.",
    )  # fmt: skip
    rule_keys = forms.CharField(
        label="Or: rules to pass", required=False, max_length=2000,
        help_text="Rule keys of the scorecard, separated by commas or spaces (instead of a level).",
    )  # fmt: skip
    tier = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                  choices=[("", "Any tier"), (1, "1"), (2, "2"), (3, "3"), (4, "4")])  # fmt: skip
    owner = forms.CharField(required=False, max_length=100, label="Team (slug)", help_text="Only this team's services.")
    system = forms.CharField(required=False, max_length=100, label="System (slug)")
    tag = forms.CharField(required=False, max_length=50)
    lifecycle = forms.CharField(required=False, max_length=20)
    deadline = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ranks = {0: "—"}
        for card in Scorecard.objects.filter(enabled=True):
            for rank, level in enumerate(card.levels, start=1):
                ranks.setdefault(rank, level["name"])
                if ranks[rank] != level["name"]:
                    ranks[rank] = f"level {rank}"
        field = self.fields["target_rank"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "—")] + [(rank, name) for rank, name in ranks.items() if rank]

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        scope = {key: data[key] for key in ("owner", "system", "tag", "lifecycle", "tier") if data.get(key)}
        return {
            "name": data["name"],
            "title": data["title"],
            "description": data["description"],
            "scorecard": data["scorecard"],
            "target_rank": data["target_rank"] or 0,
            "rule_keys": data["rule_keys"].replace(",", " ").split(),
            "scope": scope,
            "deadline": data["deadline"],
        }
