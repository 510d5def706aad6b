"""Deliberately broken variants of the system, to show that the simulation's checkers catch them.

Each mutant swaps in a subclass of the state machine (or changes how the simulated sequencer
uses its store); the core itself is never edited. ``run_simulation(seed, mutant=name)`` runs one.
Imports clearhouse.core, clearhouse.ledger.records, clearhouse.settlement and clearhouse.state only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np

from clearhouse.core.calendar import day_number
from clearhouse.ledger.records import Submission
from clearhouse.settlement.cycle import Accounts, CycleInstructions, CycleResult, SettlementBook
from clearhouse.state.kinds import Role
from clearhouse.state.machine import StateMachine


class SkipCashLeg(StateMachine):
    """In cycles on every third day, the last settled instruction that pays a member cash moves its
    securities but not its cash: one leg of a DvP skipped (the CCP keeps the money)."""

    def _settle(self, sub: Submission, day: dt.date):  # type: ignore[no-untyped-def]
        cycles = len(self.history.cycles)
        result = super()._settle(sub, day)
        if len(self.history.cycles) > cycles and day_number(day) % 3 == 0:
            cyc = self.history.cycles[-1]
            paid = np.flatnonzero(cyc.settled & (cyc.cash > 0))
            if len(paid):
                i = int(paid[-1])
                ccy = int(self.security_currency[cyc.security[i]])
                self.cash_bal[cyc.member[i], ccy] -= cyc.cash[i]
                self.cash_bal[self.ccp, ccy] += cyc.cash[i]
                self._balances_dirty = True
        return result


class MisdirectedCash(StateMachine):
    """The last settled payment to a member of each cycle is booked to another member: totals are
    conserved, no balance goes negative and the CCP stays flat, so only the reference sees it."""

    def _settle(self, sub: Submission, day: dt.date):  # type: ignore[no-untyped-def]
        cycles = len(self.history.cycles)
        result = super()._settle(sub, day)
        if len(self.history.cycles) > cycles:
            cyc = self.history.cycles[-1]
            paid = np.flatnonzero(cyc.settled & (cyc.cash > 0))
            members = [i for i, p in enumerate(self.participants) if p.role == Role.member]
            if len(paid) and len(members) > 1:
                i = int(paid[-1])
                payee = int(cyc.member[i])
                other = members[(members.index(payee) + 1) % len(members)]
                ccy = int(self.security_currency[cyc.security[i]])
                self.cash_bal[payee, ccy] -= cyc.cash[i]
                self.cash_bal[other, ccy] += cyc.cash[i]
                self._balances_dirty = True
        return result


class _NewestFirstBook(SettlementBook):
    """The machine's settlement book with every cycle's seniority turned upside down."""

    def __init__(self, book: SettlementBook) -> None:
        super().__init__(book.config)
        self.book = book

    def settle(self, day: int, instructions: CycleInstructions, securities: np.ndarray, cash: np.ndarray,
               ccp: int, accounts: Accounts) -> CycleResult:
        p = instructions.priority
        flipped = replace(instructions, priority=p.max() - p if len(p) else p)
        return self.book.settle(day, flipped, securities, cash, ccp, accounts)


class NewestFirst(StateMachine):
    """The CCP allocates what it holds and receives to the newest instructions first instead of
    the oldest fails: a valid-looking outcome that breaks the documented priority."""

    def _settle(self, sub: Submission, day: dt.date):  # type: ignore[no-untyped-def]
        book = self.settlement
        self.settlement = _NewestFirstBook(book)
        try:
            return super()._settle(sub, day)
        finally:
            self.settlement = book


@dataclass(frozen=True, slots=True)
class Mutant:
    """A broken variant.

    Attributes:
        name: what ``mutant=`` selects.
        description: what is broken.
        machine: the state machine class every node runs.
        sequencer_sync_every: the sequencer syncs its store after every this many blocks
            (1 is correct: a block is durable before anyone hears of it).
    """

    name: str
    description: str
    machine: type[StateMachine] = StateMachine
    sequencer_sync_every: int = 1


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant("skip_cash_leg", SkipCashLeg.__doc__ or "", machine=SkipCashLeg),
        Mutant("misdirected_cash", MisdirectedCash.__doc__ or "", machine=MisdirectedCash),
        Mutant("newest_first", NewestFirst.__doc__ or "", machine=NewestFirst),
        Mutant("publish_before_sync",
               "The sequencer announces blocks before they are durable (it syncs every 4 blocks): "
               "a crash then loses blocks that replicas and clients were told of.",
               sequencer_sync_every=4),
    )
}
