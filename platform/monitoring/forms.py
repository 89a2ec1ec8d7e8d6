"""An SLO typed in the UI: the OpenSLO document itself, as YAML, checked by the same parser as SLO files."""

from typing import Any

import yaml
from django import forms

from catalog import safe_yaml

MAX_YAML = 20_000

EXAMPLE = """apiVersion: openslo/v1
kind: SLO
metadata:
  name: {service}-availability
  displayName: Requests that succeed
spec:
  service: {service}
  indicator:
    metadata:
      name: {service}-probes
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: RunwayProbe
            spec:
              environment: production
        total:
          metricSource:
            type: RunwayProbe
            spec:
              environment: production
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.995
"""


class SloForm(forms.Form):
    document = forms.CharField(
        label="OpenSLO document (YAML)",
        max_length=MAX_YAML,
        widget=forms.Textarea(attrs={"rows": 28, "class": "mono", "spellcheck": "false"}),
        help_text="One apiVersion: openslo/v1, kind: SLO document; docs/monitoring.md lists what Runway reads.",
    )

    def clean_document(self) -> Any:
        text = self.cleaned_data["document"]
        if "\x00" in text:
            raise forms.ValidationError("The document contains a NUL character; remove it.")
        try:
            # An alias lets a small text stand for an enormous document (the "billion laughs"); SLOs never need one.
            if "*" in text and any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=safe_yaml.Loader)):
                raise forms.ValidationError("YAML aliases (*name) are not allowed; write the values out.")
            documents = [d for d in yaml.load_all(text, Loader=safe_yaml.Loader) if d is not None]
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise forms.ValidationError(f"This is not valid YAML{where}: {problem}.") from error
        if len(documents) != 1:
            raise forms.ValidationError("Write exactly one document (one SLO).")
        return documents[0]
