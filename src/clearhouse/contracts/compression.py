"""Portfolio compression of swaps: remove gross notional, keep every member's net per bucket.

What lives here: :func:`positions_from_swaps` reads the open vanilla fixed/float swaps of a set of
contracts as :class:`SwapPosition` (who pays fixed to whom, notional, currency, maturity bucket);
:func:`compress` solves, per (currency, maturity bucket), the linear programme

    minimise  sum of x[i, j]
    subject to, for every member m:  sum_i x[i, m] - sum_j x[m, j] = net[m]
               0 <= x[i, j]  (<= the notional i already pays fixed to j, when ``existing_only``)

where ``x[i, j]`` is the notional on which i pays fixed to j after compression and ``net[m]`` the
notional m receives fixed minus what it pays fixed, before. The direction of each trade (who
pays fixed) is the sign of the net, so the fixed/float direction of every member's position is
kept per bucket. The result is emitted as terminations (every trade on a pair whose notional
changes) and replacement trades (one per pair with a new, non-zero notional), on the terms of a
trade of the same bucket. With ``existing_only`` only pairs that already trade may carry
notional and never more than before (conservative compression); with a ``hub`` (the CCP of a
cleared portfolio) every trade faces the hub; otherwise any two members of the bucket may face
each other. Without bounds the gross falls to the sum of the positive nets.

The programme is a network flow: its vertices are integral. Notionals are divided by their
greatest common divisor before solving (HiGHS through ``scipy.optimize.linprog``), the solution
is rounded, and every member's net is checked exactly afterwards.

Compression plans trades; it runs outside the state machine, whose ledger then receives the
terminations and replacement trades as ordinary contract submissions.

Imports numpy, scipy, the standard library, ``clearhouse.core`` and ``clearhouse.contracts``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from clearhouse.contracts.swap_templates import Swap
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.money import to_minor

#: Upper edges of the maturity buckets, in years to the termination date.
BUCKET_EDGES_YEARS: tuple[int, ...] = (1, 2, 5, 10, 30)


@dataclass(frozen=True, slots=True)
class SwapPosition:
    """One swap as compression sees it.

    Attributes:
        contract_id: the swap contract.
        currency: ISO 4217 code of both legs.
        bucket: maturity bucket, e.g. ``2-5Y``.
        fixed_payer: participant paying the fixed leg.
        fixed_receiver: participant receiving it.
        notional_minor: notional in minor units.
    """

    contract_id: str
    currency: str
    bucket: str
    fixed_payer: str
    fixed_receiver: str
    notional_minor: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """A new trade replacing terminated ones on one pair.

    Attributes:
        currency: ISO 4217 code.
        bucket: maturity bucket.
        fixed_payer: who pays fixed.
        fixed_receiver: who receives fixed.
        notional_minor: notional in minor units.
        terms_from: contract whose terms (dates, rates) the replacement takes.
    """

    currency: str
    bucket: str
    fixed_payer: str
    fixed_receiver: str
    notional_minor: int
    terms_from: str


@dataclass(frozen=True, slots=True)
class Compression:
    """The outcome of compressing a portfolio.

    Attributes:
        terminations: contract ids to terminate, in input order.
        replacements: trades to enter instead, by bucket and pair.
        gross_before: per (currency, bucket), the gross notional before, in minor units.
        gross_after: the same after compression.
        nets: per (currency, bucket, member), notional received fixed minus paid fixed
            (unchanged by compression).
    """

    terminations: tuple[str, ...]
    replacements: tuple[Replacement, ...]
    gross_before: dict[tuple[str, str], int]
    gross_after: dict[tuple[str, str], int]
    nets: dict[tuple[str, str, str], int]


def maturity_bucket(termination: dt.date, as_of: dt.date) -> str:
    """The bucket of a trade ending on ``termination`` seen from ``as_of``: ``0-1Y`` ... ``30Y+``."""
    years = (termination - as_of).days / 365.25
    lower = 0
    for edge in BUCKET_EDGES_YEARS:
        if years <= edge:
            return f"{lower}-{edge}Y"
        lower = edge
    return f"{lower}Y+"


def positions_from_swaps(
    swaps: Iterable[tuple[str, Swap]], as_of: dt.date
) -> tuple[list[SwapPosition], list[tuple[str, str]]]:
    """Compressible positions, and (contract id, why not) for the swaps left out.

    Eligible: open, one fixed and one floating leg in one currency, constant notional.
    """
    positions: list[SwapPosition] = []
    skipped: list[tuple[str, str]] = []
    for contract_id, swap in swaps:
        trade = swap.trade
        legs = trade.terms.legs
        fixed = [leg for leg in legs if leg.is_fixed]
        reason = ""
        if not trade.is_open:
            reason = "closed"
        elif len(fixed) != 1 or len(legs) != 2:
            reason = "not a fixed/float swap"
        elif len({leg.currency for leg in legs}) != 1:
            reason = "legs in two currencies"
        elif any(leg.notional_steps for leg in legs) or len({leg.notional for leg in legs}) != 1:
            reason = "notional not constant"
        if reason:
            skipped.append((contract_id, reason))
            continue
        leg = fixed[0]
        positions.append(
            SwapPosition(
                contract_id=contract_id,
                currency=leg.currency,
                bucket=maturity_bucket(trade.terms.termination_date, as_of),
                fixed_payer=trade.terms.payer_of(leg),
                fixed_receiver=trade.terms.receiver_of(leg),
                notional_minor=to_minor(leg.notional, leg.currency),
            )
        )
    return positions, skipped


def compress(
    positions: Sequence[SwapPosition], existing_only: bool = False, hub: str | None = None
) -> Compression:
    """Minimise gross notional per (currency, bucket) keeping every member's net (module doc)."""
    if existing_only and hub is not None:
        raise InputError("compression is either conservative (existing_only) or through a hub, not both")
    buckets: dict[tuple[str, str], list[SwapPosition]] = {}
    for position in positions:
        if position.notional_minor <= 0 or position.fixed_payer == position.fixed_receiver:
            raise InputError(f"position {position.contract_id} is not a trade between two members")
        buckets.setdefault((position.currency, position.bucket), []).append(position)
    terminated: set[str] = set()
    replacements: list[Replacement] = []
    gross_before: dict[tuple[str, str], int] = {}
    gross_after: dict[tuple[str, str], int] = {}
    nets: dict[tuple[str, str, str], int] = {}
    for key in sorted(buckets):
        trades = buckets[key]
        members = sorted({p.fixed_payer for p in trades} | {p.fixed_receiver for p in trades})
        existing: dict[tuple[str, str], int] = {}
        for p in trades:
            pair = (p.fixed_payer, p.fixed_receiver)
            existing[pair] = existing.get(pair, 0) + p.notional_minor
        net = {m: 0 for m in members}
        for (payer, receiver), notional in existing.items():
            net[payer] -= notional
            net[receiver] += notional
        solution = _solve(members, existing, net, existing_only, hub)
        for pair in sorted(set(existing) | set(solution)):
            before, after = existing.get(pair, 0), solution.get(pair, 0)
            if before == after:
                continue
            terminated.update(p.contract_id for p in trades if (p.fixed_payer, p.fixed_receiver) == pair)
            if after:
                replacements.append(Replacement(key[0], key[1], pair[0], pair[1], after, trades[0].contract_id))
        gross_before[key] = sum(existing.values())
        gross_after[key] = sum(solution.values())
        for member in members:
            nets[(key[0], key[1], member)] = net[member]
    return Compression(
        terminations=tuple(p.contract_id for p in positions if p.contract_id in terminated),
        replacements=tuple(replacements),
        gross_before=gross_before,
        gross_after=gross_after,
        nets=nets,
    )


def _solve(
    members: list[str],
    existing: dict[tuple[str, str], int],
    net: dict[str, int],
    existing_only: bool,
    hub: str | None,
) -> dict[tuple[str, str], int]:
    """The compressed notional per (fixed payer, fixed receiver) of one bucket."""
    if existing_only:
        pairs = sorted(existing)
    elif hub is not None:
        if hub not in members:
            raise InputError(f"hub {hub!r} is party to no trade of the bucket")
        pairs = sorted({(m, hub) for m in members if m != hub} | {(hub, m) for m in members if m != hub})
    else:
        pairs = [(a, b) for a in members for b in members if a != b]
    unit = math.gcd(*existing.values())
    index = {m: i for i, m in enumerate(members)}
    incidence = np.zeros((len(members), len(pairs)))
    for column, (payer, receiver) in enumerate(pairs):
        incidence[index[payer], column] = -1.0
        incidence[index[receiver], column] = 1.0
    target = np.array([net[m] // unit for m in members], dtype=float)
    bounds = [(0.0, existing[pair] / unit if existing_only else None) for pair in pairs]
    result = linprog(np.ones(len(pairs)), A_eq=incidence, b_eq=target, bounds=bounds, method="highs")
    invariant(result.status == 0, f"compression programme not solved: {result.message}")
    flows = {pair: int(round(value)) * unit for pair, value in zip(pairs, result.x, strict=True) if round(value)}
    after = {m: 0 for m in members}
    for (payer, receiver), notional in flows.items():
        after[payer] -= notional
        after[receiver] += notional
    invariant(after == net, "compression changed a member's net notional")
    return flows
