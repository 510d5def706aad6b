"""Gross DvP instructions (BIS models 1 and 2) and the batch decisions over DvP instructions.

Under models 1 and 2 the settlement book keeps every accepted trade as its own instruction
(:class:`GrossInstructions`): the seller delivers to the buyer directly and the buyer pays the
seller; nothing is novated or netted. This module decides which of them settle:

* :func:`settle_in_order` (model 1): trade by trade in the order given, each against the balances
  the earlier ones left, its moves made at once; a trade that cannot settle waits (it never holds
  up the ones after it). Securities or cash a member receives from a later trade never help an
  earlier one, so a gridlock (each member waiting for another's delivery) does not settle.
* :func:`decide_gross_batch` (model 2): one batch by deselection, both legs of each instruction
  checked at once: per (seller, security), deliveries in priority order are kept while they fit
  its holding plus the securities the batch's kept instructions bring it; per (buyer, currency),
  payments in priority order are kept while they fit its cash plus what its kept sales bring in
  (net cash at the end of the cycle). Rounds repeat until nothing more is dropped; a dropped
  instruction is not tried again in the same run. Chains and cycles that only settle together
  settle, because the batch starts from every instruction.
* :func:`optimise`: any batch through ``settlement.optimize.settle_max_value``, with no wall
  clock: the integer program is bounded by ``mip_node_limit`` and used only up to
  ``exact_max_n`` instructions, the LP relaxation (the bound the gap is reported against) up to
  ``lp_bound_max_n`` and solved to its optimum, so every node reaches the same choice.
* :func:`apply_transfers`: a decided batch's moves, summed per account and asset and paired into
  conserving transfers through the ``Accounts`` (as many calls as accounts touched, not trades).

Imports clearhouse.core and clearhouse.settlement only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from clearhouse.core.exact import exact_bincount
from clearhouse.core.hashing import digest_arrays
from clearhouse.settlement.optimize import InstructionSet, SettlementChoice, settle_max_value

if TYPE_CHECKING:
    from clearhouse.settlement.cycle import AcceptedTrades, Accounts

NO_FAIL, SEC, CASH, LINK = 0, 1, 2, 3  # indices into settlement.dvp.REASONS
_CUMSUM_SAFE = 2**62


@dataclass(frozen=True, slots=True)
class GrossInstructions:
    """Open gross instructions, one per accepted trade not yet settled in full (int64 unless said).

    Attributes:
        seq: arrival number (unique, increasing); seller, buyer, security, currency: indices;
        quantity, cash: what remains to settle (the buyer pays ``cash`` minor units); due: the
        settlement day; first_due: when it first fell due (fail age counts from it); partial
        (bool): may settle in part; failed_runs: settlement runs it has failed; reason: why it
        last failed (index into ``settlement.dvp.REASONS``); flagged (bool): flagged for buy-in.
    """

    seq: np.ndarray
    seller: np.ndarray
    buyer: np.ndarray
    security: np.ndarray
    currency: np.ndarray
    quantity: np.ndarray
    cash: np.ndarray
    due: np.ndarray
    first_due: np.ndarray
    partial: np.ndarray
    failed_runs: np.ndarray
    reason: np.ndarray
    flagged: np.ndarray

    @classmethod
    def empty(cls) -> GrossInstructions:
        return cls(*(np.zeros(0, dtype=bool if f.name in ("partial", "flagged") else np.int64) for f in fields(cls)))

    @classmethod
    def of_trades(cls, t: AcceptedTrades, first_seq: int) -> GrossInstructions:
        n = len(t)
        zeros = np.zeros(n, dtype=np.int64)
        return cls(np.arange(first_seq, first_seq + n, dtype=np.int64), t.seller, t.buyer, t.security, t.currency,
                   t.quantity, t.value, t.settlement_day, t.settlement_day.copy(),
                   np.asarray(t.partial_allowed, dtype=bool), zeros, zeros.copy(), np.zeros(n, dtype=bool))

    def __len__(self) -> int:
        return len(self.seq)

    def columns(self) -> list[np.ndarray]:
        return [getattr(self, f.name) for f in fields(self)]

    def select(self, index: np.ndarray) -> GrossInstructions:
        return GrossInstructions(*(c[index] for c in self.columns()))

    def concat(self, other: GrossInstructions) -> GrossInstructions:
        """Both sets, in arrival order."""
        both = GrossInstructions(*(np.concatenate(ab) for ab in zip(self.columns(), other.columns(), strict=True)))
        return both.select(np.argsort(both.seq, kind="stable"))

    def after(self, sq: np.ndarray, sc: np.ndarray) -> GrossInstructions:
        """What remains once ``sq`` and ``sc`` settled; instructions settled in full dropped."""
        rest = replace(self, quantity=self.quantity - sq, cash=self.cash - sc)
        return rest.select(np.flatnonzero(rest.quantity > 0))

    def digest(self) -> bytes:
        return digest_arrays(*(c.astype(np.int64) for c in self.columns()))


@dataclass(frozen=True, slots=True)
class Decision:
    """What settled of each instruction of a batch.

    Attributes:
        settled_quantity, settled_cash: int64, >= 0, at most the instruction's (a part when
        partial); reason: int8 index into ``settlement.dvp.REASONS`` for what did not settle.
    """

    settled_quantity: np.ndarray
    settled_cash: np.ndarray
    reason: np.ndarray


class Helper(Protocol):
    """What trade-by-trade settlement may ask of the book: borrow securities, get central-bank credit."""

    def can_borrow(self, borrower: int, security: int, quantity: int, accounts: Accounts) -> bool: ...

    def borrow(self, borrower: int, security: int, quantity: int, currency: int, day: int,
               accounts: Accounts) -> None: ...

    def credit_room(self, member: int, currency: int, receipts: list[tuple[int, int]], accounts: Accounts) -> int: ...

    def credit(self, member: int, currency: int, amount: int, day: int, accounts: Accounts) -> None: ...


def largest_part(quantity: int, cash: int, lot: int, held: int, funds: int) -> int:
    """Largest whole-lot part below ``quantity`` the seller's ``held`` and the buyer's ``funds`` cover.

    A part ``p`` costs ``cash * p // quantity`` (rounded down), so the funds allow every ``p`` with
    ``cash * p < (funds + 1) * quantity``.
    """
    part = min(held, quantity - 1)
    if cash > 0:
        part = min(part, ((funds + 1) * quantity - 1) // cash)
    return max(0, part) // lot * lot


def settle_in_order(g: GrossInstructions, day: int, accounts: Accounts, helper: Helper, *,
                    partial: bool, min_value: int) -> Decision:
    """Model 1: settle ``g`` one instruction at a time, in its order, moving balances at once.

    A short leg is first covered, if it can be, by a borrow (securities) and central-bank credit
    (cash, against collateral that includes the securities being bought), both only when the
    whole instruction then settles; otherwise an instruction marked ``partial`` settles the
    largest whole-lot part its parties cover, worth at least ``min_value``, when ``partial`` is
    on; otherwise it fails, for the seller's securities first, then the buyer's cash.
    """
    n = len(g)
    sq = np.zeros(n, dtype=np.int64)
    sc = np.zeros(n, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)
    lots = {s: accounts.lot_size(s) for s in np.unique(g.security).tolist()}
    sec, cash = accounts.sec_bal, accounts.cash_bal
    rows = zip(g.seller.tolist(), g.buyer.tolist(), g.security.tolist(), g.currency.tolist(),
               g.quantity.tolist(), g.cash.tolist(), g.partial.tolist(), strict=True)
    for i, (seller, buyer, s, c, q, v, may_part) in enumerate(rows):
        held, funds = int(sec[seller, s]), int(cash[buyer, c])
        short_s, short_c = max(0, q - held), max(0, v - funds)
        if short_s or short_c:
            covered = (short_s == 0 or helper.can_borrow(seller, s, short_s, accounts)) and (
                short_c == 0 or helper.credit_room(buyer, c, [(s, v)], accounts) >= short_c)
            if covered:
                if short_s:
                    helper.borrow(seller, s, short_s, c, day, accounts)
                if short_c:
                    helper.credit(buyer, c, short_c, day, accounts)
                held, funds = int(sec[seller, s]), int(cash[buyer, c])
        part, pay = q, v
        if held < q or funds < v:
            reason[i] = SEC if held < q else CASH
            part = largest_part(q, v, lots[s], held, funds) if partial and may_part else 0
            pay = v * part // q
            if pay < min_value:
                part = pay = 0
        if part:
            accounts.move_securities(seller, buyer, s, part)
            accounts.move_cash(buyer, seller, c, pay)
            sq[i], sc[i] = part, pay
    return Decision(sq, sc, reason)


def _prefix_fit(group: np.ndarray, amount: np.ndarray, room: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Within each group, in ``order``, keep candidates while their running total fits ``room``.

    ``room`` is per candidate (its group's room). Returns the mask of candidates kept.
    """
    keep = np.zeros(len(group), dtype=bool)
    if not len(group):
        return keep
    o = np.lexsort((order, group))
    g, a = group[o], amount[o]
    start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    if float(np.abs(a).sum(dtype=np.float64)) < _CUMSUM_SAFE:
        cs = np.cumsum(a)
    else:  # exact beyond int64, in Python integers
        cs = np.cumsum(a.astype(object))
    seg = np.repeat(start, np.diff(np.r_[start, len(g)]))
    running = cs - (cs[seg] - a[seg])
    keep[o] = np.asarray(running <= room[o], dtype=bool)
    return keep


def decide_gross_batch(g: GrossInstructions, order: np.ndarray, sec: np.ndarray, cash: np.ndarray) -> Decision:
    """Model 2: which instructions of the batch settle in full (see the module docstring)."""
    n = len(g)
    n_sec, n_ccy = sec.shape[1], cash.shape[1]
    selected = np.ones(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int8)
    sell_key = g.seller * n_sec + g.security
    buy_key = g.buyer * n_sec + g.security
    pay_key = g.buyer * n_ccy + g.currency
    get_key = g.seller * n_ccy + g.currency
    while True:
        received = exact_bincount(buy_key, np.where(selected, g.quantity, 0), sec.size)
        idx = np.flatnonzero(selected)
        fits = _prefix_fit(sell_key[idx], g.quantity[idx], sec.ravel()[sell_key[idx]] + received[sell_key[idx]],
                           order[idx])
        drop = idx[~fits]
        selected[drop] = False
        reason[drop] = SEC
        paid_in = exact_bincount(get_key, np.where(selected, g.cash, 0), cash.size)
        idx = np.flatnonzero(selected)
        fits = _prefix_fit(pay_key[idx], g.cash[idx], cash.ravel()[pay_key[idx]] + paid_in[pay_key[idx]], order[idx])
        drop_c = idx[~fits]
        selected[drop_c] = False
        reason[drop_c] = CASH
        if not len(drop) and not len(drop_c):
            break
    return Decision(np.where(selected, g.quantity, 0), np.where(selected, g.cash, 0), reason)


def optimise(instr: InstructionSet, sec: np.ndarray, cash: np.ndarray, *, exact: bool, allow_partial: bool,
             exact_max_n: int, lp_max_n: int, node_limit: int) -> SettlementChoice:
    """The most value that can settle; with ``exact``, the integer program up to ``exact_max_n``
    instructions and the LP bound (and LP rounding) up to ``lp_max_n``.

    No time limit is set: the LP runs to its optimum and the integer program stops at its node
    limit, so the choice is the same on every node. Without ``exact`` only the optimiser's
    deterministic heuristic runs.
    """
    small = exact and instr.n <= exact_max_n
    return settle_max_value(instr, sec, cash, time_limit_s=math.inf, exact_max_n=exact_max_n if small else 0,
                            allow_partial=allow_partial, compute_lp_bound=exact and instr.n <= lp_max_n,
                            mip_rel_gap=0.0, mip_node_limit=node_limit)


def choice_event(choice: SettlementChoice, cycle: str, n: int) -> dict[str, Any]:
    """The optimiser's figures for a receipt: value settled, bounds, gap in basis points."""
    upper = choice.upper_bound
    gap_bps = (upper - choice.settled_value) * 10_000 // upper if upper > 0 else 0
    return {"event": "optimiser", "cycle": cycle, "instructions": n, "method": str(choice.method),
            "status": str(choice.status), "settled_value": choice.settled_value, "lp_bound": choice.lp_bound,
            "upper_bound": upper, "gap_bps": gap_bps}


def gross_reasons(g: GrossInstructions, sq: np.ndarray, sc: np.ndarray, sec: np.ndarray,
                  cash: np.ndarray) -> np.ndarray:
    """Why what did not settle did not, judged on the balances after the batch's moves.

    The seller's securities first (``SEC`` when it then holds less than the rest to deliver),
    then the buyer's cash, else ``LINK`` (the instruction could not settle together with the
    others: it lost out on a resource another instruction used).
    """
    n_sec, n_ccy = sec.shape[1], cash.shape[1]
    after_sec = sec.ravel() + exact_bincount(g.buyer * n_sec + g.security, sq, sec.size) \
        - exact_bincount(g.seller * n_sec + g.security, sq, sec.size)
    after_cash = cash.ravel() + exact_bincount(g.seller * n_ccy + g.currency, sc, cash.size) \
        - exact_bincount(g.buyer * n_ccy + g.currency, sc, cash.size)
    rest_q, rest_c = g.quantity - sq, g.cash - sc
    short_s = after_sec[g.seller * n_sec + g.security] < rest_q
    short_c = after_cash[g.buyer * n_ccy + g.currency] < rest_c
    reason = np.where(short_s, SEC, np.where(short_c, CASH, LINK)).astype(np.int8)
    return np.where((rest_q == 0) & (rest_c == 0), NO_FAIL, reason).astype(np.int8)


def gross_instruction_set(g: GrossInstructions, accounts: Accounts, min_value: int) -> InstructionSet:
    """The optimiser's view of gross instructions: seller delivers, buyer pays, none linked."""
    lots = np.array([accounts.lot_size(s) for s in range(accounts.sec_bal.shape[1])], dtype=np.int64)
    return InstructionSet(deliverer=g.seller, receiver=g.buyer, security=g.security, quantity=g.quantity,
                          currency=g.currency, cash=g.cash, link=np.full(len(g), -1, dtype=np.int64),
                          partial_allowed=g.partial.astype(bool), lot_size=lots[g.security],
                          min_partial_value=min_value)


def _pair(delta: np.ndarray, move: Any) -> None:
    """Conserving transfers realising ``delta`` (accounts x assets, each column summing to 0)."""
    acc, asset = np.nonzero(delta)
    order = np.lexsort((acc, asset))
    acc, asset = acc[order], asset[order]
    bounds = np.flatnonzero(np.r_[True, asset[1:] != asset[:-1], True]) if len(asset) else np.zeros(1, np.int64)
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        column = int(asset[a])
        owners = acc[a:b].tolist()
        amounts = delta[acc[a:b], column].tolist()
        givers = [[o, -d] for o, d in zip(owners, amounts, strict=True) if d < 0]
        takers = [[o, d] for o, d in zip(owners, amounts, strict=True) if d > 0]
        gi = ti = 0
        while gi < len(givers) and ti < len(takers):
            amount = min(givers[gi][1], takers[ti][1])
            move(givers[gi][0], takers[ti][0], column, amount)
            givers[gi][1] -= amount
            takers[ti][1] -= amount
            gi += givers[gi][1] == 0
            ti += takers[ti][1] == 0


def apply_transfers(g: GrossInstructions, sq: np.ndarray, sc: np.ndarray, accounts: Accounts) -> None:
    """Move what settled (seller -> buyer securities, buyer -> seller cash) as summed transfers."""
    n_acc, n_sec = accounts.sec_bal.shape
    n_ccy = accounts.cash_bal.shape[1]
    sec_delta = (exact_bincount(g.buyer * n_sec + g.security, sq, n_acc * n_sec)
                 - exact_bincount(g.seller * n_sec + g.security, sq, n_acc * n_sec)).reshape(n_acc, n_sec)
    cash_delta = (exact_bincount(g.seller * n_ccy + g.currency, sc, n_acc * n_ccy)
                  - exact_bincount(g.buyer * n_ccy + g.currency, sc, n_acc * n_ccy)).reshape(n_acc, n_ccy)
    _pair(sec_delta, accounts.move_securities)
    _pair(cash_delta, accounts.move_cash)
