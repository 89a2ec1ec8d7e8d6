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
