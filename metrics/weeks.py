"""ISO weeks in the project's time zone: parsing, bounds and days."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

_PATTERN = re.compile(r"([0-9]{4})-W([0-9]{2})")


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO 8601 week, such as 2026-W48 (Monday to Sunday)."""

    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """Returns the week written as YYYY-Www; raises ValueError otherwise."""
        match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise ValueError("Expected an ISO week such as 2026-W48.")
        year, week = int(match[1]), int(match[2])
        # Years 1 and 9999 are out: their first or last week's bounds overflow datetime.
        if not 1 < year < 9999:
            raise ValueError("Expected a year from 0002 to 9998.")
        if not 1 <= week <= weeks_in_year(year):
            raise ValueError(f"{year} has no week {week}.")
        return cls(year, week)

    @classmethod
    def of(cls, moment: datetime | date) -> IsoWeek:
        """Returns the week holding `moment`; a datetime is read in settings.TIME_ZONE."""
        if isinstance(moment, datetime):
            moment = timezone.localtime(moment, timezone.get_default_timezone()).date()
        year, week, _ = moment.isocalendar()
        return cls(year, week)

    @classmethod
    def current(cls) -> IsoWeek:
        """Returns this week, in settings.TIME_ZONE."""
        return cls.of(timezone.now())

    @property
    def monday(self) -> date:
        """Returns the week's first day."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def days(self) -> list[date]:
        """Returns the seven days, Monday to Sunday."""
        return [self.monday + timedelta(days=i) for i in range(7)]

    def bounds(self, tz: ZoneInfo | None = None) -> tuple[datetime, datetime]:
        """Returns [start, end) as aware datetimes: local midnight to the next Monday's."""
        tz = tz or timezone.get_default_timezone()
        start = datetime.combine(self.monday, time(), tzinfo=tz)
        end = datetime.combine(self.monday + timedelta(days=7), time(), tzinfo=tz)
        return start, end

    def shift(self, weeks: int) -> IsoWeek:
        """Returns the week `weeks` later (or earlier, when negative)."""
        return IsoWeek.of(self.monday + timedelta(weeks=weeks))

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.week:02d}"


def weeks_in_year(year: int) -> int:
    """Returns 52 or 53: the ISO week of December 28th."""
    return date(year, 12, 28).isocalendar()[1]
