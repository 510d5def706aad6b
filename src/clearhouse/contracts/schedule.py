"""Swap calculation schedules, day count fractions and period amounts, built with QuantLib.

What lives here: the mapping of CDM business centres, business-day conventions and day count
fraction names to QuantLib calendars, conventions and day counters; :func:`periods`, which turns
one leg of :class:`~clearhouse.contracts.cdm.SwapTerms` into its calculation periods (dates,
fixing date, notional after amortisation, day count fraction, fixed amount); and the exact
amount arithmetic (:func:`accrual_minor`, :func:`floating_amount`). No date, calendar or day
count rule is written here: QuantLib generates and adjusts every date and counts every day.

Where a CDM document leaves a date rule's business centres out (the public samples drop the
fixing centres their FpML names), the rule is completed conservatively: a fixing offset without
centres counts on the fixing calendar of its floating rate option (:data:`INDEX_FIXING_CALENDARS`:
London days for LIBOR, TARGET for EURIBOR...), else on the reset dates' centres. Unresolved
references are refused, never guessed.

Numbers:

* Day count fractions are exact :class:`fractions.Fraction`. For conventions with a fixed basis
  (ACT/360, ACT/365.FIXED, 30/360, 30E/360, 30E/360.ISDA) the fraction is QuantLib's day count
  over the basis. For ACT/ACT (ISDA, AFB) it is QuantLib's year fraction, whose exact value is a
  ratio with a denominator dividing 365 x 366; that ratio is recovered from the float and checked.
* Amounts are integer minor units: notional x rate x fraction, computed exactly and rounded once
  to the nearest minor unit, half a unit away from zero (ISDA 2006 Definitions, section 8.1(c):
  currency amounts rounded to the nearest unit, one half unit rounded up; away from zero keeps a
  reversed payment the exact mirror of the original). Rates are not rounded: the oracle supplies
  them at their published precision.

Imports QuantLib, the standard library, ``clearhouse.core`` and ``clearhouse.contracts.cdm``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

import QuantLib as ql

from clearhouse.contracts.cdm import (
    DateAdjustments,
    Offset,
    ResetTerms,
    Stub,
    SwapLeg,
    SwapTerms,
    Tenor,
)
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.money import minor_digits

#: CDM business centre code to the QuantLib calendar of its business days.
BUSINESS_CENTER_CALENDARS: dict[str, Callable[[], ql.Calendar]] = {
    "GBLO": lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement),
    "USNY": lambda: ql.UnitedStates(ql.UnitedStates.Settlement),
    "USGS": lambda: ql.UnitedStates(ql.UnitedStates.GovernmentBond),
    "EUTA": ql.TARGET,
    "DEFR": lambda: ql.Germany(ql.Germany.Settlement),
    "FRPA": lambda: ql.France(ql.France.Settlement),
    "ITMI": lambda: ql.Italy(ql.Italy.Settlement),
    "CHZU": ql.Switzerland,
    "JPTO": ql.Japan,
    "AUSY": lambda: ql.Australia(ql.Australia.Settlement),
    "CATO": lambda: ql.Canada(ql.Canada.Settlement),
    "SEST": ql.Sweden,
    "NOOS": ql.Norway,
    "DKCO": ql.Denmark,
    "NZAU": lambda: ql.NewZealand(ql.NewZealand.Auckland),
    "NZWE": lambda: ql.NewZealand(ql.NewZealand.Wellington),
}

#: Fixing calendars of floating rate options, by option name prefix, for fixing offsets that
#: name no business centres: LIBOR fixes on London days, EURIBOR and euro short-term rates on
#: TARGET days, SOFR on its publication calendar, SONIA on London days.
INDEX_FIXING_CALENDARS: tuple[tuple[str, Callable[[], ql.Calendar]], ...] = (
    ("USD-SOFR", lambda: ql.UnitedStates(ql.UnitedStates.SOFR)),
    ("GBP-SONIA", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
    ("EUR-EURIBOR", ql.TARGET),
    ("EUR-EuroSTR", ql.TARGET),
    ("EUR-EONIA", ql.TARGET),
    ("USD-LIBOR", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
    ("EUR-LIBOR", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
    ("GBP-LIBOR", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
    ("CHF-LIBOR", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
    ("JPY-LIBOR", lambda: ql.UnitedKingdom(ql.UnitedKingdom.Settlement)),
)

#: CDM business-day convention to QuantLib's.
BUSINESS_DAY_CONVENTIONS: dict[str, int] = {
    "NONE": ql.Unadjusted,
    "FOLLOWING": ql.Following,
    "MODFOLLOWING": ql.ModifiedFollowing,
    "PRECEDING": ql.Preceding,
    "MODPRECEDING": ql.ModifiedPreceding,
    "NEAREST": ql.Nearest,
}

_ACT_ACT_DENOMINATOR = 365 * 366

#: CDM day count fraction to (QuantLib day counter given the leg's termination date, fixed basis
#: or None when the fraction is recovered from the year fraction).
DAY_COUNTS: dict[str, tuple[Callable[[ql.Date], ql.DayCounter], int | None]] = {
    "ACT/360": (lambda _t: ql.Actual360(), 360),
    "ACT/365.FIXED": (lambda _t: ql.Actual365Fixed(), 365),
    "ACT/ACT.ISDA": (lambda _t: ql.ActualActual(ql.ActualActual.ISDA), None),
    "ACT/ACT.AFB": (lambda _t: ql.ActualActual(ql.ActualActual.AFB), None),
    "30/360": (lambda _t: ql.Thirty360(ql.Thirty360.BondBasis), 360),
    "30E/360": (lambda _t: ql.Thirty360(ql.Thirty360.European), 360),
    "30E/360.ISDA": (lambda t: ql.Thirty360(ql.Thirty360.ISDA, t), 360),
}

_TIME_UNITS = {"D": ql.Days, "W": ql.Weeks, "M": ql.Months, "Y": ql.Years}


@dataclass(frozen=True, slots=True)
class Period:
    """One calculation period of a leg, with everything needed to compute its amount.

    Attributes:
        leg_index: position of the leg in ``SwapTerms.legs``.
        index: position of the period in the leg, from 0.
        unadjusted_start: unadjusted start date.
        unadjusted_end: unadjusted end date.
        adjusted_start: start date after business-day adjustment (accrual start).
        adjusted_end: end date after business-day adjustment (accrual end).
        payment_date: adjusted payment date.
        fixing_date: fixing date of the floating rate (None on fixed legs and fixed-rate stubs).
        day_count_fraction: exact day count fraction of the adjusted dates.
        notional: notional in effect for the period (amortisation applied).
        currency: ISO 4217 code.
        fixed_rate: the fixed rate (or the stub rate of a floating stub), else None.
        fixed_amount_minor: the amount of a fixed-rate period in minor units, else None.
        floating_index: floating rate option to observe, else None.
        index_tenors: tenor(s) of the index to observe (two for an interpolated stub).
        spread: spread over the floating rate.
        stub: ``initial`` or ``final`` for an irregular period, else None.
    """

    leg_index: int
    index: int
    unadjusted_start: dt.date
    unadjusted_end: dt.date
    adjusted_start: dt.date
    adjusted_end: dt.date
    payment_date: dt.date
    fixing_date: dt.date | None
    day_count_fraction: Fraction
    notional: Decimal
    currency: str
    fixed_rate: Decimal | None
    fixed_amount_minor: int | None
    floating_index: str | None
    index_tenors: tuple[Tenor, ...]
    spread: Decimal
    stub: str | None


# --------------------------------------------------------------------------- QuantLib mapping


def to_ql_date(day: dt.date) -> ql.Date:
    return ql.Date(day.day, day.month, day.year)


def from_ql_date(day: ql.Date) -> dt.date:
    return dt.date(day.year(), day.month(), day.dayOfMonth())


@lru_cache(maxsize=64)
def calendar(business_centers: tuple[str, ...]) -> ql.Calendar:
    """The QuantLib calendar of the joint business days of ``business_centers``."""
    if not business_centers:
        raise InputError("no business centres to build a calendar from")
    calendars = []
    for code in business_centers:
        factory = BUSINESS_CENTER_CALENDARS.get(code)
        if factory is None:
            raise InputError(f"business centre {code!r} has no calendar mapping")
        calendars.append(factory())
    if len(calendars) == 1:
        return calendars[0]
    return ql.JointCalendar(calendars, ql.JoinHolidays)


def adjustments_calendar(adjustments: DateAdjustments, what: str) -> ql.Calendar:
    """Calendar of a date adjustment; refuses unresolved business-centre references."""
    if adjustments.unresolved:
        raise InputError(
            f"{what}: business centres reference {adjustments.centers_reference!r} is not "
            f"resolved; name its centres (CLI: --business-center {adjustments.centers_reference}=GBLO,EUTA)"
        )
    if not adjustments.business_centers:
        raise InputError(f"{what}: convention {adjustments.convention} names no business centres")
    return calendar(adjustments.business_centers)


def business_day_convention(name: str) -> int:
    """QuantLib convention of a CDM business-day convention name."""
    try:
        return BUSINESS_DAY_CONVENTIONS[name]
    except KeyError:
        raise InputError(f"unsupported business day convention {name!r}") from None


def adjust(day: dt.date, adjustments: DateAdjustments, what: str) -> dt.date:
    """Move ``day`` onto a business day as ``adjustments`` say (``NONE`` leaves it)."""
    convention = business_day_convention(adjustments.convention)
    if convention == ql.Unadjusted:
        return day
    cal = adjustments_calendar(adjustments, what)
    return from_ql_date(cal.adjust(to_ql_date(day), convention))


def day_count_fraction(
    name: str, start: dt.date, end: dt.date, *, termination: dt.date | None = None
) -> Fraction:
    """Exact day count fraction of ``start``..``end`` under the CDM convention ``name``.

    ``termination`` is the leg's (adjusted) termination date, which 30E/360.ISDA needs.
    """
    entry = DAY_COUNTS.get(name)
    if entry is None:
        raise InputError(f"unsupported day count fraction {name!r}")
    factory, basis = entry
    counter = factory(to_ql_date(termination) if termination else ql.Date())
    qstart, qend = to_ql_date(start), to_ql_date(end)
    year_fraction = counter.yearFraction(qstart, qend)
    if basis is not None:
        exact = Fraction(counter.dayCount(qstart, qend), basis)
    else:
        exact = Fraction(year_fraction).limit_denominator(_ACT_ACT_DENOMINATOR)
    invariant(
        abs(float(exact) - year_fraction) <= 1e-12 * max(1.0, abs(year_fraction)),
        f"{name} fraction {exact} disagrees with QuantLib's {year_fraction}",
    )
    return exact


# --------------------------------------------------------------------------- amounts


def round_half_away_from_zero(value: Fraction) -> int:
    """Nearest integer to ``value``; an exact half goes away from zero."""
    magnitude = abs(value)
    whole, remainder = divmod(magnitude.numerator, magnitude.denominator)
    if 2 * remainder >= magnitude.denominator:
        whole += 1
    return whole if value >= 0 else -whole


def accrual_minor(notional: Decimal, rate: Decimal, fraction: Fraction, currency: str) -> int:
    """notional x rate x fraction in minor units of ``currency``, rounded once (module doc)."""
    exact = Fraction(notional) * Fraction(rate) * fraction * 10 ** minor_digits(currency)
    return round_half_away_from_zero(exact)


def floating_amount(period: Period, rate: Decimal, spread: Decimal | None = None) -> int:
    """Amount of a floating period in minor units for an observed ``rate``.

    ``spread`` defaults to the period's own spread; the all-in rate is ``rate + spread``.
    """
    if period.floating_index is None:
        raise InputError(f"period {period.index} of leg {period.leg_index} has a fixed rate")
    all_in = rate + (period.spread if spread is None else spread)
    return accrual_minor(period.notional, all_in, period.day_count_fraction, period.currency)


# --------------------------------------------------------------------------- periods


def periods(terms: SwapTerms, leg: SwapLeg | int) -> list[Period]:
    """Calculation periods of one leg of ``terms`` (a leg or its position in ``terms.legs``)."""
    if isinstance(leg, int):
        if not 0 <= leg < len(terms.legs):
            raise InputError(f"trade {terms.trade_id!r} has no leg {leg}")
        leg_index = leg
    else:
        if leg not in terms.legs:
            raise InputError(f"the leg is not one of trade {terms.trade_id!r}'s legs")
        leg_index = terms.legs.index(leg)
    return list(_leg_periods(terms, leg_index))


@lru_cache(maxsize=1024)
def _leg_periods(terms: SwapTerms, leg_index: int) -> tuple[Period, ...]:
    leg = terms.legs[leg_index]
    what = f"trade {terms.trade_id!r} leg {leg_index}"
    start = leg.first_period_start_date or leg.effective_date
    start_adjustments = leg.first_period_start_adjustments or leg.effective_adjustments
    bounds, regular = _unadjusted_bounds(leg, start, what)
    count = len(bounds) - 1
    adjusted = [adjust(bounds[0], start_adjustments, f"{what} start")]
    adjusted += [adjust(day, leg.calculation_adjustments, what) for day in bounds[1:-1]]
    adjusted.append(adjust(bounds[-1], leg.termination_adjustments, f"{what} termination"))
    payment_bases = _payment_bases(leg, bounds, what)
    result = []
    for i in range(count):
        stub = None if regular[i] else ("initial" if i == 0 else "final")
        stub_terms = leg.initial_stub if stub == "initial" else leg.final_stub if stub else None
        fraction = day_count_fraction(
            leg.day_count, adjusted[i], adjusted[i + 1], termination=adjusted[-1]
        )
        notional = leg.notional_on(bounds[i])
        fixed_rate, floating_index, tenors = _rate_terms(leg, stub_terms, what)
        fixing = None
        if floating_index is not None:
            fixing = _fixing_date(leg, floating_index, bounds[i], bounds[i + 1], what)
        result.append(
            Period(
                leg_index=leg_index,
                index=i,
                unadjusted_start=bounds[i],
                unadjusted_end=bounds[i + 1],
                adjusted_start=adjusted[i],
                adjusted_end=adjusted[i + 1],
                payment_date=_payment_date(leg, payment_bases[i], what),
                fixing_date=fixing,
                day_count_fraction=fraction,
                notional=notional,
                currency=leg.currency,
                fixed_rate=fixed_rate,
                fixed_amount_minor=(
                    accrual_minor(notional, fixed_rate, fraction, leg.currency)
                    if fixed_rate is not None
                    else None
                ),
                floating_index=floating_index,
                index_tenors=tenors,
                spread=leg.spread if floating_index is not None else Decimal(0),
                stub=stub,
            )
        )
    return tuple(result)


def _rate_terms(
    leg: SwapLeg, stub: Stub | None, what: str
) -> tuple[Decimal | None, str | None, tuple[Tenor, ...]]:
    """(fixed rate, floating index, index tenors) of a period."""
    if leg.fixed_rate is not None:
        return leg.fixed_rate, None, ()
    if stub is not None and stub.rate is not None:
        return stub.rate, None, ()
    if stub is not None and stub.floating_rates:
        tenors = tuple(rate.tenor for rate in stub.floating_rates if rate.tenor is not None)
        return None, stub.floating_rates[0].index, tenors
    floating = leg.floating_rate
    if floating is None:
        raise InputError(f"{what}: the leg has neither a fixed rate nor a floating rate")
    return None, floating.index, (floating.tenor,) if floating.tenor is not None else ()


def _ql_period(tenor: Tenor, what: str) -> ql.Period:
    unit = _TIME_UNITS.get(tenor.period)
    if unit is None or tenor.multiplier <= 0:
        raise InputError(f"{what}: unsupported frequency {tenor}")
    return ql.Period(tenor.multiplier, unit)


def _roll_end_of_month(leg: SwapLeg, anchor: dt.date, what: str) -> bool:
    """Check the roll convention against the schedule's anchor; True for end-of-month rolls."""
    roll = leg.roll_convention
    if roll is None or roll == "NONE":
        return False
    at_month_end = ql.Date.isEndOfMonth(to_ql_date(anchor))
    if roll == "EOM":
        if not at_month_end:
            raise InputError(f"{what}: roll convention EOM but the schedule starts on {anchor}")
        return True
    if not roll.isdigit() or not 1 <= int(roll) <= 31:
        raise InputError(f"{what}: unsupported roll convention {roll!r}")
    day = int(roll)
    if anchor.day == day:
        return False
    if day == 31 and at_month_end:
        return True
    raise InputError(
        f"{what}: roll convention {roll} does not match the regular schedule start {anchor}; "
        "an irregular first period needs firstRegularPeriodStartDate"
    )


def _unadjusted_bounds(leg: SwapLeg, start: dt.date, what: str) -> tuple[list[dt.date], list[bool]]:
    """Unadjusted period boundaries from QuantLib and, per period, whether it is regular."""
    end = leg.termination_date
    if not start < end:
        raise InputError(f"{what}: start {start} is not before termination {end}")
    if leg.calculation_frequency.period == "T":
        return [start, end], [True]
    first_regular = leg.first_regular_period_start_date
    last_regular = leg.last_regular_period_end_date
    if first_regular is not None and not start < first_regular < end:
        raise InputError(f"{what}: firstRegularPeriodStartDate {first_regular} outside the term")
    if last_regular is not None and not start < last_regular < end:
        raise InputError(f"{what}: lastRegularPeriodEndDate {last_regular} outside the term")
    end_of_month = _roll_end_of_month(leg, first_regular or start, what)
    schedule = ql.Schedule(
        to_ql_date(start),
        to_ql_date(end),
        _ql_period(leg.calculation_frequency, what),
        ql.NullCalendar(),
        ql.Unadjusted,
        ql.Unadjusted,
        ql.DateGeneration.Forward,
        end_of_month,
        to_ql_date(first_regular) if first_regular else ql.Date(),
        to_ql_date(last_regular) if last_regular else ql.Date(),
    )
    bounds = [from_ql_date(day) for day in schedule.dates()]
    regular = [bool(schedule.isRegular(i)) for i in range(1, len(bounds))]
    if first_regular is None and not regular[0] and len(bounds) > 2:
        raise InputError(f"{what}: irregular first period without firstRegularPeriodStartDate")
    if last_regular is None and not regular[-1]:
        raise InputError(
            f"{what}: the term {start}..{end} does not divide into {leg.calculation_frequency} "
            "periods and no lastRegularPeriodEndDate names a final stub"
        )
    return bounds, regular


def _months(tenor: Tenor) -> int | None:
    if tenor.period == "M":
        return tenor.multiplier
    if tenor.period == "Y":
        return 12 * tenor.multiplier
    return None


def _payment_bases(leg: SwapLeg, bounds: list[dt.date], what: str) -> list[dt.date]:
    """Per calculation period, the unadjusted date its payment is relative to."""
    count = len(bounds) - 1
    calc, pay = leg.calculation_frequency, leg.payment_frequency
    relative_to_end = leg.pay_relative_to == "CalculationPeriodEndDate"
    if leg.pay_relative_to not in ("CalculationPeriodEndDate", "CalculationPeriodStartDate"):
        raise InputError(f"{what}: unsupported payRelativeTo {leg.pay_relative_to!r}")
    same = (
        calc == pay
        or (_months(calc) is not None and _months(calc) == _months(pay))
        or (calc.period == "T" and pay.period == "T")
    )
    if same:
        bases = [bounds[i + 1] if relative_to_end else bounds[i] for i in range(count)]
        if leg.first_payment_date is not None and leg.first_payment_date != bases[0]:
            raise InputError(
                f"{what}: firstPaymentDate {leg.first_payment_date} is not the first "
                f"calculation period's {'end' if relative_to_end else 'start'} {bases[0]}"
            )
        return bases
    calc_months, pay_months = _months(calc), _months(pay)
    if not relative_to_end or calc_months is None or pay_months is None or pay_months % calc_months:
        raise InputError(
            f"{what}: payment frequency {pay} is not a whole multiple of the calculation "
            f"frequency {calc} paid at period end"
        )
    per_payment = pay_months // calc_months
    first_end_index = per_payment
    if leg.first_payment_date is not None:
        if leg.first_payment_date not in bounds[1:]:
            raise InputError(f"{what}: firstPaymentDate {leg.first_payment_date} ends no period")
        first_end_index = bounds.index(leg.first_payment_date)
    bases = []
    group_end = min(first_end_index, count)
    for i in range(count):
        if i + 1 > group_end:
            group_end = min(group_end + per_payment, count)
        bases.append(bounds[group_end])
    return bases


def _payment_date(leg: SwapLeg, base: dt.date, what: str) -> dt.date:
    day = adjust(base, leg.payment_adjustments, f"{what} payment date")
    if leg.payment_days_offset is not None:
        day = _apply_offset(day, leg.payment_days_offset, None, f"{what} payment offset")
    return day


def _apply_offset(day: dt.date, offset: Offset, fallback: ql.Calendar | None, what: str) -> dt.date:
    if offset.tenor.multiplier == 0:
        return day
    adjustments = offset.adjustments
    if adjustments.business_centers or adjustments.unresolved:
        cal = adjustments_calendar(adjustments, what)
    elif fallback is not None:
        cal = fallback
    else:
        raise InputError(f"{what}: the offset names no business centres")
    if offset.tenor.period != "D":
        raise InputError(f"{what}: only day offsets are supported, got {offset.tenor}")
    if offset.day_type == "Calendar":
        moved = to_ql_date(day) + ql.Period(offset.tenor.multiplier, ql.Days)
        return from_ql_date(cal.adjust(moved, business_day_convention(adjustments.convention)))
    return from_ql_date(cal.advance(to_ql_date(day), offset.tenor.multiplier, ql.Days))


def _fixing_calendar(reset: ResetTerms, index: str, what: str) -> ql.Calendar:
    """Fixing calendar when the fixing offset names none: the index's, else the reset dates'."""
    for prefix, factory in INDEX_FIXING_CALENDARS:
        if index.startswith(prefix):
            return factory()
    return adjustments_calendar(reset.adjustments, f"{what} reset dates")


def _fixing_date(
    leg: SwapLeg, index: str, unadjusted_start: dt.date, unadjusted_end: dt.date, what: str
) -> dt.date:
    reset = leg.reset
    if reset is None:
        raise InputError(f"{what}: a floating leg needs reset terms")
    if reset.relative_to == "CalculationPeriodStartDate":
        base = unadjusted_start
    elif reset.relative_to == "CalculationPeriodEndDate":
        base = unadjusted_end
    else:
        raise InputError(f"{what}: unsupported resetRelativeTo {reset.relative_to!r}")
    reset_date = adjust(base, reset.adjustments, f"{what} reset date")
    offset = reset.fixing_offset
    named = offset.adjustments.business_centers or offset.adjustments.unresolved
    fallback = None if named else _fixing_calendar(reset, index, what)
    return _apply_offset(reset_date, offset, fallback, f"{what} fixing date")


def payment_dates(terms: SwapTerms) -> list[dt.date]:
    """Distinct payment dates of both legs, in order."""
    return sorted({p.payment_date for i in range(len(terms.legs)) for p in _leg_periods(terms, i)})
