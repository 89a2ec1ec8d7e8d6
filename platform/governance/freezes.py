"""Freeze windows in time: validating a window's times and recurrence, and finding its occurrences.

Nothing here touches the database. A window's times are wall-clock times in its own time zone; each occurrence is
placed on the local calendar first and converted to UTC last, so a recurring window keeps its local start and end
across a DST change. A local time that does not exist (the hour skipped in spring) takes effect at the same offset as
before the change, that is one hour later on the clock; a local time that happens twice (autumn) means its first
occurrence.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dateutil import rrule

# Sub-hourly rules would make thousands of occurrences a week for nothing a person means by a freeze.
_FREQUENCIES = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")
_PART = re.compile(r"^[A-Z]+=[A-Z0-9,+\-:]+$")
_KEYS = ("FREQ", "INTERVAL", "BYDAY", "BYMONTH", "BYMONTHDAY", "UNTIL", "COUNT", "WKST")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# A rule found through its occurrences is bounded: no freeze window asks for more than this many in 8 weeks.
MAX_OCCURRENCES = 500


@functools.cache
def time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The named zone; ValueError for a name that is not in the IANA database (never a path to a file)."""
    if name not in time_zones():
        raise ValueError(f"{name!r} is not a time zone; use an IANA name such as Europe/Paris or America/New_York.")
    return zoneinfo.ZoneInfo(name)


def recurrence_normalise(text: str) -> str:
    """The RRULE's parts in upper case, without an `RRULE:` prefix; ValueError says what to fix."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        return ""
    if "\n" in text or "\r" in text:
        raise ValueError("Write one RRULE on one line, for example FREQ=WEEKLY;BYDAY=FR.")
    parts = [part.strip().upper() for part in text.split(";") if part.strip()]
    for part in parts:
        if not _PART.match(part):
            raise ValueError(f"{part!r} is not an RRULE part; parts look like FREQ=WEEKLY or BYDAY=FR,SA.")
        key, value = part.split("=", 1)
        if key == "DTSTART":
            raise ValueError("Leave DTSTART out: the window's start date and time are the first occurrence.")
        if key not in _KEYS:
            raise ValueError(f"{key} is not supported in a freeze window's RRULE; use {', '.join(_KEYS)}.")
        if key == "INTERVAL" and not (value.isdigit() and 1 <= int(value) <= 1000):
            raise ValueError("INTERVAL must be a whole number from 1 to 1000.")
        if key == "COUNT" and not (value.isdigit() and 1 <= int(value) <= 100000):
            raise ValueError("COUNT must be a whole number from 1 to 100000.")
    frequencies = [part.split("=", 1)[1] for part in parts if part.startswith("FREQ=")]
    if len(frequencies) != 1:
        raise ValueError("An RRULE needs exactly one FREQ, for example FREQ=WEEKLY;BYDAY=FR.")
    if frequencies[0] not in _FREQUENCIES:
        raise ValueError(f"FREQ={frequencies[0]} is not allowed for a freeze; use one of {', '.join(_FREQUENCIES)}.")
    _never_check(dict(part.split("=", 1) for part in parts))
    # UNTIL is read on the window's own clock, like its start: a trailing Z (UTC) would not compare with it.
    return ";".join(part[:-1] if part.startswith("UNTIL=") and part.endswith("Z") else part for part in parts)


def _never_check(parts: dict[str, str]) -> None:
    """Refuse a day of the month that no chosen month has (Feb 30): such a rule would be searched until year 9999."""
    if "BYMONTHDAY" not in parts:
        return
    try:
        days_ = [abs(int(day)) for day in parts["BYMONTHDAY"].split(",")]
        months = [int(month) for month in parts["BYMONTH"].split(",")] if "BYMONTH" in parts else list(range(1, 13))
    except ValueError:
        raise ValueError("BYMONTHDAY and BYMONTH take numbers, for example BYMONTH=12;BYMONTHDAY=24,25.") from None
    if any(not 1 <= month <= 12 for month in months) or any(not 1 <= day <= 31 for day in days_):
        raise ValueError("BYMONTH takes 1 to 12 and BYMONTHDAY 1 to 31 (or -1 to -31 from the month's end).")
    if not any(day <= _MONTH_DAYS[month - 1] for day in days_ for month in months):
        raise ValueError("This RRULE never occurs: no chosen month has that day.")


def _rule(recurrence: str, start: datetime) -> rrule.rrule:
    try:
        parsed = rrule.rrulestr(recurrence, dtstart=start)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"This RRULE does not parse: {error}.") from None
    if not isinstance(parsed, rrule.rrule):  # an rruleset (several rules): one rule is all a window has
        raise ValueError("Write a single RRULE.")
    return parsed


@dataclass(frozen=True)
class Times:
    """What a window says about time, apart from the database row (validated, shared by forms, API and facts)."""

    time_zone: str
    start: datetime  # naive, local to time_zone
    end: datetime  # naive, local
    recurrence: str = ""

    @classmethod
    def of(cls, window: Any) -> Times:
        return cls(
            time_zone=window.time_zone,
            start=datetime.combine(window.start_date, window.start_time),
            end=datetime.combine(window.end_date, window.end_time),
            recurrence=window.recurrence,
        )

    @property
    def length(self) -> timedelta:
        """Wall-clock length: each occurrence ends this long after it starts on the local clock."""
        return self.end - self.start

    def check(self) -> dict[str, str]:
        """Field errors (field → message), empty when the window is usable."""
        errors: dict[str, str] = {}
        try:
            zone(self.time_zone)
        except ValueError as error:
            errors["time_zone"] = str(error)
        if self.end <= self.start:
            errors["end_time"] = "The window must end after it starts."
        if self.recurrence:
            try:
                normal = recurrence_normalise(self.recurrence)
                rule = _rule(normal, self.start)
                first = rule.after(self.start, inc=True)
            except ValueError as error:
                errors["recurrence"] = str(error)
            except (IndexError, TypeError, OverflowError) as error:  # dateutil's word on an impossible BYDAY
                errors["recurrence"] = f"This RRULE cannot be used: {error or type(error).__name__}."
            else:
                if first is None:
                    errors["recurrence"] = "This RRULE never occurs from the window's start; check UNTIL and COUNT."
                elif not errors.get("end_time"):
                    second = rule.after(first)
                    if second is not None and second < first + self.length:
                        errors["end_time"] = (
                            f"Each occurrence lasts {self.length}, longer than the {second - first} between two "
                            "occurrences; shorten the window or repeat it less often."
                        )
        return errors

    def occurrences(self, since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
        """The (start, end) pairs, aware in UTC, of occurrences that overlap [since, until) (both aware)."""
        tz = zone(self.time_zone)
        length = self.length

        def aware(local: datetime) -> datetime:
            return local.replace(tzinfo=tz).astimezone(UTC)

        if not self.recurrence:
            starts = [self.start]
        else:
            # Local naive bounds, widened by a day either side of any UTC offset and by one occurrence's length.
            low = since.astimezone(tz).replace(tzinfo=None) - length - timedelta(days=1)
            high = until.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
            starts = []
            rule = _rule(recurrence_normalise(self.recurrence), self.start)
            for found in rule.xafter(max(low, self.start), inc=True):
                if found > high or len(starts) >= MAX_OCCURRENCES:
                    break
                starts.append(found)
        found_pairs = [(aware(start), aware(start + length)) for start in starts]
        return [(start, end) for start, end in found_pairs if start < until and end > since]

    def in_force(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in force at `at` (aware), or None."""
        for start, end in self.occurrences(at, at + timedelta(microseconds=1)):
            if start <= at < end:
                return start, end
        return None


def local_text(moment: datetime, time_zone: str) -> str:
    """`2026-12-07 08:00 Europe/London`: a moment as a person in that zone reads it."""
    return f"{moment.astimezone(zone(time_zone)):%Y-%m-%d %H:%M} {time_zone}"


def days(first: date, weeks: int) -> list[date]:
    return [first + timedelta(days=offset) for offset in range(weeks * 7)]


def day_bounds(day: date, tz: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """A local calendar day as an aware [start, end) (23 or 25 hours long on a DST change)."""
    start = datetime.combine(day, time(0)).replace(tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0)).replace(tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)
