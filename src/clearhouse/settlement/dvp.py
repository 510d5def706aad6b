"""Net batch DvP (BIS model 3) against the CCP, deciding by deselection which instructions settle.

Each instruction is one member's net position in one security for the cycle: a delivery to or
receipt from the CCP with the cash of that security's trades against it. Start from every
instruction selected, then repeat until nothing changes:

1. a delivery the member cannot cover from its holding fails (``insufficient_securities``);
2. a member whose payments in a currency exceed its cash plus what its own settling deliveries
   bring in fails every paying instruction in that currency (``insufficient_cash``), in full;
3. the CCP passes on only what it receives: where receipts of a security exceed the CCP's holding
   plus settling deliveries, receipts are deselected from the back of the priority order (oldest
   fail first, then member index), and likewise deliveries where the CCP's cash would go negative
   (``linked_instruction_failed``).

Each round deselects at least one instruction or stops, so the loop ends; the outcome is a pure
function of the inputs. Both legs of a settled instruction move together, so no balance ever
goes negative and the CCP's holdings plus open positions stay flat.
Imports clearhouse.core only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clearhouse.core.exact import exact_bincount
from clearhouse.core.results import FailReason

REASONS = (
    None,
    FailReason.insufficient_securities,
    FailReason.insufficient_cash,
    FailReason.linked_instruction_failed,
)
_NO_FAIL, _SEC, _CASH, _LINK = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """Which instructions settled and why the others did not.

    Attributes:
        settled: bool per instruction.
        reason: index into ``REASONS`` per instruction (0 when settled).
        rounds: deselection rounds it took.
    """

    settled: np.ndarray
    reason: np.ndarray
    rounds: int


def _tail_cut(group: np.ndarray, amount: np.ndarray, room: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Deselect from the back of ``order`` within each group until the group's sum fits its room.

    ``amount`` >= 0 per candidate, ``room`` per group (how much may be taken), ``order`` the
    priority of the candidates (first = most senior). Returns the mask of candidates to drop.
    """
    drop = np.zeros(len(group), dtype=bool)
    if len(group) == 0:
        return drop
    # walk each group from its most senior candidate; keep while the running sum fits
    idx = np.lexsort((order, group))
    g, a = group[idx], amount[idx]
    csum = np.cumsum(a)
    start = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    offset = np.repeat(csum[start] - a[start], np.diff(np.r_[start, len(g)]))
    running = csum - offset
    drop[idx] = running > room[g]
    return drop


def settle_batch(
    member: np.ndarray,
    security: np.ndarray,
    quantity: np.ndarray,
    cash: np.ndarray,
    currency: np.ndarray,
    priority: np.ndarray,
    securities: np.ndarray,
    cash_balances: np.ndarray,
    ccp: int,
) -> BatchOutcome:
    """Decide a net batch. Balances are (participants x securities) and (participants x currencies)."""
    n = len(member)
    selected = np.ones(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int8)
    n_sec, n_ccy = securities.shape[1], cash_balances.shape[1]
    deliver = quantity < 0
    receive = quantity > 0
    # step 1 does not depend on other instructions: one instruction per (member, security)
    short = deliver & (securities[member, security] + quantity < 0)
    selected &= ~short
    reason[short] = _SEC
    mc_key = member * n_ccy + currency
    uniq_mc, mc_group = np.unique(mc_key, return_inverse=True)
    mc_balance = cash_balances[uniq_mc // n_ccy, uniq_mc % n_ccy]
    rounds = 0
    while True:
        rounds += 1
        changed = False
        # 2. member cash, per (member, currency): payments against cash plus settling receipts
        net = exact_bincount(mc_group, np.where(selected, cash, 0), len(uniq_mc))
        short_mc = mc_balance + net < 0
        fail = selected & (cash < 0) & short_mc[mc_group]
        if fail.any():
            selected &= ~fail
            reason[fail] = _CASH
            changed = True
        # 3a. CCP securities: receipts limited to holding + settling deliveries
        delivered = exact_bincount(security, np.where(selected & deliver, -quantity, 0), n_sec)
        room = securities[ccp] + delivered
        cand = np.flatnonzero(selected & receive)
        drop = _tail_cut(security[cand], quantity[cand], room, priority[cand])
        if drop.any():
            selected[cand[drop]] = False
            reason[cand[drop]] = _LINK
            changed = True
        # 3b. CCP cash: payments to deliverers limited to its cash + settling receipts' payments
        paid_in = exact_bincount(currency, np.where(selected & (cash < 0), -cash, 0), n_ccy)
        room_c = cash_balances[ccp] + paid_in
        cand = np.flatnonzero(selected & (cash > 0))
        drop = _tail_cut(currency[cand], cash[cand], room_c, priority[cand])
        if drop.any():
            selected[cand[drop]] = False
            reason[cand[drop]] = _LINK
            changed = True
        if not changed:
            break
    return BatchOutcome(settled=selected, reason=reason, rounds=rounds)
