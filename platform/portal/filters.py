"""Filter pieces shared by the apps' FilterSets (pages and API alike)."""

from datetime import UTC, datetime
from typing import Any

import django_filters
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
