"""Checkers: what must hold of every node at every commit, and of every hostile input.

The simulation compares each node against the reference model (``sim.reference``) after every
block it commits: the answer to every submission, every trade's result code, every balance and
open position, and the outcome of every settlement instruction. The same comparisons drive the
hostile-input tests: a decoder may only answer a batch or ``InputError``, and a batch of any
content applied to the state machine must get the reference's answer without an exception.
A failed check raises :class:`SimFailure` (or returns its description), named in domain terms.
Imports clearhouse.core, clearhouse.clearing, clearhouse.cycle.scenario, clearhouse.ledger,
clearhouse.state and clearhouse.sim only; never an interface.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl

from clearhouse.clearing.batch import TRADE_COLUMNS, decode_trades
from clearhouse.core.errors import InputError, InvariantViolation
from clearhouse.core.results import TradeResult
from clearhouse.cycle.scenario import load_scenario
from clearhouse.ledger.records import Submission
from clearhouse.sim.reference import Outcome, Reference, Snapshot
from clearhouse.state.machine import StateMachine

DIFFERENCES_SHOWN_MAX = 6


class SimFailure(Exception):
    """A checker found the system wrong; the message says where, in domain terms."""


def observe(m: StateMachine) -> Snapshot:
    """A node's balances and open positions by id, in the reference's terms."""
    pids = [p.id for p in m.participants]
    sids = [s.id for s in m.securities]
    balances: dict[tuple[str, str, str], int] = {}
    p_idx, s_idx = np.nonzero(m.sec_bal)
    for p, s in zip(p_idx.tolist(), s_idx.tolist(), strict=True):
        balances[("securities", pids[p], sids[s])] = int(m.sec_bal[p, s])
    p_idx, c_idx = np.nonzero(m.cash_bal)
    for p, c in zip(p_idx.tolist(), c_idx.tolist(), strict=True):
        balances[("cash", pids[p], m.currencies[c])] = int(m.cash_bal[p, c])
    pos = m.positions
    positions = {
        (pids[mem], sids[sec], day): (qty, cash, first)
        for mem, sec, day, qty, cash, first in zip(*(c.tolist() for c in pos.columns()), strict=True)
    }
    return Snapshot(balances, positions)


def snapshot_diff(expected: Snapshot, actual: Snapshot) -> list[str]:
    """Differences between the reference's view and a node's, e.g. 'M001 AUD cash: 5 expected, 7 held'."""
    out = []
    for key in sorted(set(expected.balances) | set(actual.balances)):
        e, a = expected.balances.get(key, 0), actual.balances.get(key, 0)
        if e != a:
            table, owner, asset = key
            out.append(f"{owner} {asset} {table}: reference {e}, node {a}")
    for where in sorted(set(expected.positions) | set(actual.positions)):
        e_pos, a_pos = expected.positions.get(where), actual.positions.get(where)
        if e_pos != a_pos:
            member, security, day = where
            due = dt.date(1970, 1, 1) + dt.timedelta(days=day)
            out.append(f"{member} open position in {security} due {due} (qty, cash, first due): "
                       f"reference {e_pos}, node {a_pos}")
    return out[:DIFFERENCES_SHOWN_MAX]


def decode_receipt(data: bytes) -> tuple[str, str, bytes]:
    """(submission id, status, trade result codes) of an encoded receipt."""
    n = int.from_bytes(data[:4], "little")
    head = json.loads(data[4 : 4 + n])
    return str(head["id"]), str(head["status"]), data[4 + n :]


def outcome_diff(expected: list[Outcome], receipts: list[bytes]) -> list[str]:
    """Where the ledger's receipts differ from the reference's answers."""
    if len(expected) != len(receipts):
        return [f"{len(receipts)} receipts for {len(expected)} submissions"]
    names = [r.name for r in TradeResult]
    out = []
    for e, raw in zip(expected, receipts, strict=True):
        sid, status, codes = decode_receipt(raw)
        if (sid, status) != (e.submission_id, e.status):
            out.append(f"submission {e.submission_id}: reference {e.status}, ledger {status}")
        elif codes != e.codes:
            for row, (want, got) in enumerate(zip(e.codes, codes, strict=False)):
                if want != got:
                    out.append(f"submission {sid} row {row}: reference {names[want]}, ledger "
                               f"{names[got] if got < len(names) else got}")
            if len(codes) != len(e.codes):
                out.append(f"submission {sid}: {len(codes)} result codes for {len(e.codes)} rows")
    return out[:DIFFERENCES_SHOWN_MAX]


def cycle_diff(reference: Reference, machine: StateMachine) -> list[str]:
    """The last settlement cycle's instructions and outcomes, reference against ledger."""
    if len(reference.cycles) != len(machine.history.cycles):
        return [f"{len(machine.history.cycles)} settlement cycles on the ledger, "
                f"{len(reference.cycles)} in the reference"]
    if not reference.cycles:
        return []
    day, want = reference.cycles[-1]
    got = machine.history.cycles[-1]
    reasons = ["", "insufficient_securities", "insufficient_cash", "linked_instruction_failed"]
    ledger = [
        (int(m), int(s), int(q), int(c), int(f), bool(ok), reasons[int(r)])
        for m, s, q, c, f, ok, r in zip(got.member, got.security, got.quantity, got.cash,
                                         got.first_due, got.settled, got.reason, strict=True)
    ]
    mine = [(i.member, i.security, i.quantity, i.cash, i.first_due, i.settled, i.reason) for i in want]
    if got.day != day or sorted(ledger) != sorted(mine):
        only_ref = sorted(set(mine) - set(ledger))[:3]
        only_led = sorted(set(ledger) - set(mine))[:3]
        return [f"settlement cycle of day {day}: instructions (member, security, qty, cash, first "
                f"due, settled, reason) only in the reference {only_ref}, only on the ledger {only_led}"]
    return []


# ---------------------------------------------------------------- hostile input


def check_decode_trades(payload: bytes) -> None:
    """Decoding any bytes gives the documented string columns or ``InputError``, nothing else."""
    try:
        frame = decode_trades(payload)
    except InputError:
        return
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a panic inside a native library is a BaseException
        raise SimFailure(f"decode_trades raised {type(exc).__name__}: {exc}") from exc
    if tuple(frame.columns) != TRADE_COLUMNS or any(t != pl.String for t in frame.dtypes):
        raise SimFailure(f"decode_trades returned columns {frame.columns} of types {frame.dtypes}")


def check_submission(
    machine: StateMachine, reference: Reference, day: dt.date, submission: Submission
) -> list[str]:
    """Apply one submission as the next block to both; every difference, or an escape, described."""
    height = machine.height + 1
    try:
        receipts, rejected = machine.apply_block(height, day, (submission,))
    except InvariantViolation as exc:
        return [f"invariant broke: {exc}"]
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a panic inside a native library is a BaseException
        return [f"apply_block raised {type(exc).__name__}: {exc}"]
    expected = reference.apply_block(height, day, (submission,))
    problems = outcome_diff(expected, [r.encode() for r in receipts])
    names = {r.name for r in TradeResult}
    problems += [f"rejection reason {r.reason!r} is not a documented result code"
                 for r in rejected if submission.kind == "trades" and r.reason not in names]
    summary = receipts[0].summary
    if submission.kind == "trades" and summary and summary["submitted"] != summary["accepted"] + summary["rejected"]:
        problems.append(f"submitted {summary['submitted']} != accepted {summary['accepted']} "
                        f"+ rejected {summary['rejected']}")
    problems += snapshot_diff(reference.snapshot(), observe(machine))
    problems += reference.invariant_problems()
    return problems


def check_scenario_dir(directory: Path) -> None:
    """Loading a scenario directory gives a scenario or ``InputError``, nothing else."""
    try:
        load_scenario(directory)
    except InputError:
        return
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a panic inside a native library is a BaseException
        raise SimFailure(f"load_scenario raised {type(exc).__name__}: {exc}") from exc
