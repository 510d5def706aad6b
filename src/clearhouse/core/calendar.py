"""Business-day calendar: weekends skipped, holidays configurable, T+N arithmetic.

Dates are ``datetime.date`` at the edges and int day numbers (days since 1970-01-01) inside
vectorised code. Imports nothing else of clearhouse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

EPOCH = dt.date(1970, 1, 1)


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01."""
    return (day - EPOCH).days


def from_day_number(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(n))


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Weekdays minus the listed holidays.

    Attributes:
        holidays: dates that are not business days although they fall on a weekday.
    """

    holidays: frozenset[dt.date] = field(default_factory=frozenset)

    @classmethod
    def of(cls, holidays: Iterable[dt.date] = ()) -> BusinessCalendar:
        return cls(frozenset(holidays))

    def is_business_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self.holidays

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th business day after ``day`` (n = 0: ``day`` itself if a business day, else the next)."""
        current = day
        while not self.is_business_day(current):
            current += dt.timedelta(days=1)
        for _ in range(n):
            current += dt.timedelta(days=1)
            while not self.is_business_day(current):
                current += dt.timedelta(days=1)
        return current

    def business_days(self, start: dt.date, end: dt.date) -> Iterator[dt.date]:
        """Business days from ``start`` to ``end`` inclusive."""
        current = start
        while current <= end:
            if self.is_business_day(current):
                yield current
            current += dt.timedelta(days=1)

    def business_mask(self, day_numbers: np.ndarray) -> np.ndarray:
        """Vectorised ``is_business_day`` over int day numbers."""
        days = np.asarray(day_numbers, dtype=np.int64)
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (weekday 3)
        mask = weekday < 5
        if self.holidays:
            hol = np.array([day_number(h) for h in self.holidays], dtype=np.int64)
            mask &= ~np.isin(days, hol)
        return mask

    def add_business_days_vec(self, day_numbers: np.ndarray, n: int) -> np.ndarray:
        """Vectorised ``add_business_days`` through a lookup over the covered date range."""
        days = np.asarray(day_numbers, dtype=np.int64)
        if days.size == 0:
            return days.copy()
        lo, hi = int(days.min()), int(days.max()) + 7 * (n + 2) + 14 + len(self.holidays)
        span = np.arange(lo, hi + 1, dtype=np.int64)
        biz = span[self.business_mask(span)]
        # index of the first business day >= d, then n further
        idx = np.searchsorted(biz, days, side="left") + n
        return biz[idx]
