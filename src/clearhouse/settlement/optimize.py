"""Choosing which DvP instructions settle when securities or cash are short.

A settlement cycle holds ``n`` delivery-versus-payment instructions (deliverer hands ``quantity``
units of a security to the receiver, the receiver pays ``cash`` minor units back). When every
account can cover what it owes the whole batch settles; otherwise some instructions must fail.
:func:`settle_max_value` picks the set that settles the most value (value = cash leg) while every
account's securities balance stays >= 0 and every cash balance stays >= -credit limit, with
linked instructions settling all or none and, on request, partial settlement in whole lots.

Four pieces live here:

* a vectorised deselection heuristic (start from everything selected, drop the cheapest
  contributors to each negative balance until feasible, then re-add what fits in value order),
  which always runs and is the only stage for very large batches;
* the LP relaxation, whose optimum (certified from its dual, so solver tolerances cannot make it
  too low) is the upper bound reported beside every answer;
* LP rounding: the relaxation's solution rounded down, then repaired and extended by the
  heuristic;
* an exact integer program (HiGHS through ``highspy``) for batches up to ``exact_max_n``
  instructions, under a time limit, its answer re-checked and repaired in exact integers.

Chains and cycles of deliveries that only settle together (A delivers to B, who needs those
securities to deliver to C, ... back to A) settle, because the heuristic starts from the whole
batch and the integer program sees every balance at once.

Balances and amounts are exact int64; floats appear only inside the solvers and in the ordering
key of the heuristic, never in a balance. Everything is deterministic except where a solver time
limit is reached (see :func:`settle_max_value`).

Imports only numpy, scipy, highspy and clearhouse.core; never the ledger, the state machine or
an interface.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from enum import StrEnum

import highspy
import numpy as np
import scipy.sparse as sps

from clearhouse.core.errors import InputError, invariant

#: Largest ``whole`` for which ``(cash % whole) * part`` cannot overflow int64 when part <= whole.
_PRORATA_INT64_MAX_WHOLE = 3_037_000_499
#: Totals (balances plus every amount that could flow) must stay below this to rule out overflow.
_TOTAL_MAX = float(2**62)
#: Upper limit on rounds of the re-adding stage of the heuristic (each round admits >= 1 unit).
_READD_ROUNDS_MAX = 256
#: Relative and absolute allowance for float round-off before a bound is floored to an integer.
_BOUND_REL_TOL = 1e-9
_BOUND_ABS_TOL = 1e-6
#: Slack when reading a whole number of lots (or the whole quantity) from a solver's floats.
_ROUNDING_TOL = 1e-6
#: Integrality code of a semi-integer column (0 or an integer within its bounds), as in HiGHS.
_SEMI_INTEGER = 3
#: Weight of the knock-on loss (inflows the recipients cannot do without) when ranking drops.
_KNOCK_ON_WEIGHT = 1.0


class Method(StrEnum):
    """Which algorithm produced the chosen settlement.

    ``milp``: the integer program (after exact repair). ``lp_rounding``: the LP relaxation's
    solution rounded and then repaired and extended by the heuristic. ``greedy``: the deselection
    heuristic from the whole batch.
    """

    milp = "milp"
    lp_rounding = "lp_rounding"
    greedy = "greedy"


class Status(StrEnum):
    """How far the answer is proven.

    * ``optimal``: the integer program finished and its optimum was kept (value equals the
      proven bound).
    * ``near_optimal``: the integer program finished, but its solution needed a repair in exact
      integers (solver round-off on very large amounts) that cost some value; the gap says how
      much at most.
    * ``time_limit``: the solver stopped at its limit; the answer is the better of its incumbent
      and the heuristic, with the gap reported.
    * ``heuristic``: the batch exceeded ``exact_max_n`` and only the heuristic ran.
    * ``solver_failed``: the integer program returned no usable solution; the heuristic's
      answer is reported.
    """

    optimal = "optimal"
    near_optimal = "near_optimal"
    time_limit = "time_limit"
    heuristic = "heuristic"
    solver_failed = "solver_failed"


@dataclass(frozen=True, slots=True)
class InstructionSet:
    """A batch of DvP settlement instructions as parallel arrays of length ``n``.

    Attributes:
        deliverer: int64 account index delivering the securities (and receiving the cash).
        receiver: int64 account index receiving the securities (and paying the cash).
        security: int64 security index.
        quantity: int64 units of the security to deliver, >= 0 (0 means a cash-only instruction).
        currency: int64 currency index of the cash leg.
        cash: int64 minor units the receiver pays the deliverer, >= 0; this is the value settled.
        link: int64 link group; instructions sharing a non-negative id settle all or none, -1 for
            an unlinked instruction.
        partial_allowed: bool; the instruction may settle in part when partial settlement is on.
            Linked instructions never settle in part.
        lot_size: int64 per instruction, >= 1; a partial settlement is a whole number of lots.
        min_partial_value: smallest cash value (minor units) a partial settlement may have.
    """

    deliverer: np.ndarray
    receiver: np.ndarray
    security: np.ndarray
    quantity: np.ndarray
    currency: np.ndarray
    cash: np.ndarray
    link: np.ndarray
    partial_allowed: np.ndarray
    lot_size: np.ndarray
    min_partial_value: int = 0

    @classmethod
    def create(
        cls,
        *,
        deliverer: np.ndarray | list[int],
        receiver: np.ndarray | list[int],
        security: np.ndarray | list[int],
        quantity: np.ndarray | list[int],
        currency: np.ndarray | list[int],
        cash: np.ndarray | list[int],
        link: np.ndarray | list[int] | None = None,
        partial_allowed: np.ndarray | list[bool] | None = None,
        lot_size: np.ndarray | list[int] | None = None,
        min_partial_value: int = 0,
    ) -> InstructionSet:
        """Build a set from array-likes, defaulting to unlinked, all-or-none, lot size 1."""
        n = len(deliverer)

        def as_i64(values: np.ndarray | list[int] | None, default: int) -> np.ndarray:
            if values is None:
                return np.full(n, default, dtype=np.int64)
            return np.asarray(values, dtype=np.int64)

        return cls(
            deliverer=as_i64(deliverer, 0),
            receiver=as_i64(receiver, 0),
            security=as_i64(security, 0),
            quantity=as_i64(quantity, 0),
            currency=as_i64(currency, 0),
            cash=as_i64(cash, 0),
            link=as_i64(link, -1),
            partial_allowed=(
                np.zeros(n, dtype=bool)
                if partial_allowed is None
                else np.asarray(partial_allowed, dtype=bool)
            ),
            lot_size=as_i64(lot_size, 1),
            min_partial_value=int(min_partial_value),
        )

    @property
    def n(self) -> int:
        """Number of instructions."""
        return int(self.deliverer.shape[0])


@dataclass(frozen=True, slots=True)
class SettlementChoice:
    """Which instructions settle, how much of each, and how good the choice is proven to be.

    Attributes:
        settled: bool per instruction; True when it settles, in full or in part.
        settled_fraction: float per instruction, settled quantity over quantity (1.0 for a
            settled cash-only instruction, 0.0 for one that fails); informative only.
        settled_quantity: int64 units delivered per instruction (0, a whole number of lots below
            ``quantity`` for a partial, or ``quantity``).
        settled_cash: int64 minor units paid per instruction; ``cash`` in full, and for a partial
            ``floor(cash * settled_quantity / quantity)`` so the payer never pays more than its
            proportion.
        settled_value: total of ``settled_cash`` (minor units, summed across currencies as the
            objective does).
        lp_bound: bound from the LP relaxation, certified from its dual solution and floored to
            an integer (the LP optimum when it finished, a weaker valid bound when it stopped at
            its time limit), never above the total value of the batch, which it is when no dual
            solution was available; ``settled_value <= lp_bound`` always.
        upper_bound: best proven bound: ``lp_bound``, tightened by the integer program's dual bound
            when it ran.
        gap_pct: ``100 * (upper_bound - settled_value) / upper_bound`` (0 when the bound is 0).
        lp_optimal: True when the LP relaxation finished, so ``lp_bound`` is its optimum.
        method: algorithm that produced the choice.
        status: how far the choice is proven.
    """

    settled: np.ndarray
    settled_fraction: np.ndarray
    settled_quantity: np.ndarray
    settled_cash: np.ndarray
    settled_value: int
    lp_bound: int
    upper_bound: int
    gap_pct: float
    lp_optimal: bool
    method: Method
    status: Status


def resulting_balances(
    instr: InstructionSet,
    securities: np.ndarray,
    cash: np.ndarray,
    settled_quantity: np.ndarray,
    settled_cash: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Securities (A x S) and cash (A x C) balances after the given quantities and cash move."""
    sec = np.array(securities, dtype=np.int64, copy=True)
    csh = np.array(cash, dtype=np.int64, copy=True)
    q = np.asarray(settled_quantity, dtype=np.int64)
    v = np.asarray(settled_cash, dtype=np.int64)
    np.add.at(sec, (instr.deliverer, instr.security), -q)
    np.add.at(sec, (instr.receiver, instr.security), q)
    np.add.at(csh, (instr.receiver, instr.currency), -v)
    np.add.at(csh, (instr.deliverer, instr.currency), v)
    return sec, csh


# --------------------------------------------------------------------------------------------
# Exact integer arithmetic


def _prorata_floor(cash: np.ndarray, part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """``floor(cash * part / whole)`` exactly, for ``whole > 0`` and ``0 <= part <= whole``.

    Written as ``a * part + (b * part) // whole`` with ``cash = a * whole + b``: every product
    stays within int64 while ``whole`` is below about 3e9; rows with a larger ``whole`` (rare)
    are computed with Python integers.
    """
    cash = np.asarray(cash, dtype=np.int64)
    part = np.asarray(part, dtype=np.int64)
    whole = np.asarray(whole, dtype=np.int64)
    a, b = np.divmod(cash, whole)
    out = a * part + (b * part) // np.maximum(whole, 1)
    big = np.flatnonzero(whole > _PRORATA_INT64_MAX_WHOLE)
    for i in big:  # only quantities above ~3e9 units, which real instructions do not reach
        out[i] = int(cash[i]) * int(part[i]) // int(whole[i])
    return out


def _lots_paying_at_least(
    cash: np.ndarray, lot: np.ndarray, qty: np.ndarray, amount: np.ndarray
) -> np.ndarray:
    """Smallest k >= 1 with ``floor(cash * k * lot / qty) >= amount`` (huge when impossible)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.ceil(amount.astype(np.float64) * qty / (cash.astype(np.float64) * lot))
    est = np.where(np.isfinite(est), est, 2.0**62)
    est = np.clip(est, 1, 2.0**62).astype(np.int64)
    k_max = qty // lot
    best = np.full(cash.shape, np.iinfo(np.int64).max, dtype=np.int64)
    for offset in (2, 1, 0, -1, -2):
        k = np.maximum(est + offset, 1)
        ok = k <= k_max
        paid = _prorata_floor(cash, np.where(ok, k, 0) * lot, qty)
        best = np.where(ok & (paid >= amount), np.minimum(best, k), best)
    return best


def _lots_paying_at_most(
    cash: np.ndarray, lot: np.ndarray, qty: np.ndarray, amount: np.ndarray, k_cap: np.ndarray
) -> np.ndarray:
    """Largest k in ``[0, k_cap]`` with ``floor(cash * k * lot / qty) <= amount`` (amount >= 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.floor(amount.astype(np.float64) * qty / (cash.astype(np.float64) * lot))
    est = np.where(np.isfinite(est), np.minimum(est, k_cap), k_cap).astype(np.int64)
    best = np.zeros(cash.shape, dtype=np.int64)
    for offset in (-2, -1, 0, 1, 2):
        k = np.clip(est + offset, 0, k_cap)
        paid = _prorata_floor(cash, k * lot, qty)
        best = np.where(paid <= amount, np.maximum(best, k), best)
    return best


# --------------------------------------------------------------------------------------------
# The problem in position space


@dataclass(frozen=True, slots=True)
class _Problem:
    """Precomputed arrays shared by the heuristic and the model builder.

    Positions are numbered ``account * S + security`` for securities, then
    ``A * S + account * C + currency`` for cash; ``head0`` is the initial headroom per position
    (securities balance, or cash balance plus credit limit), all >= 0.

    Attributes:
        n: number of instructions.
        npos: number of positions.
        q: quantity per instruction.
        c: cash per instruction.
        lot: lot size per instruction.
        del_sec: deliverer's securities position (outflow of quantity).
        rec_sec: receiver's securities position (inflow of quantity).
        rec_cash: receiver's cash position (outflow of cash).
        del_cash: deliverer's cash position (inflow of cash).
        unit: settlement unit per instruction (link group, or the instruction alone).
        n_units: number of units.
        unit_value: total cash of each unit when fully settled.
        unit_partial: bool per unit; a single instruction that may settle in part.
        unit_first: first instruction of each unit (the instruction itself for a partial unit).
        kmin: smallest number of lots of a partial settlement per instruction.
        kmax: largest number of lots of a partial settlement (lots * lot < quantity).
        head0: initial headroom per position.
        e_ptr: CSR pointer over positions into the flow entries below.
        e_inst: instruction of each flow entry, grouped by position.
        e_cash: True for a cash flow, False for a securities flow.
        e_sign: -1 for an outflow, +1 for an inflow.
    """

    n: int
    npos: int
    q: np.ndarray
    c: np.ndarray
    lot: np.ndarray
    del_sec: np.ndarray
    rec_sec: np.ndarray
    rec_cash: np.ndarray
    del_cash: np.ndarray
    unit: np.ndarray
    n_units: int
    unit_value: np.ndarray
    unit_partial: np.ndarray
    unit_first: np.ndarray
    kmin: np.ndarray
    kmax: np.ndarray
    head0: np.ndarray
    e_ptr: np.ndarray
    e_inst: np.ndarray
    e_cash: np.ndarray
    e_sign: np.ndarray


def _validate(
    instr: InstructionSet, securities: np.ndarray, cash: np.ndarray, credit: np.ndarray
) -> None:
    """Refuse a batch that is malformed or could overflow int64; every message names the field."""
    n = instr.n
    arrays = {
        "deliverer": instr.deliverer, "receiver": instr.receiver, "security": instr.security,
        "quantity": instr.quantity, "currency": instr.currency, "cash": instr.cash,
        "link": instr.link, "partial_allowed": instr.partial_allowed, "lot_size": instr.lot_size,
    }
    for name, arr in arrays.items():
        if arr.ndim != 1 or arr.shape[0] != n:
            raise InputError(f"instruction field {name} must be a 1-d array of length {n}")
        expected = np.bool_ if name == "partial_allowed" else np.int64
        if arr.dtype != expected:
            raise InputError(f"instruction field {name} must be {np.dtype(expected)}, "
                             f"got {arr.dtype}")
    if securities.ndim != 2 or cash.ndim != 2 or securities.shape[0] != cash.shape[0]:
        raise InputError("securities must be A x S and cash A x C for the same A accounts")
    if credit.shape != cash.shape:
        raise InputError(f"credit_limit must have the shape of cash {cash.shape}")
    n_acc, n_sec = securities.shape
    n_ccy = cash.shape[1]
    for name, arr, hi in (
        ("deliverer", instr.deliverer, n_acc), ("receiver", instr.receiver, n_acc),
        ("security", instr.security, n_sec), ("currency", instr.currency, n_ccy),
    ):
        if n and (arr.min() < 0 or arr.max() >= hi):
            raise InputError(f"instruction field {name} out of range [0, {hi})")
    if n and instr.quantity.min() < 0:
        raise InputError("instruction quantity must be >= 0")
    if n and instr.cash.min() < 0:
        raise InputError("instruction cash must be >= 0")
    if n and instr.lot_size.min() < 1:
        raise InputError("instruction lot_size must be >= 1")
    if n and instr.link.min() < -1:
        raise InputError("instruction link must be a group id >= 0 or -1")
    if instr.min_partial_value < 0:
        raise InputError("min_partial_value must be >= 0")
    if securities.size and securities.min() < 0:
        raise InputError("securities balances must start >= 0")
    if credit.size and credit.min() < 0:
        raise InputError("credit limits must be >= 0")
    if cash.size and (cash + credit).min() < 0:
        raise InputError("cash balances must start within their credit limits")
    sec_total = float(np.abs(securities).sum(dtype=np.float64)) + float(
        instr.quantity.sum(dtype=np.float64)
    )
    cash_total = float(np.abs(cash).sum(dtype=np.float64)) + float(
        credit.sum(dtype=np.float64)
    ) + float(instr.cash.sum(dtype=np.float64))
    if sec_total >= _TOTAL_MAX or cash_total >= _TOTAL_MAX:
        raise InputError("balances and amounts are too large for exact int64 arithmetic")


def _build_problem(
    instr: InstructionSet,
    securities: np.ndarray,
    cash: np.ndarray,
    credit: np.ndarray,
    allow_partial: bool,
) -> _Problem:
    """Number positions, group instructions into settlement units, index flows by position."""
    n = instr.n
    n_acc, n_sec = securities.shape
    n_ccy = cash.shape[1]
    nsp = n_acc * n_sec
    npos = nsp + n_acc * n_ccy
    q, c, lot = instr.quantity, instr.cash, instr.lot_size
    del_sec = instr.deliverer * n_sec + instr.security
    rec_sec = instr.receiver * n_sec + instr.security
    rec_cash = nsp + instr.receiver * n_ccy + instr.currency
    del_cash = nsp + instr.deliverer * n_ccy + instr.currency

    linked = instr.link >= 0
    _, group = np.unique(instr.link[linked], return_inverse=True)
    n_groups = int(group.max()) + 1 if group.size else 0
    unit = np.empty(n, dtype=np.int64)
    unit[linked] = group
    unit[~linked] = n_groups + np.arange(int((~linked).sum()), dtype=np.int64)
    n_units = n_groups + int((~linked).sum())

    kmax = np.where(q > 0, (q - 1) // lot, 0)
    kmin = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    maybe = allow_partial & instr.partial_allowed & ~linked & (kmax >= 1)
    idx = np.flatnonzero(maybe)
    kmin[idx] = _lots_paying_at_least(
        c[idx], lot[idx], q[idx], np.full(idx.size, instr.min_partial_value, dtype=np.int64))
    partial = maybe & (kmin <= kmax)

    unit_value = np.zeros(n_units, dtype=np.int64)
    np.add.at(unit_value, unit, c)
    unit_first = np.full(n_units, n, dtype=np.int64)
    np.minimum.at(unit_first, unit, np.arange(n, dtype=np.int64))
    unit_partial = np.zeros(n_units, dtype=bool)
    unit_partial[unit[partial]] = True

    head0 = np.concatenate([securities.ravel(), (cash + credit).ravel()]).astype(np.int64)

    e_pos = np.concatenate([del_sec, rec_sec, rec_cash, del_cash])
    ar = np.arange(n, dtype=np.int64)
    e_inst = np.concatenate([ar, ar, ar, ar])
    e_cash = np.repeat(np.array([False, False, True, True]), n)
    e_sign = np.repeat(np.array([-1, 1, -1, 1], dtype=np.int64), n)
    order = np.argsort(e_pos, kind="stable")
    e_ptr = np.zeros(npos + 1, dtype=np.int64)
    np.cumsum(np.bincount(e_pos, minlength=npos), out=e_ptr[1:])
    return _Problem(
        n=n, npos=npos, q=q, c=c, lot=lot,
        del_sec=del_sec, rec_sec=rec_sec, rec_cash=rec_cash, del_cash=del_cash,
        unit=unit, n_units=n_units, unit_value=unit_value, unit_partial=unit_partial,
        unit_first=unit_first, kmin=np.where(partial, kmin, 0), kmax=np.where(partial, kmax, 0),
        head0=head0, e_ptr=e_ptr, e_inst=e_inst[order], e_cash=e_cash[order],
        e_sign=e_sign[order],
    )


# --------------------------------------------------------------------------------------------
# State of a candidate settlement and its balances


@dataclass(slots=True)
class _State:
    """A candidate settlement being improved in place by the heuristic.

    Attributes:
        on: bool per instruction, settles (in full or in part).
        s: settled quantity per instruction.
        v: settled cash per instruction.
        head: headroom per position after the candidate settles (may be negative while repairing).
    """

    on: np.ndarray
    s: np.ndarray
    v: np.ndarray
    head: np.ndarray


def _apply_flows(p: _Problem, head: np.ndarray, idx: np.ndarray, ds: np.ndarray,
                 dv: np.ndarray) -> None:
    """Add to ``head`` the effect of settling ``ds`` more units and ``dv`` more cash at ``idx``."""
    np.add.at(
        head,
        np.concatenate([p.del_sec[idx], p.rec_sec[idx], p.rec_cash[idx], p.del_cash[idx]]),
        np.concatenate([-ds, ds, -dv, dv]),
    )


def _state_from(p: _Problem, on: np.ndarray, s: np.ndarray) -> _State:
    """Build a state (cash and headroom recomputed exactly) from settled flags and quantities."""
    s = np.where(on, s, 0)
    v = _cash_for(p, on, s)
    head = p.head0.copy()
    idx = np.flatnonzero(on)
    _apply_flows(p, head, idx, s[idx], v[idx])
    return _State(on=on.copy(), s=s, v=v, head=head)


def _cash_for(p: _Problem, on: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Cash paid: in full when the whole quantity settles, pro rata rounded down otherwise."""
    part = on & (s < p.q)
    v = np.where(on, p.c, 0)
    idx = np.flatnonzero(part)
    v[idx] = _prorata_floor(p.c[idx], s[idx], p.q[idx])
    return v


def _set(p: _Problem, st: _State, idx: np.ndarray, on: np.ndarray, s: np.ndarray) -> None:
    """Change instructions ``idx`` to the given flags and quantities, keeping headroom exact."""
    if idx.size == 0:
        return
    s = np.where(on, s, 0)
    part = on & (s < p.q[idx])
    v = np.where(on, p.c[idx], 0)
    v[part] = _prorata_floor(p.c[idx][part], s[part], p.q[idx][part])
    _apply_flows(p, st.head, idx, s - st.s[idx], v - st.v[idx])
    st.on[idx] = on
    st.s[idx] = s
    st.v[idx] = v


def _segment_starts(*sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where any of the (jointly sorted) keys changes, starting with 0."""
    m = sorted_keys[0].shape[0]
    change = np.zeros(m, dtype=bool)
    if m:
        change[0] = True
    for k in sorted_keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


def _exclusive_cumsum_by_segment(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per segment, the sum of the earlier values in that segment."""
    total = np.cumsum(values) - values
    seg_base = np.repeat(total[starts], np.diff(np.append(starts, values.shape[0])))
    return total - seg_base


# --------------------------------------------------------------------------------------------
# The deselection heuristic


def _deselect(p: _Problem, st: _State) -> None:
    """Drop or shrink settling instructions until no position is below its floor.

    Each round looks at every negative position at once. The units (link groups or single
    instructions) whose net flow there is an outflow are the candidates. Dropping one loses its
    value plus a knock-on estimate: the part of its inflows (securities to its receivers, cash
    to its deliverers) that those positions cannot spare at current balances, valued at the
    instruction's price, since those accounts will in turn have to drop about that much.
    Candidates are ranked by that loss per unit of outflow released (ties to the higher unit
    index, so earlier instructions keep priority), and two ways of covering the deficit are
    compared: the shortest prefix of the ranking, and the single cheapest unit that covers it
    alone (which avoids dropping a large instruction to cover a small remainder). The cheaper
    is dropped. When the last unit of a prefix (or the single unit) may settle in part, it is
    shrunk by whole lots just enough instead of dropped, or dropped if what remains is below
    the minimum. Dropping also removes inflows, which can push other positions negative; the
    next round repairs those. Every round removes settled quantity, so the loop ends.
    """
    while True:
        neg = np.flatnonzero(st.head < 0)
        if neg.size == 0:
            return
        cpos, cu, out = _contributors(p, st, neg)
        first = p.unit_first[cu]
        value = np.where(p.unit_partial[cu], st.v[first], p.unit_value[cu])
        loss = value + _KNOCK_ON_WEIGHT * _knock_on(p, st)[cu]
        order = np.lexsort((-cu, loss / out, cpos))
        cpos, cu, out, first, loss = cpos[order], cu[order], out[order], first[order], loss[order]
        seg = _segment_starts(cpos)
        before = _exclusive_cumsum_by_segment(out, seg)
        deficit = -st.head[cpos]
        take, before = _cheaper_cover(p.unit_partial[cu], out, loss, before, deficit, seg)
        cpos, cu, out, first, before, deficit = (
            cpos[take], cu[take], out[take], first[take], before[take], deficit[take]
        )
        shrink = p.unit_partial[cu] & (before + out > deficit)
        new_s = np.zeros(cu.shape[0], dtype=np.int64)
        si = np.flatnonzero(shrink)
        if si.size:
            new_s[si] = _shrunk_quantity(p, st, first[si], cpos[si], deficit[si] - before[si])
        target = np.full(p.n_units, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(target, cu, new_s)
        members = np.flatnonzero(st.on & (target[p.unit] < np.iinfo(np.int64).max))
        s_new = np.minimum(st.s[members], target[p.unit[members]])
        _set(p, st, members, s_new > 0, s_new)


def _contributors(
    p: _Problem, st: _State, neg: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, unit, net outflow) for every settling unit with a net outflow at ``neg``."""
    counts = p.e_ptr[neg + 1] - p.e_ptr[neg]
    ent = np.repeat(p.e_ptr[neg], counts) + (
        np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    )
    pos = np.repeat(neg, counts)
    inst = p.e_inst[ent]
    live = st.on[inst]
    pos, inst, ent = pos[live], inst[live], ent[live]
    amount = np.where(p.e_cash[ent], st.v[inst], st.s[inst]) * p.e_sign[ent]
    u = p.unit[inst]
    order = np.lexsort((u, pos))
    pos, u, amount = pos[order], u[order], amount[order]
    seg = _segment_starts(pos, u)
    net = np.add.reduceat(amount, seg) if seg.size else amount[:0]
    contrib = net < 0
    invariant(bool(contrib.any()), "a negative balance has no settling contributor")
    return pos[seg][contrib], u[seg][contrib], -net[contrib]


def _knock_on(p: _Problem, st: _State) -> np.ndarray:
    """Per unit, the value its recipients would lose with it: inflows they cannot spare.

    A receiver whose securities headroom is below the quantity it receives would have to drop
    deliveries of the missing units (valued at the instruction's price); a deliverer whose cash
    headroom is below the cash it receives would have to drop payments of the missing cash.
    """
    idx = np.flatnonzero(st.on)
    s, v = st.s[idx], st.v[idx]
    sec_short = s - np.clip(st.head[p.rec_sec[idx]], 0, s)
    cash_short = v - np.clip(st.head[p.del_cash[idx]], 0, v)
    price = p.c[idx] / np.maximum(p.q[idx], 1)
    knock = np.zeros(p.n_units, dtype=np.float64)
    np.add.at(knock, p.unit[idx], sec_short * price + cash_short)
    return knock


def _cheaper_cover(
    partial: np.ndarray, out: np.ndarray, loss: np.ndarray, before: np.ndarray,
    deficit: np.ndarray, seg: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per position (segments of ranked candidates): the prefix cover or the best single unit.

    Returns the mask of candidates to drop and, per candidate, the outflow already released by
    earlier dropped candidates at its position (0 for a single-unit cover).
    """
    m = out.shape[0]
    seg_len = np.diff(np.append(seg, m))
    share = np.where(partial, np.minimum(deficit - before, out) / out, 1.0)
    prefix = before < deficit
    prefix_loss = np.add.reduceat(np.where(prefix, loss * share, 0.0), seg)
    single_loss = np.where(
        out >= deficit, loss * np.where(partial, deficit / out, 1.0), np.inf)
    best = np.minimum.reduceat(single_loss, seg)
    use_single = best < prefix_loss
    first_best = np.minimum.reduceat(
        np.where(single_loss == np.repeat(best, seg_len), np.arange(m), m), seg)
    single = np.zeros(m, dtype=bool)
    single[first_best[use_single]] = True
    by_single = np.repeat(use_single, seg_len)
    return np.where(by_single, single, prefix), np.where(by_single, 0, before)


def _shrunk_quantity(
    p: _Problem, st: _State, inst: np.ndarray, pos: np.ndarray, release: np.ndarray
) -> np.ndarray:
    """Largest valid partial quantity of ``inst`` that releases at least ``release`` at ``pos``.

    ``pos`` is the deliverer's securities position (release units) or the receiver's cash
    position (release cash); 0 when no partial of at least the minimum size remains.
    """
    q, lot, c = p.q[inst], p.lot[inst], p.c[inst]
    is_sec = pos == p.del_sec[inst]
    k_sec = np.maximum(st.s[inst] - release, 0) // lot
    k_cash = _lots_paying_at_most(c, lot, q, np.maximum(st.v[inst] - release, 0), p.kmax[inst])
    k = np.minimum(np.where(is_sec, k_sec, k_cash), p.kmax[inst])
    return np.where(k >= p.kmin[inst], k * lot, 0)


def _unit_net_table(p: _Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Net flow of every unit at every position it touches when it settles in full."""
    unit4 = np.concatenate([p.unit] * 4)
    pos4 = np.concatenate([p.del_sec, p.rec_sec, p.rec_cash, p.del_cash])
    amt4 = np.concatenate([-p.q, p.q, -p.c, p.c])
    order = np.lexsort((pos4, unit4))
    unit4, pos4, amt4 = unit4[order], pos4[order], amt4[order]
    seg = _segment_starts(unit4, pos4)
    net = np.add.reduceat(amt4, seg) if seg.size else amt4[:0]
    keep = net != 0
    return unit4[seg][keep], pos4[seg][keep], net[keep]


def _readd(p: _Problem, st: _State) -> None:
    """Add back dropped units, highest value first, while every position stays feasible.

    Each round proposes every dropped unit that fits on its own at current balances (in full, or
    for a partial unit the most whole lots that fit, if at least the minimum). Proposals are
    ranked by value (ties to the lower unit index); at each position the ranked demands are
    accumulated and a unit is admitted only if the running total stays within the headroom at
    all its positions. Inflows are counted only once admitted, so the admitted set is feasible;
    the best-ranked proposal is always admitted, so each round makes progress. Rounds repeat
    while the previous one admitted something (at most ``_READD_ROUNDS_MAX``).
    """
    t_unit, t_pos, t_net = _unit_net_table(p)
    t_ptr = np.searchsorted(t_unit, np.arange(p.n_units + 1))
    rank = np.empty(p.n_units, dtype=np.int64)
    rank[np.lexsort((np.arange(p.n_units), -p.unit_value))] = np.arange(p.n_units)
    any_on = np.zeros(p.n_units, dtype=bool)
    any_on[p.unit[st.on]] = True
    cand = np.flatnonzero(~any_on)
    for _ in range(_READD_ROUNDS_MAX):
        if cand.size == 0:
            return
        counts = t_ptr[cand + 1] - t_ptr[cand]
        ent = np.repeat(t_ptr[cand], counts) + (
            np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        )
        e_unit, e_pos, e_net = t_unit[ent], t_pos[ent], t_net[ent]
        short = (e_net < 0) & (-e_net > st.head[e_pos])
        misfit = np.zeros(p.n_units, dtype=bool)
        misfit[e_unit[short]] = True
        full_ok = cand[~misfit[cand]]
        keep = ~misfit[e_unit] & (e_net < 0)
        d_unit, d_pos, d_amt = e_unit[keep], e_pos[keep], -e_net[keep]

        part_units = cand[misfit[cand] & p.unit_partial[cand]]
        part_inst = p.unit_first[part_units]
        part_s = _fitting_partial(p, st, part_inst)
        has = part_s > 0
        part_units, part_inst, part_s = part_units[has], part_inst[has], part_s[has]
        part_v = _prorata_floor(p.c[part_inst], part_s, p.q[part_inst])
        self_sec = p.del_sec[part_inst] == p.rec_sec[part_inst]
        self_cash = p.rec_cash[part_inst] == p.del_cash[part_inst]
        d_unit = np.concatenate([d_unit, part_units[~self_sec], part_units[~self_cash]])
        d_pos = np.concatenate([d_pos, p.del_sec[part_inst][~self_sec],
                                p.rec_cash[part_inst][~self_cash]])
        d_amt = np.concatenate([d_amt, part_s[~self_sec], part_v[~self_cash]])

        order = np.lexsort((rank[d_unit], d_pos))
        d_unit, d_pos, d_amt = d_unit[order], d_pos[order], d_amt[order]
        running = _exclusive_cumsum_by_segment(d_amt, _segment_starts(d_pos)) + d_amt
        blocked = np.zeros(p.n_units, dtype=bool)
        blocked[d_unit[running > st.head[d_pos]]] = True
        admit_full = full_ok[~blocked[full_ok]]
        admit_part = ~blocked[part_units]
        if admit_full.size == 0 and not admit_part.any():
            return
        admitted = np.zeros(p.n_units, dtype=bool)
        admitted[admit_full] = True
        members = np.flatnonzero(admitted[p.unit])
        _set(p, st, members, np.ones(members.size, dtype=bool), p.q[members])
        pi = part_inst[admit_part]
        _set(p, st, pi, np.ones(pi.size, dtype=bool), part_s[admit_part])
        admitted[part_units[admit_part]] = True
        cand = cand[~admitted[cand]]


def _fitting_partial(p: _Problem, st: _State, inst: np.ndarray) -> np.ndarray:
    """Most whole lots of each (unsettled) partial instruction that fit current headroom alone."""
    q, lot, c = p.q[inst], p.lot[inst], p.c[inst]
    self_sec = p.del_sec[inst] == p.rec_sec[inst]
    self_cash = p.rec_cash[inst] == p.del_cash[inst]
    big = np.iinfo(np.int64).max
    k_sec = np.where(self_sec, big, np.maximum(st.head[p.del_sec[inst]], 0) // lot)
    k_cash = np.where(
        self_cash, big,
        _lots_paying_at_most(c, lot, q, np.maximum(st.head[p.rec_cash[inst]], 0), p.kmax[inst]),
    )
    k = np.minimum(np.minimum(k_sec, k_cash), p.kmax[inst])
    return np.where(k >= p.kmin[inst], k * lot, 0)


def _greedy(p: _Problem, start_on: np.ndarray, start_s: np.ndarray) -> _State:
    """Repair a starting candidate to feasibility, then re-add what fits; checks the result."""
    st = _state_from(p, start_on, start_s)
    _deselect(p, st)
    _readd(p, st)
    _check(p, st)
    return st


def _check(p: _Problem, st: _State) -> None:
    """Recompute balances from scratch and halt if the bookkeeping or a floor was broken."""
    fresh = _state_from(p, st.on, st.s)
    invariant(bool(np.array_equal(fresh.head, st.head)), "settlement headroom bookkeeping drifted")
    invariant(bool(np.array_equal(fresh.v, st.v)), "settlement cash bookkeeping drifted")
    invariant(bool((st.head >= 0).all()), "settlement leaves a balance below its floor")
    whole = st.on & (st.s == p.q)
    lots_ok = whole | ~st.on | (
        (st.s % p.lot == 0) & (st.s // p.lot >= p.kmin) & (st.s // p.lot <= p.kmax)
        & p.unit_partial[p.unit]
    )
    invariant(bool(lots_ok.all()), "partial settlement is not a valid whole number of lots")
    unit_on = np.zeros(p.n_units, dtype=np.int64)
    np.add.at(unit_on, p.unit, st.on.astype(np.int64))
    unit_size = np.bincount(p.unit, minlength=p.n_units)
    invariant(bool(((unit_on == 0) | (unit_on == unit_size)).all()),
              "a link group settled only in part")


# --------------------------------------------------------------------------------------------
# LP relaxation and integer program


@dataclass(frozen=True, slots=True)
class _Model:
    """The integer program, in arrays ready for HiGHS.

    Columns: one binary per all-or-none unit; per partial instruction a binary ``f`` (settles in
    full), a semi-integer ``k`` (lots settled in part: 0 or ``kmin..kmax``) and an integer ``w``
    (cash paid for those lots). Rows: one per position that could go below its floor (others
    can never bind and are left out); per partial instruction ``kmax * f + k <= kmax`` (full or
    in part, not both) and ``-(quantity - 1) / quantity <= w - cash * lot * k / quantity <= 0``,
    whose only integer solution is ``w = floor(cash * lot * k / quantity)``: the integer program
    models the rounded-down cash exactly, and its LP relaxation contains every exact settlement,
    so the LP optimum bounds every answer.

    Attributes:
        value: objective coefficient per column (value settled), maximised.
        a: constraint matrix (CSR).
        row_lo: row lower bounds.
        row_hi: row upper bounds.
        col_lo: column lower bounds for the integer program.
        col_hi: column upper bounds.
        integrality: HiGHS integrality code per column (1 integer, 3 semi-integer).
        aon_units: unit of each all-or-none column.
        part_inst: instruction of each partial (f, k, w) column triple.
    """

    value: np.ndarray
    a: sps.csr_array
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integrality: np.ndarray
    aon_units: np.ndarray
    part_inst: np.ndarray


def _build_model(p: _Problem) -> _Model:
    """The integer program of :class:`_Model`, built from whole arrays (no per-row loop)."""
    is_part = p.unit_partial[p.unit]
    aon_units = np.flatnonzero(~p.unit_partial)
    ucol = np.full(p.n_units, -1, dtype=np.int64)
    ucol[aon_units] = np.arange(aon_units.size)
    pi = np.flatnonzero(is_part)
    n_aon, n_part = aon_units.size, pi.size
    f_col = n_aon + np.arange(n_part)
    k_col = f_col + n_part
    w_col = k_col + n_part
    n_col = n_aon + 3 * n_part

    potential_out = np.zeros(p.npos, dtype=np.int64)
    np.add.at(potential_out, p.del_sec, p.q)
    np.add.at(potential_out, p.rec_cash, p.c)
    at_risk = potential_out > p.head0
    row_of = np.cumsum(at_risk) - 1
    n_pos_rows = int(at_risk.sum())

    col_i = np.where(is_part, 0, ucol[p.unit])
    col_i[pi] = f_col
    qf, cf = p.q.astype(np.float64), p.c.astype(np.float64)
    price_lot = cf[pi] * p.lot[pi] / np.maximum(qf[pi], 1.0)
    lotf = p.lot[pi].astype(np.float64)
    kmaxf = p.kmax[pi].astype(np.float64)
    ones = np.ones(n_part)
    pos = np.concatenate([
        p.del_sec, p.rec_sec, p.rec_cash, p.del_cash,
        p.del_sec[pi], p.rec_sec[pi], p.rec_cash[pi], p.del_cash[pi],
    ])
    col = np.concatenate([col_i] * 4 + [k_col] * 2 + [w_col] * 2)
    val = np.concatenate([-qf, qf, -cf, cf, -lotf, lotf, -ones, ones])
    keep = at_risk[pos]
    r1 = n_pos_rows + np.arange(n_part)
    r2 = r1 + n_part
    rows = np.concatenate([row_of[pos[keep]], r1, r1, r2, r2])
    cols = np.concatenate([col[keep], f_col, k_col, w_col, k_col])
    vals = np.concatenate([val[keep], kmaxf, ones, ones, -price_lot])
    a = sps.coo_array((vals, (rows, cols)), shape=(n_pos_rows + 2 * n_part, n_col)).tocsr()
    a.sum_duplicates()
    row_lo = np.concatenate([
        -p.head0[at_risk].astype(np.float64), np.full(n_part, -np.inf), -(qf[pi] - 1) / qf[pi],
    ])
    row_hi = np.concatenate([np.full(n_pos_rows, np.inf), kmaxf, np.zeros(n_part)])

    value = np.concatenate([p.unit_value[aon_units].astype(np.float64), cf[pi], np.zeros(n_part), ones])
    col_lo = np.concatenate([np.zeros(n_aon + n_part), p.kmin[pi].astype(np.float64),
                             np.zeros(n_part)])
    col_hi = np.concatenate([np.ones(n_aon + n_part), kmaxf, cf[pi]])
    integrality = np.concatenate([
        np.ones(n_aon + n_part, dtype=np.int64), np.full(n_part, _SEMI_INTEGER, dtype=np.int64),
        np.ones(n_part, dtype=np.int64),
    ])
    invariant(n_col == value.shape[0], "model column count mismatch")
    return _Model(value=value, a=a, row_lo=row_lo, row_hi=row_hi, col_lo=col_lo, col_hi=col_hi,
                  integrality=integrality, aon_units=aon_units, part_inst=pi)


def _quiet_highs() -> highspy.Highs:
    """A HiGHS instance that writes nothing to stdout.

    highspy logs its banner while constructing the solver, before any option can be set (once
    per process). Standard output is where the command line writes its JSON, so the constructor
    runs with file descriptor 1 pointed at standard error; the banner stays visible there.
    """
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:
        saved = -1
    try:
        if saved >= 0:
            os.dup2(2, 1)
        highs = highspy.Highs()
    finally:
        if saved >= 0:
            os.dup2(saved, 1)
            os.close(saved)
    highs.setOptionValue("output_flag", False)
    return highs


def _highs_with(m: _Model, integer: bool, time_limit_s: float) -> highspy.Highs:
    """A solver loaded with the model, as an integer program or as its LP relaxation."""
    a = m.a.tocsc()
    lp = highspy.HighsLp()
    lp.num_col_ = a.shape[1]
    lp.num_row_ = a.shape[0]
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = m.value
    lp.col_lower_ = m.col_lo if integer else np.where(m.integrality == _SEMI_INTEGER, 0.0,
                                                       m.col_lo)
    lp.col_upper_ = m.col_hi
    lp.row_lower_ = m.row_lo
    lp.row_upper_ = m.row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = a.shape[1]
    lp.a_matrix_.num_row_ = a.shape[0]
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data
    if integer:
        kinds = [highspy.HighsVarType(k) for k in range(4)]
        lp.integrality_ = [kinds[k] for k in m.integrality.tolist()]
    highs = _quiet_highs()
    highs.setOptionValue("time_limit", float(time_limit_s))
    invariant(highs.passModel(lp) == highspy.HighsStatus.kOk, "HiGHS refused the model")
    return highs


def _floor_bound(bound: float) -> int:
    """An integer upper bound from a float one, with an allowance for round-off."""
    return int(np.floor(bound + abs(bound) * _BOUND_REL_TOL + _BOUND_ABS_TOL))


def _lagrangian_bound(m: _Model, row_dual: np.ndarray) -> float:
    """Upper bound on the LP optimum from any row multipliers, valid whatever their accuracy.

    For multipliers ``y`` (signs clipped so each row term is bounded: ``y <= 0`` on rows with
    no upper bound, ``y >= 0`` on rows with no lower bound), every feasible ``x`` satisfies
    ``value @ x <= sum_j max over [lo_j, hi_j] of (value - A'y)_j x_j
    + sum_i max over [row_lo_i, row_hi_i] of y_i a``. HiGHS' own objective is trusted only up
    to its tolerances; this bound holds for any ``y``, so the reported ``lp_bound`` is a proof.
    """
    y = np.where(np.isfinite(m.row_hi), row_dual, np.minimum(row_dual, 0.0))
    y = np.where(np.isfinite(m.row_lo), y, np.maximum(y, 0.0))
    reduced = m.value - m.a.T @ y
    col_lo = np.where(m.integrality == _SEMI_INTEGER, 0.0, m.col_lo)
    cols = np.maximum(reduced * col_lo, reduced * m.col_hi).sum()
    rows = np.where(y > 0, y * np.where(np.isfinite(m.row_hi), m.row_hi, 0.0),
                    y * np.where(np.isfinite(m.row_lo), m.row_lo, 0.0)).sum()
    return float(cols + rows)


def _solve_lp(m: _Model, time_limit_s: float) -> tuple[int | None, np.ndarray | None]:
    """LP relaxation: (bound floored, or None without duals; optimal solution or None)."""
    highs = _highs_with(m, integer=False, time_limit_s=time_limit_s)
    highs.run()
    finished = highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
    sol = highs.getSolution()
    if not sol.dual_valid:
        return None, None
    row_dual = np.asarray(sol.row_dual, dtype=np.float64)
    bound = min(_lagrangian_bound(m, row_dual), _lagrangian_bound(m, -row_dual))
    x = np.asarray(sol.col_value, dtype=np.float64) if finished and sol.value_valid else None
    return _floor_bound(bound), x


def _solve_milp(
    m: _Model, time_limit_s: float, mip_rel_gap: float, node_limit: int | None
) -> tuple[np.ndarray | None, float | None, bool]:
    """Run the integer program: (solution or None, dual bound or None, proven optimal).

    No starting incumbent is passed: with highspy 1.16 a solution given through ``setSolution``
    came back from ``getSolution`` in place of the better optimum the solver reported. The
    heuristic's answer is kept beside the solver's instead (the better one wins).
    """
    highs = _highs_with(m, integer=True, time_limit_s=time_limit_s)
    highs.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    if node_limit is not None:
        highs.setOptionValue("mip_max_nodes", int(node_limit))
    highs.run()
    info = highs.getInfo()
    status = highs.getModelStatus()
    if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return None, None, False
    x = np.asarray(highs.getSolution().col_value, dtype=np.float64)
    dual = float(info.mip_dual_bound)
    return x, (dual if np.isfinite(dual) else None), status == highspy.HighsModelStatus.kOptimal


def _rounded(p: _Problem, m: _Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round a solver vector (LP or MILP) to settled flags and quantities, before exact repair.

    A unit settles when its column is above one half. A partial instruction settles the
    quantity its columns add up to (``quantity * f + lot * k``): in full when that is the whole
    quantity, else rounded down to whole lots, and not at all below the minimum. Rounding down
    keeps the solution's outflows, so an LP solution needs little repair.
    """
    n_aon, n_part = m.aon_units.size, m.part_inst.size
    unit_on = np.zeros(p.n_units, dtype=bool)
    unit_on[m.aon_units] = x[:n_aon] > 0.5
    on = unit_on[p.unit]
    s = np.where(on, p.q, 0)
    pi = m.part_inst
    qf, lotf = p.q[pi].astype(np.float64), p.lot[pi].astype(np.float64)
    units = qf * x[n_aon:n_aon + n_part] + lotf * x[n_aon + n_part:n_aon + 2 * n_part]
    full = units >= qf - _ROUNDING_TOL
    lots = np.clip(np.floor(units / lotf + _ROUNDING_TOL), 0, p.kmax[pi]).astype(np.int64)
    lots = np.where(lots >= p.kmin[pi], lots, 0)
    s_part = np.where(full, p.q[pi], lots * p.lot[pi])
    on[pi] = full | (lots > 0)
    s[pi] = np.where(on[pi], s_part, 0)
    return on, s


# --------------------------------------------------------------------------------------------
# Public entry point


def settle_max_value(
    instr: InstructionSet,
    securities: np.ndarray,
    cash: np.ndarray,
    credit_limit: np.ndarray | None = None,
    *,
    time_limit_s: float = 10.0,
    exact_max_n: int = 20_000,
    allow_partial: bool = False,
    compute_lp_bound: bool = True,
    mip_rel_gap: float = 0.0,
    mip_node_limit: int | None = None,
) -> SettlementChoice:
    """Choose the instructions that settle so that the settled value is as large as possible.

    Feasible means: after every chosen instruction moves its securities and cash, each account's
    securities balance is >= 0 and each cash balance is >= -credit_limit; instructions sharing a
    link id settle all or none; with ``allow_partial`` an unlinked instruction marked
    ``partial_allowed`` may settle a whole number of lots below its quantity, worth at least
    ``min_partial_value``, paying ``floor(cash * settled / quantity)`` (rounded down so the payer
    never pays more than the proportion delivered).

    Up to three candidates are computed and the highest value wins (the earlier on a tie):

    1. the deselection heuristic from the whole batch (always);
    2. with ``compute_lp_bound``, when the LP relaxation finishes, its solution rounded and then
       repaired and extended by the same heuristic;
    3. for batches of at most ``exact_max_n`` instructions, the integer program's solution
       (which models the rounded-down partial cash exactly), re-checked in exact integers and
       repaired the same way if solver round-off left a balance short.

    ``time_limit_s`` bounds each HiGHS run (the LP relaxation, then the integer program), so a
    call may take about twice it. The heuristic is deterministic. The solver stages are
    deterministic for a given HiGHS build as long as they finish, but whether they finish within
    a time limit depends on the machine: replicated state that must be identical on every node
    uses the heuristic alone (``exact_max_n=0, compute_lp_bound=False``), or bounds the integer
    program with ``mip_node_limit`` and a time limit it never reaches.

    Args:
        instr: the instructions.
        securities: A x S int64 opening securities balances (>= 0).
        cash: A x C int64 opening cash balances, minor units.
        credit_limit: A x C int64 how far each cash balance may go below zero (default zeros).
        time_limit_s: seconds per HiGHS run.
        exact_max_n: largest batch sent to the integer program.
        allow_partial: let ``partial_allowed`` instructions settle in part.
        compute_lp_bound: solve the LP relaxation for ``lp_bound`` (else the total value).
        mip_rel_gap: relative gap at which the integer program stops (0: prove optimality).
        mip_node_limit: optional deterministic limit on branch-and-bound nodes.

    Returns:
        The choice, with the LP bound and the proven gap.

    Raises:
        InputError: malformed arrays, out-of-range indices, negative amounts, opening balances
            below their floors, or totals that could overflow int64.
    """
    securities = np.asarray(securities, dtype=np.int64)
    cash = np.asarray(cash, dtype=np.int64)
    credit = (
        np.zeros_like(cash) if credit_limit is None else np.asarray(credit_limit, dtype=np.int64)
    )
    _validate(instr, securities, cash, credit)
    p = _build_problem(instr, securities, cash, credit, allow_partial)
    total_value = int(p.c.sum())

    best, method = _greedy(p, np.ones(p.n, dtype=bool), p.q.copy()), Method.greedy
    use_exact = 0 < p.n <= exact_max_n
    model = _build_model(p) if (use_exact or compute_lp_bound) and p.n else None
    lp, lp_x = (None, None) if model is None or not compute_lp_bound else _solve_lp(
        model, time_limit_s)
    lp_bound = total_value if lp is None else min(lp, total_value)
    if model is not None and lp_x is not None:
        guided = _greedy(p, *_rounded(p, model, lp_x))
        if int(guided.v.sum()) > int(best.v.sum()):
            best, method = guided, Method.lp_rounding

    status, dual = Status.heuristic, None
    if use_exact and model is not None:
        x, dual, proven = _solve_milp(model, time_limit_s, mip_rel_gap, mip_node_limit)
        status = Status.solver_failed
        if x is not None:
            exact = _greedy(p, *_rounded(p, model, x))
            status = Status.optimal if proven else Status.time_limit
            if int(exact.v.sum()) >= int(best.v.sum()):
                best, method = exact, Method.milp
    value = int(best.v.sum())
    invariant(value <= lp_bound, f"settled value {value} exceeds the LP bound {lp_bound}")
    upper = lp_bound if dual is None else max(value, min(lp_bound, _floor_bound(dual)))
    if status is Status.optimal and value < upper:
        status = Status.near_optimal
    gap = 0.0 if upper <= 0 else 100.0 * (upper - value) / upper
    fraction = np.where(p.q > 0, best.s / np.maximum(p.q, 1), 1.0)
    return SettlementChoice(
        settled=best.on.copy(),
        settled_fraction=np.where(best.on, fraction, 0.0),
        settled_quantity=best.s.copy(),
        settled_cash=best.v.copy(),
        settled_value=value,
        lp_bound=lp_bound,
        upper_bound=upper,
        gap_pct=gap,
        lp_optimal=lp_x is not None,
        method=method,
        status=status,
    )
