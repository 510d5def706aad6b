"""The head state as rows for the store, so reads need no replay (and verify can compare them).

Imports clearhouse.core, clearhouse.ledger.store and clearhouse.state only.
"""

from __future__ import annotations

from clearhouse.core.calendar import from_day_number
from clearhouse.core.money import format_minor
from clearhouse.ledger.store import StateRow
from clearhouse.state.machine import StateMachine


def state_rows(m: StateMachine) -> list[StateRow]:
    rows: list[StateRow] = []
    pids = [p.id for p in m.participants]
    sids = [s.id for s in m.securities]
    for p, s in zip(*m.sec_bal.nonzero(), strict=True):
        rows.append(StateRow("securities", pids[p], sids[s], str(int(m.sec_bal[p, s]))))
    for p, c in zip(*m.cash_bal.nonzero(), strict=True):
        ccy = m.currencies[c]
        rows.append(StateRow("cash", pids[p], ccy, format_minor(int(m.cash_bal[p, c]), ccy)))
    pos = m.positions
    for i in range(len(pos)):
        sec = m.securities[int(pos.security[i])]
        rows.append(
            StateRow(
                "position",
                pids[int(pos.member[i])],
                f"{sec.id}|{from_day_number(int(pos.day[i])).isoformat()}",
                f"{int(pos.quantity[i])}|{format_minor(int(pos.cash[i]), sec.currency)}|"
                f"{sec.currency}|{from_day_number(int(pos.first_due[i])).isoformat()}",
            )
        )
    rows.sort(key=lambda r: (r.table, r.owner, r.asset))
    return rows
