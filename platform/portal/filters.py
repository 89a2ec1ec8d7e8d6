"""Filter pieces shared by the apps' FilterSets (pages and API alike)."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import django_filters
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC. Python accepts UTC offsets up to ±23:59 and PostgreSQL only up to
    ±15:59, so `2026-01-01T00:00-19:00` passed on as it came would be refused by the database (a 500); the same
    instant in UTC is a value PostgreSQL takes."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None or parsed.tzinfo is None:
            return parsed
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+15:00 is before the first instant Python can hold in UTC
            raise ValidationError("This date and time is out of range.", code="overflow") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


def query_param(params: Any, name: str, default: str = "") -> str:
    """A query parameter a page reads by hand (a search box, a slug to preselect), safe to put in a query.

    PostgreSQL text cannot hold a NUL character, so a value with one would be refused by the database (a 500). No
    stored value can contain one either, so each NUL becomes U+FFFD, the replacement character: the value still
    matches nothing (an empty result, as it should) and the page shows it back with the bad character visible.
    """
    value = params.get(name, default)
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else default


# Day ranges: a board shows what happened from one calendar day to another, in the portal's time zone (Insights'
# windows, when they are in that zone, link to the board with the same days).
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)


class DayField(forms.DateField):
    """A calendar day (YYYY-MM-DD) between 2000 and 2100: outside those years no record exists, and the day after
    9999-12-31 cannot even be computed."""

    widget = forms.DateInput(attrs={"type": "date"})

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value and not FIRST_DAY <= value <= LAST_DAY:
            raise ValidationError("Give a day between 2000-01-01 and 2100-12-31.", code="out_of_range")


class DayFilter(django_filters.DateFilter):
    field_class = DayField


def day_start(day: date) -> datetime:
    """The first instant of `day` in the portal's time zone."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(settings.TIME_ZONE))


def day_end(day: date) -> datetime:
    """The first instant after `day` in the portal's time zone."""
    return day_start(day + timedelta(days=1))


def day_range_check(cleaned: dict[str, Any], form: forms.Form) -> None:
    """A range whose last day comes before its first is a mistake, said on the `until` field."""
    since, until = cleaned.get("since"), cleaned.get("until")
    if since and until and until < since:
        form.add_error("until", "The last day comes before the first.")


class DayRangeForm(forms.Form):
    """From and to (both optional, inclusive), for a page that filters by hand rather than with a FilterSet."""

    since = DayField(required=False, label="From")
    until = DayField(required=False, label="To")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        day_range_check(cleaned, self)
        return cleaned
