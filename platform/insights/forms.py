"""The question the Insights pages, the CSV and the API answer: which scope, which days, which environments.

One form checks it for all three, so a bad scope, window, range, environment or time zone gets the same message
everywhere (a form error on the page, a 400 from the API).
"""

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from deployments.models import Environment
from insights import selectors

WINDOWS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
MAX_RANGE_DAYS = 3 * 366
# Dates outside these years are typing mistakes, and year 9999's last day has no next midnight to end on.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2100, 12, 31)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def environment_choices() -> list[tuple[str, str]]:
    return [("", "Production (protected environments)")] + list(
        Environment.objects.order_by("order", "name").values_list("slug", "name")
    )


@dataclass(frozen=True)
class Question:
    scope: selectors.Scope
    window: selectors.Window
    environments: list[Environment]
    environment: str  # the slug asked for, or "" for the protected environments


class InsightsForm(forms.Form):
    scope = forms.CharField(
        required=False, max_length=120, help_text="org, team:<slug>, system:<slug> or service:<slug>"
    )
    window = forms.ChoiceField(
        required=False,
        choices=[
            ("7d", "Last 7 days"),
            ("30d", "Last 30 days"),
            ("90d", "Last 90 days"),
            ("365d", "Last 365 days"),
            ("", "From and to below"),
        ],
        help_text="Whole days up to today; empty is the last 30 days.",
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    environment = forms.ChoiceField(required=False, choices=environment_choices)
    tz = forms.CharField(required=False, max_length=64, label="Time zone")

    def __init__(self, data: Any, *, scope: selectors.Scope | None = None) -> None:
        if not any(data.get(name) for name in ("window", "since", "until")):
            # The default window, written into the question so the page's select shows the window it answers for.
            data = data.copy()
            data["window"] = "30d"
        super().__init__(data)
        self.fixed_scope = scope
        self.fields["tz"].widget.attrs["placeholder"] = settings.TIME_ZONE
        if scope is not None:
            del self.fields["scope"]

    def clean_scope(self) -> selectors.Scope:
        try:
            return selectors.scope_find(self.cleaned_data["scope"])
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def clean_tz(self) -> zoneinfo.ZoneInfo:
        name = self.cleaned_data["tz"] or settings.TIME_ZONE
        if name not in _zones():
            raise ValidationError(f"{name!r} is not a time zone; give an IANA name such as Europe/Paris or UTC.")
        return zoneinfo.ZoneInfo(name)

    def _check_date(self, name: str) -> None:
        value = self.cleaned_data.get(name)
        if value is not None and not FIRST_DATE <= value <= LAST_DATE:
            self.add_error(name, f"Give a date between {FIRST_DATE} and {LAST_DATE}.")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        self._check_date("since")
        self._check_date("until")
        if self.errors:
            return data
        zone = data["tz"]
        since, until = data.get("since"), data.get("until")
        if since or until:
            if data.get("window"):
                raise ValidationError("Give a window or a range (since and until), not both.")
            if not (since and until):
                raise ValidationError("A range needs both since and until.")
            if until < since:
                raise ValidationError("The range ends before it starts: until must be on or after since.")
            if (until - since).days + 1 > MAX_RANGE_DAYS:
                raise ValidationError(f"A range is at most {MAX_RANGE_DAYS} days.")
            data["window_obj"] = selectors.Window(since, until, zone, f"{since}..{until}")
        else:
            today = timezone.now().astimezone(zone).date()
            data["window_obj"] = selectors.window_last(WINDOWS[data.get("window") or "30d"], zone=zone, today=today)
        slug = data.get("environment")
        data["environments"] = list(Environment.objects.filter(slug=slug)) if slug else selectors.environments_default()
        return data

    def question(self) -> Question:
        """The checked question; call after is_valid()."""
        data = self.cleaned_data
        scope = self.fixed_scope or data["scope"]
        return Question(scope, data["window_obj"], data["environments"], data.get("environment") or "")
