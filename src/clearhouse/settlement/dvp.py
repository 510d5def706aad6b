"""Net batch DvP (BIS model 3) against the CCP, deciding by deselection which instructions settle.

Each instruction is one member's net position in one security for the cycle: a delivery to or
receipt from the CCP with the cash of that security's trades against it. Start from every
instruction selected, then repeat until nothing changes:

1. a delivery the member cannot cover from its holding fails (``insufficient_securities``);
2. a member whose payments in a currency exceed its cash plus what its own settling deliveries
   bring in fails every paying instruction in that currency (``insufficient_cash``), in full;
3. the CCP passes on only what it receives: each security's receipts are allocated from the CCP's
   holding plus settling deliveries in priority order (oldest fail first, then member index),
   a receipt that does not fit being skipped (``linked_instruction_failed``); where the CCP's cash
   would go negative, it first gives back deliveries it does not need to serve the allocated
   receipts (most junior first), and only then deselects deliveries it cannot pay for.

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


def _greedy_fit(group: np.ndarray, amount: np.ndarray, room: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Within each group, keep candidates in priority order while they fit the group's room.

    A candidate that does not fit is skipped and later (smaller) ones may still fit, as in a
    depository's allocation of available securities. ``amount`` >= 0 per candidate, ``room`` per
    group, ``order`` the priority (lower = more senior). Returns the mask of candidates to drop.
    Groups whose candidates all fit are settled without a Python loop; the loop runs only over the
    candidates of groups that are short.
    """
    drop = np.zeros(len(group), dtype=bool)
    if len(group) == 0:
        return drop
    total = exact_bincount(group, amount, len(room))
    short = np.flatnonzero(total > room)
    if len(short) == 0:
        return drop
    idx = np.flatnonzero(np.isin(group, short))
    idx = idx[np.lexsort((order[idx], group[idx]))]
    left = {int(g): int(room[g]) for g in short}
    for i, g, a in zip(idx.tolist(), group[idx].tolist(), amount[idx].tolist(), strict=True):
        if a <= left[g]:
            left[g] -= a
        else:
            drop[i] = True
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
        # 3a. CCP securities: receipts allocated from its holding plus settling deliveries
        delivered = exact_bincount(security, np.where(selected & deliver, -quantity, 0), n_sec)
        room = securities[ccp] + delivered
        cand = np.flatnonzero(selected & receive)
        drop = _greedy_fit(security[cand], quantity[cand], room, priority[cand])
        if drop.any():
            selected[cand[drop]] = False
            reason[cand[drop]] = _LINK
            changed = True
        # 3b. CCP cash: payments to deliverers limited to its cash plus settling receipts' payments
        paid_in = exact_bincount(currency, np.where(selected & (cash < 0), -cash, 0), n_ccy)
        paid_out = exact_bincount(currency, np.where(selected & (cash > 0), cash, 0), n_ccy)
        room_c = cash_balances[ccp] + paid_in
        if (paid_out > room_c).any():
            # first give back deliveries the CCP does not need to serve this cycle's receipts
            received = exact_bincount(security, np.where(selected & receive, quantity, 0), n_sec)
            surplus = securities[ccp] + delivered - received
            cand = np.flatnonzero(selected & deliver & (paid_out > room_c)[currency])
            # most junior first: invert the priority so the greedy fit keeps juniors to drop
            too_big = _greedy_fit(security[cand], -quantity[cand], surplus, -priority[cand])
            spare = cand[~too_big]
            if len(spare):
                selected[spare] = False
                reason[spare] = _LINK
                changed = True
            else:
                cand = np.flatnonzero(selected & (cash > 0))
                drop = _greedy_fit(currency[cand], cash[cand], room_c, priority[cand])
                selected[cand[drop]] = False
                reason[cand[drop]] = _LINK
                changed = changed or bool(drop.any())
        if not changed:
            break
    return BatchOutcome(settled=selected, reason=reason, rounds=rounds)
