"""The head state as rows for the store, so reads need no replay (and verify can compare them).

Imports clearhouse.core, clearhouse.ledger.store and clearhouse.state only.
"""

from __future__ import annotations

import numpy as np

from clearhouse.core.calendar import from_day_number
from clearhouse.core.money import format_minor
from clearhouse.ledger.store import StateRow
from clearhouse.state.machine import StateMachine


def state_rows(m: StateMachine) -> list[StateRow]:
    """Every non-zero balance and every open position, sorted by (table, owner, asset)."""
    pids = [p.id for p in m.participants]
    sids = [s.id for s in m.securities]
    rows: list[StateRow] = []
    p_idx, s_idx = np.nonzero(m.sec_bal)
    rows.extend(
        StateRow("securities", pids[p], sids[s], str(v))
        for p, s, v in zip(p_idx.tolist(), s_idx.tolist(), m.sec_bal[p_idx, s_idx].tolist(), strict=True)
    )
    for p, c in zip(*m.cash_bal.nonzero(), strict=True):
        ccy = m.currencies[c]
        rows.append(StateRow("cash", pids[p], ccy, format_minor(int(m.cash_bal[p, c]), ccy)))
    pos = m.positions
    days = {int(d): from_day_number(int(d)).isoformat() for d in np.unique(np.r_[pos.day, pos.first_due])}
    for mem, sec, day, qty, cash, first in zip(*(c.tolist() for c in pos.columns()), strict=True):
        security = m.securities[sec]
        rows.append(
            StateRow("position", pids[mem], f"{security.id}|{days[day]}",
                     f"{qty}|{format_minor(cash, security.currency)}|{security.currency}|{days[first]}")
        )
    rows.sort(key=lambda r: (r.table, r.owner, r.asset))
    return rows


def holdings_view(rows: list[StateRow]) -> dict[str, list[dict[str, object]]]:
    """A participant's rows as JSON-able lists: securities, cash, and open positions (with the day
    each first fell due; whether one is failing depends on the caller's view of today)."""
    view: dict[str, list[dict[str, object]]] = {"securities": [], "cash": [], "open_positions": []}
    for r in rows:
        if r.table == "securities":
            view["securities"].append({"security_id": r.asset, "quantity": int(r.value)})
        elif r.table == "cash":
            view["cash"].append({"currency": r.asset, "amount": r.value})
        elif r.table == "position":
            sec, due = r.asset.split("|")
            qty, cash, ccy, first = r.value.split("|")
            view["open_positions"].append({
                "security_id": sec, "settlement_date": due, "quantity": int(qty), "cash": cash,
                "currency": ccy, "first_due": first,
            })
    return view
