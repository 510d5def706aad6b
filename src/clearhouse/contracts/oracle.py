"""The oracle's observations as contracts: signed rate fixings and prices, and their corrections.

What lives here: the ``observation`` template (:class:`OracleObservation`): one value an oracle
participant published for an index (a floating rate option, or a security for a price) on a
fixing date. Its signatory is the publishing oracle; its keys are the oracle's observation id and
``(index, fixing date)``, so one value stands per fixing and contracts find it by either. Its one
choice, ``correct``, is the publisher's: the value is replaced, the replaced value kept as a
revision, and an ``observation_corrected`` broadcast tells every contract that may have used it
(swaps reverse and redo their payments, see :mod:`clearhouse.contracts.swap_templates`).

Observations are made by the engine from the ``observation`` submission kind, never by a
top-level ``create``: only a participant with the ``oracle`` role publishes.

Imports the standard library and ``clearhouse.contracts`` (framework, events) only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from clearhouse.contracts.events import Observation
from clearhouse.contracts.framework import (
    Args,
    Context,
    ContractError,
    Effect,
    Signal,
    Template,
    choice,
)

#: Broadcast sent when an observation is corrected; its value is the corrected Observation.
OBSERVATION_CORRECTED = "observation_corrected"
ID_MAX_LEN = 64
#: Largest magnitude of a published value (rates are fractions: 0.05 = 5%; prices are units).
VALUE_MAX = Decimal(10) ** 12


@dataclasses.dataclass(frozen=True, slots=True)
class Revision:
    """A value an observation held before a correction.

    Attributes:
        version: the version that held the value (1 = as first published).
        rate: the value replaced.
        corrected_on: business date of the correction.
    """

    version: int
    rate: Decimal
    corrected_on: dt.date


@dataclasses.dataclass(frozen=True, slots=True)
class OracleObservation(Template):
    """A published observation (the ``observation`` template).

    Attributes:
        observation_id: the oracle's id of the observation, unique on the ledger.
        index: what is observed: a floating rate option (``USD-LIBOR-BBA``) or a security id.
        fixing_date: the date the value is of.
        rate: the value in force (a rate as a decimal fraction, or a price).
        publisher: the oracle participant that signed it.
        published_on: business date it was first published.
        revisions: values replaced by corrections, oldest first.
    """

    name: ClassVar[str] = "observation"

    observation_id: str
    index: str
    fixing_date: dt.date
    rate: Decimal
    publisher: str
    published_on: dt.date
    revisions: tuple[Revision, ...]

    @property
    def version(self) -> int:
        return len(self.revisions) + 1

    @property
    def observation(self) -> Observation:
        """The value as the swap events read it."""
        return Observation(self.index, self.fixing_date, self.rate)

    def signatories(self) -> frozenset[str]:
        return frozenset({self.publisher})

    def keys(self) -> tuple[tuple[Any, ...], ...]:
        return (("id", self.observation_id), ("fixing", self.index, self.fixing_date))

    @choice(controllers=lambda c: {c.publisher})
    def correct(self, ctx: Context, args: Args) -> Effect:
        """Replace the value; every contract is told through ``observation_corrected``."""
        rate = parse_value(args.get("rate"), "rate")
        if rate == self.rate:
            raise ContractError(f"observation {self.observation_id!r} already holds {rate}")
        revised = dataclasses.replace(
            self,
            rate=rate,
            revisions=self.revisions + (Revision(self.version, self.rate, ctx.business_date),),
        )
        signal = Signal(OBSERVATION_CORRECTED, revised.observation, self.name, ctx.contract_id)
        return Effect(revised, signals=(signal,))


def parse_value(value: Any, what: str) -> Decimal:
    """A published value: a decimal string or a JSON number read as an exact decimal."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ContractError(f"{what} must be a decimal number, got {value!r}")
    try:
        result = Decimal(value) if not isinstance(value, Decimal) else value
    except ArithmeticError:
        raise ContractError(f"{what} must be a decimal number, got {value!r}") from None
    if not result.is_finite() or abs(result) >= VALUE_MAX:
        raise ContractError(f"{what} {value!r} is not a finite value below {VALUE_MAX}")
    return result


def observation_from_item(item: Any, publisher: str, business_date: dt.date) -> OracleObservation:
    """An observation from one published item ``{"id", "index", "fixing_date", "rate"}``."""
    if not isinstance(item, dict):
        raise ContractError("an observation is an object with id, index, fixing_date and rate")
    unknown = sorted(set(item) - {"id", "index", "fixing_date", "rate"})
    if unknown:
        raise ContractError(f"unknown observation field(s) {unknown}")
    observation_id, index = item.get("id"), item.get("index")
    if not isinstance(observation_id, str) or not 0 < len(observation_id) <= ID_MAX_LEN:
        raise ContractError(f"observation id must be 1 to {ID_MAX_LEN} characters")
    if not isinstance(index, str) or not 0 < len(index) <= ID_MAX_LEN:
        raise ContractError(f"index must be 1 to {ID_MAX_LEN} characters")
    try:
        fixing_date = dt.date.fromisoformat(str(item.get("fixing_date")))
    except ValueError:
        raise ContractError(f"fixing_date {item.get('fixing_date')!r} is not a date") from None
    return OracleObservation(
        observation_id=observation_id,
        index=index,
        fixing_date=fixing_date,
        rate=parse_value(item.get("rate"), "rate"),
        publisher=publisher,
        published_on=business_date,
        revisions=(),
    )
