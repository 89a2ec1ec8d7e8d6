"""An SLO typed in the UI: the OpenSLO document itself, as YAML, checked by the same parser as SLO files."""

from typing import Any

import yaml
from django import forms

from catalog import safe_yaml
from deployments.models import Environment
from monitoring.models import ProbeSource

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


class HealthCheckForm(forms.Form):
    """A health check typed on the service's page; the service function checks what a form cannot (the URL's safety
    rules, a deploy target for replicas, one check per environment) and its errors come back on these fields."""

    environment = forms.ModelChoiceField(
        queryset=Environment.objects.none(), to_field_name="slug", empty_label=None, label="Environment"
    )
    source = forms.ChoiceField(
        label="What to probe",
        choices=[
            (ProbeSource.REPLICAS, "Every replica Runway deployed there (follows each deployment)"),
            (ProbeSource.HTTP, "One URL"),
        ],
        help_text="Replicas are found anew at every probe, at the health and metrics paths their release declares.",
    )
    url = forms.URLField(
        label="URL",
        max_length=2000,
        required=False,
        assume_scheme="https",
        help_text="For one URL: http or https, requested with GET. Leave it empty for the deployed replicas.",
    )
    interval_seconds = forms.IntegerField(label="Every (seconds)", min_value=10, max_value=86_400, initial=60)
    timeout_ms = forms.IntegerField(label="Timeout (ms)", min_value=100, max_value=30_000, initial=5000)
    expected_status = forms.IntegerField(label="Expected status", min_value=100, max_value=599, initial=200)
    body_match = forms.CharField(
        label="Body contains", max_length=200, required=False, help_text="Optional text the answer must contain."
    )
    metrics_path = forms.CharField(
        label="Metrics path",
        max_length=200,
        required=False,
        initial="/metrics",
        help_text="Prometheus page on the URL's host (replicas use their release's own); empty to read no metrics.",
    )
    enabled = forms.BooleanField(label="Probe it (a paused check shows as unknown)", required=False, initial=True)

    def __init__(self, *args: Any, environments: Any, fixed_environment: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["environment"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = environments
        field.disabled = fixed_environment
