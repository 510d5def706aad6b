"""The run report: the JSON contract of `clearhouse run --json` and `clearhouse demo --json`.

Built from the state machine's history (itself a pure function of the log). Amounts are decimal
strings in the currency's minor-unit precision; quantity > 0 means the member receives
securities, cash > 0 means it receives cash. Values are summed per currency; the top-level
value fields hold the sum when the run has one currency and are null otherwise (``by_currency``
always has each). The settlement book's history adds what the settlement rules did: loans,
central-bank credit, partial settlements, buy-in flags, cancellations, the optimiser's figures and
the fails still open. Imports clearhouse.core, clearhouse.settlement, clearhouse.state,
clearhouse.ledger and clearhouse.node only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clearhouse.core.calendar import from_day_number
from clearhouse.core.exact import exact_bincount
from clearhouse.core.money import format_minor
from clearhouse.ledger.verify import VerifyReport
from clearhouse.node.node import Node
from clearhouse.settlement.dvp import REASONS
from clearhouse.state.kinds import Role
from clearhouse.state.machine import Positions, StateMachine


def _by_currency(m: StateMachine, amounts: np.ndarray) -> dict[str, str]:
    return {ccy: format_minor(int(amounts[i]), ccy) for i, ccy in enumerate(m.currencies)}


def _single(m: StateMachine, amounts: np.ndarray) -> str | None:
    used = [i for i, a in enumerate(amounts) if a]
    if len(m.currencies) == 1 or len(used) <= 1:
        i = used[0] if used else 0
        return format_minor(int(amounts[i]), m.currencies[i]) if m.currencies else "0.00"
    return None


def net_positions(m: StateMachine) -> Positions:
    """Every cut-off's netting, summed per (member, security, settlement date)."""
    acc = Positions.empty()
    for nets in m.history.nettings:
        acc = acc.merged(
            Positions(nets.member, nets.security, nets.settlement_day, nets.quantity, nets.cash,
                      nets.settlement_day),
            len(m.participants), len(m.securities),
        )
    return acc


def netting_summary(m: StateMachine, nets: Positions) -> dict[str, Any]:
    n_ccy = max(len(m.currencies), 1)
    gross = np.zeros(n_ccy, dtype=np.int64)
    gross_count = 0
    for n in m.history.nettings:
        gross[: len(n.gross_value)] += n.gross_value
        gross_count += n.gross_obligations
    ccy = m.security_currency[nets.security] if len(nets) else nets.security
    net = exact_bincount(ccy, np.abs(nets.cash), n_ccy)
    total_gross, total_net = int(gross.sum()), int(net.sum())
    reduction = 100.0 * (1 - total_net / total_gross) if total_gross else 0.0
    return {
        "gross_obligations": gross_count,
        "net_obligations": len(nets),
        "gross_value": _single(m, gross),
        "net_value": _single(m, net),
        "reduction_pct": round(reduction, 2),
        "by_currency": {
            c: {"gross_value": format_minor(int(gross[i]), c), "net_value": format_minor(int(net[i]), c)}
            for i, c in enumerate(m.currencies)
        },
    }


def build_report(node: Node, verified: VerifyReport | None) -> dict[str, Any]:
    m = node.machine
    h = m.history
    pids = [p.id for p in m.participants]
    secs = m.securities
    nets = net_positions(m)
    positions = [
        {
            "participant_id": pids[int(nets.member[i])],
            "settlement_date": from_day_number(int(nets.day[i])).isoformat(),
            "security_id": secs[int(nets.security[i])].id,
            "quantity": int(nets.quantity[i]),
            "cash": format_minor(int(nets.cash[i]), secs[int(nets.security[i])].currency),
            "currency": secs[int(nets.security[i])].currency,
        }
        for i in range(len(nets))
    ]
    cash_totals: dict[tuple[str, str, str], int] = {}
    for i in range(len(nets)):
        key = (pids[int(nets.member[i])], from_day_number(int(nets.day[i])).isoformat(),
               secs[int(nets.security[i])].currency)
        cash_totals[key] = cash_totals.get(key, 0) + int(nets.cash[i])
    net_cash = [
        {"participant_id": p, "settlement_date": d, "currency": c, "amount": format_minor(v, c)}
        for (p, d, c), v in sorted(cash_totals.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2]))
    ]
    n_ccy = max(len(m.currencies), 1)
    settled_v = np.zeros(n_ccy, dtype=np.int64)
    failed_v = np.zeros(n_ccy, dtype=np.int64)
    settled = failed = 0
    fails = []
    for cyc in h.cycles:
        ccy = m.security_currency[cyc.security] if len(cyc.security) else cyc.security
        ok = cyc.settled
        settled_v += exact_bincount(ccy, np.abs(cyc.settled_cash), n_ccy)
        failed_v += exact_bincount(ccy, np.abs(cyc.cash - cyc.settled_cash), n_ccy)
        settled += int(ok.sum())
        failed += int((~ok).sum())
        for i in np.flatnonzero(~ok).tolist():
            sec = secs[int(cyc.security[i])]
            fails.append({
                "participant_id": pids[int(cyc.member[i])],
                "security_id": sec.id,
                "settlement_date": from_day_number(cyc.day).isoformat(),
                "due_date": from_day_number(int(cyc.first_due[i])).isoformat(),
                "reason": str(REASONS[int(cyc.reason[i])]),
                "quantity": int(cyc.quantity[i]),
                "cash": format_minor(int(cyc.cash[i]), sec.currency),
                "settled_quantity": int(cyc.settled_quantity[i]),
                "currency": sec.currency,
            })
    members = [i for i, p in enumerate(m.participants) if p.role in (Role.member, Role.ccp)]
    balances_sec = [
        {"participant_id": pids[p], "security_id": secs[s].id, "quantity": int(m.sec_bal[p, s])}
        for p in members for s in range(len(secs)) if m.sec_bal[p, s]
    ]
    balances_cash = [
        {"participant_id": pids[p], "currency": c, "amount": format_minor(int(m.cash_bal[p, i]), c)}
        for p in members for i, c in enumerate(m.currencies) if m.cash_bal[p, i]
    ]
    return {
        "trades": {"submitted": h.submitted, "accepted": h.accepted, "rejected": h.submitted - h.accepted},
        "rejections": [
            {"trade_id": r.item_id, "reason": r.reason, "submission_id": r.submission_id}
            for r in h.rejected
        ],
        "refused_submissions": [
            {"submission_id": r.submission_id, "status": r.status, "reason": r.reason} for r in h.refused
        ],
        "reference_rejections": [
            {"submission_id": r.submission_id, "item_id": r.item_id, "reason": r.reason}
            for r in h.reference_rejected
        ],
        "netting": netting_summary(m, nets),
        "net_positions": positions,
        "net_cash": net_cash,
        "settlement": {
            "settled": settled,
            "failed": failed,
            "settled_value": _single(m, settled_v),
            "failed_value": _single(m, failed_v),
            "by_currency": {
                c: {"settled_value": format_minor(int(settled_v[i]), c),
                    "failed_value": format_minor(int(failed_v[i]), c)}
                for i, c in enumerate(m.currencies)
            },
        },
        "fails": fails,
        "open_positions": len(m.positions),
        "balances": {"securities": balances_sec, "cash": balances_cash},
        **settlement_extras(m),
        "ledger": {
            "height": node.height,
            "head_hash": node.head_hash.hex(),
            "state_root": m.state_root().hex(),
            "verified": bool(verified.verified) if verified else None,
        },
    }


def _money(event: dict[str, Any], keys: tuple[str, ...], currency: str) -> dict[str, Any]:
    """The event with its amounts (minor units) as decimal strings of ``currency``."""
    return {k: (format_minor(v, currency) if k in keys else v) for k, v in event.items() if k != "event"}


def _security_currency(m: StateMachine, security_id: str) -> str:
    return m.securities[m.sindex[security_id]].currency


def _loans(m: StateMachine, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    loans: dict[int, dict[str, Any]] = {}
    for e in events:
        kind = e["event"]
        if kind == "loan":
            loans[e["loan_id"]] = {
                **{k: e[k] for k in ("loan_id", "lender", "borrower", "security", "quantity", "fee_bps", "currency")},
                "value": format_minor(e["value"], e["currency"]), "lent": e["date"], "returned": None,
                "fee": None, "recalled": None, "buy_in": False, "status": "open",
            }
        elif kind == "loan_returned":
            loans[e["loan_id"]].update(returned=e["date"], fee=format_minor(e["fee"], e["currency"]),
                                       status="returned")
        elif kind in ("recall_failed", "buy_in") and "loan_id" in e:
            loans[e["loan_id"]]["buy_in"] |= kind == "buy_in"
    for e in events:
        if e["event"] == "recall":
            for loan in loans.values():
                if (loan["lender"], loan["security"]) == (e["lender"], e["security"]) and loan["recalled"] is None \
                        and loan["lent"] <= e["date"] and (loan["returned"] is None or loan["returned"] >= e["date"]):
                    loan["recalled"] = e["date"]
    return [loans[k] for k in sorted(loans)]


def _credit(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    credits: dict[int, dict[str, Any]] = {}
    for e in events:
        if not e["event"].startswith("credit_"):
            continue
        c = credits.setdefault(e["credit_id"], {
            "credit_id": e["credit_id"], "member": e["member"], "currency": e["currency"], "date": e["date"],
            "granted": 0, "repaid": 0, "outstanding": 0, "status": "open", "not_repaid_on": None, "collateral": [],
        })
        if e["event"] == "credit_granted":
            c["granted"] += e["amount"]
            c["outstanding"] += e["amount"]
        else:
            c["repaid"] += e["repaid"]
            c["outstanding"] = e["outstanding"]
            c["status"] = "repaid" if e["outstanding"] == 0 else "overdue"
        if e["event"] == "credit_not_repaid":
            c["not_repaid_on"] = e["date"]
            c["collateral"] = e["collateral"]
    return [{**c, **{k: format_minor(c[k], c["currency"]) for k in ("granted", "repaid", "outstanding")}}
            for _, c in sorted(credits.items())]


def _open_fails(m: StateMachine) -> list[dict[str, Any]]:
    """Fails still open at the end: age in settlement runs failed, last reason, what is left to settle."""
    pids = [p.id for p in m.participants]
    book = m.settlement
    g = book.gross
    rows = [
        {"seller": pids[int(g.seller[k])], "buyer": pids[int(g.buyer[k])],
         "security_id": m.securities[int(g.security[k])].id,
         "first_due": from_day_number(int(g.first_due[k])).isoformat(), "age": int(g.failed_runs[k]),
         "reason": str(REASONS[int(g.reason[k])]), "quantity": int(g.quantity[k]),
         "cash": format_minor(int(g.cash[k]), m.currencies[int(g.currency[k])]),
         "currency": m.currencies[int(g.currency[k])], "buy_in": bool(g.flagged[k])}
        for k in np.flatnonzero(g.failed_runs > 0).tolist()
    ]
    runs = sorted({c.day for c in m.history.cycles})
    last_reason: dict[tuple[int, int], int] = {}
    for cyc in m.history.cycles:
        for k in np.flatnonzero(~cyc.settled).tolist():
            last_reason[(int(cyc.member[k]), int(cyc.security[k]))] = int(cyc.reason[k])
    pos = m.positions
    last = runs[-1] if runs else -1
    for k in np.flatnonzero(pos.first_due <= last).tolist():
        member, sec = int(pos.member[k]), int(pos.security[k])
        first = int(pos.first_due[k])
        rows.append({
            "participant_id": pids[member], "security_id": m.securities[sec].id,
            "first_due": from_day_number(first).isoformat(), "age": sum(1 for d in runs if d >= first),
            "reason": str(REASONS[last_reason.get((member, sec), 0)]), "quantity": int(pos.quantity[k]),
            "cash": format_minor(int(pos.cash[k]), m.securities[sec].currency),
            "currency": m.securities[sec].currency,
        })
    return rows


def settlement_extras(m: StateMachine) -> dict[str, Any]:
    """The report's keys about the settlement rules: what the book did beyond the cycles."""
    events = m.settlement.history
    partials = []
    for e in (e for e in events if e["event"] == "partial"):
        ccy = _security_currency(m, e["security"])
        partials.append({**_money(e, ("cash", "settled_cash"), ccy), "currency": ccy})
    flagged = []
    for e in (e for e in events if e["event"] == "buy_in"):
        ccy = e.get("currency") or _security_currency(m, e["security"])
        flagged.append({**_money(e, ("cash", "value"), ccy), "currency": ccy})
    cancelled = []
    for e in (e for e in events if e["event"] == "cancelled"):
        ccy = _security_currency(m, e["security"])
        cancelled.append({**_money(e, ("cash",), ccy), "currency": ccy})
    return {
        "settlement_rules": m.settlement.config.to_json(),
        "partial_settlements": partials,
        "loans": _loans(m, events),
        "credit": _credit(events),
        "buy_ins": flagged,
        "cancellations": cancelled,
        "optimiser": [{k: v for k, v in e.items() if k != "event"} for e in events if e["event"] == "optimiser"],
        "open_fails": _open_fails(m),
    }
