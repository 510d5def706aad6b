"""Swaps and oracle corrections on the ledger: signed submissions, blocks, net settlement, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import cli, write_scenario

from clearhouse.contracts.cdm import parse_swap_terms
from clearhouse.contracts.engine import ContractEngine
from clearhouse.contracts.schedule import periods
from clearhouse.cycle.run import CCP, CENTRAL_BANK, SEQUENCER, SYSTEM_ROLES, Keys, open_node, sign
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.ledger.verify import verify_store
from clearhouse.node.node import Node
from clearhouse.state.kinds import Kind, encode_json
from clearhouse.state.machine import Receipt

pytestmark = pytest.mark.skipif(
    not hasattr(Kind, "contract"), reason="the state machine does not apply contract submissions yet"
)

DATA = Path(__file__).parent / "data"
USD_SWAP_FILE = DATA / "USD-Vanilla-swap-cdm-tradestate.json"
USD_SWAP = USD_SWAP_FILE.read_text()
LIBOR = "USD-LIBOR-BBA"
TERMS = parse_swap_terms(USD_SWAP, business_centers={"primaryBusinessCenters": ("USNY",)})
FLOATING = periods(TERMS, 0)
FIXINGS = [p.fixing_date for p in FLOATING]
PAY_1, PAY_2 = FLOATING[0].payment_date, FLOATING[1].payment_date
TRADE_DAY = dt.date(2011, 2, 8)
LATE = PAY_2 + dt.timedelta(days=3)
OPENING_USD_MINOR = 100_000_000  # 1,000,000.00 each


class Chain:
    """A ledger on disk with members A and B, an oracle, and USD cash; one block per call."""

    def __init__(self, data: Path) -> None:
        self.keys = Keys(data)
        self.node: Node = open_node(data)
        self.sent = 0
        genesis = {
            "network": "clearhouse",
            "sequencer": {"id": SEQUENCER, "public_key": self.keys[SEQUENCER].public_hex},
            "participants": [{"id": pid, "name": pid, "role": str(role), "public_key": self.keys[pid].public_hex}
                             for pid, role in SYSTEM_ROLES.items()],
            "holidays": [],
        }
        self.block(TRADE_DAY, (SEQUENCER, "genesis", genesis))
        admitted = [{"id": pid, "name": pid, "role": role, "public_key": self.keys[pid].public_hex}
                    for pid, role in (("A", "member"), ("B", "member"), ("ORACLE", "oracle"))]
        deposits = [{"participant": pid, "currency": "USD", "amount_minor": OPENING_USD_MINOR} for pid in "AB"]
        self.block(TRADE_DAY, (CCP, "admit", {"participants": admitted}),
                   (CENTRAL_BANK, "deposit", {"deposits": deposits}))

    def block(self, day: dt.date, *steps: tuple[str, str, Any]) -> list[Receipt]:
        for submitter, kind, body in steps:
            self.sent += 1
            self.node.submit(sign(self.keys[submitter], submitter, f"s{self.sent}", Kind(kind), encode_json(body)))
        self.node.seal(day, f"{day.isoformat()}T08:{self.sent // 60 % 60:02d}:{self.sent % 60:02d}Z")
        for receipt in self.node.last_receipts:
            assert receipt.status == "accepted", (receipt.submission_id, receipt.reason)
        return list(self.node.last_receipts)

    @property
    def engine(self) -> ContractEngine:
        return self.node.machine.contracts

    def created(self, receipts: list[Receipt]) -> list[str]:
        return [cid for receipt in receipts for cid in receipt.summary.get("created", [])]

    def swap(self, cleared: bool) -> None:
        proposal = self.created(self.block(TRADE_DAY, ("A", "contract", {
            "action": "create", "template": "swap_proposal", "cdm": USD_SWAP,
            "parties": {"Party1": "A", "Party2": "B"},
            "business_centers": {"primaryBusinessCenters": ["USNY"]},
        })))[0]
        (swap_id,) = self.created(self.block(TRADE_DAY, ("B", "contract", {
            "action": "exercise", "contract_id": proposal, "choice": "accept", "args": {}})))
        if cleared:
            request = self.created(self.block(TRADE_DAY, ("A", "contract", {
                "action": "create", "template": "proposal", "target": swap_id, "choice": "clear",
                "args": {"ccp": CCP}})))[0]
            self.block(TRADE_DAY, (CCP, "contract", {"action": "exercise", "contract_id": request,
                                                     "choice": "approve", "args": {}}))

    def close_day(self, day: dt.date, *first: tuple[str, str, Any]) -> list[Receipt]:
        iso = day.isoformat()
        return self.block(day, *first, (CCP, "cutoff", {"business_date": iso}),
                          (CCP, "settle", {"settlement_date": iso}))

    def lifecycle(self, day: dt.date) -> list[Receipt]:
        return self.close_day(day, (CCP, "contract", {"action": "lifecycle", "date": day.isoformat()}))

    def cash(self, participant: str) -> int:
        machine = self.node.machine
        return int(machine.cash_bal[machine.pindex[participant], machine.cindex["USD"]])


def _run(data: Path, rates: tuple[Decimal, Decimal], cleared: bool) -> Chain:
    chain = Chain(data)
    chain.swap(cleared)
    chain.block(TRADE_DAY, ("ORACLE", "observation", {"observations": [
        {"id": f"L{i}", "index": LIBOR, "fixing_date": FIXINGS[i].isoformat(), "rate": str(rates[i])}
        for i in (0, 1)
    ]}))
    chain.lifecycle(PAY_1)
    chain.lifecycle(PAY_2)
    return chain


RATES = st.decimals(min_value=Decimal("-0.01"), max_value=Decimal("0.12"), places=5)


@settings(max_examples=8, deadline=None)
@given(right=RATES, wrong=RATES, other=RATES, wrong_period=st.sampled_from([0, 1]), cleared=st.booleans())
def test_reversals_and_corrected_payments_settle_like_the_right_fixing_from_the_start(
    right: Decimal, wrong: Decimal, other: Decimal, wrong_period: int, cleared: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rates_right = (right, other) if wrong_period == 0 else (other, right)
        rates_wrong = (wrong, other) if wrong_period == 0 else (other, wrong)
        truth = _run(Path(tmp) / "right", rates_right, cleared)
        fixed = _run(Path(tmp) / "wrong", rates_wrong, cleared)
        truth.close_day(LATE)
        if wrong != right:
            receipts = fixed.close_day(LATE, ("ORACLE", "observation", {"correct": f"L{wrong_period}",
                                                                        "rate": str(right)}))
            assert receipts[0].summary["cash_flows"] == (4 if cleared else 2)
            swaps = [c.state for c in fixed.engine.contracts(template="swap") if c.state.payments]
            assert all(s.trade.history[-1].event == "Correction" for s in swaps)
            kinds = sorted(p.kind for s in swaps for p in s.payments)
            assert kinds.count("Reversal") == len(swaps)
        else:
            fixed.close_day(LATE)
        for party in ("A", "B", CCP):
            assert fixed.cash(party) == truth.cash(party), party
        assert fixed.cash("A") + fixed.cash("B") == 2 * OPENING_USD_MINOR
        assert fixed.cash(CCP) == 0
        for chain in (truth, fixed):
            assert len(chain.node.machine.positions) == 0
            chain.node.store.close()


def test_the_ledger_replays_to_the_same_contracts(tmp_path: Path) -> None:
    chain = _run(tmp_path / "d", (Decimal("0.003"), Decimal("0.0028")), cleared=True)
    chain.close_day(LATE, ("ORACLE", "observation", {"correct": "L0", "rate": "0.004"}))
    digest = chain.engine.digest()
    chain.node.store.close()
    store = SqliteStore(tmp_path / "d" / "ledger.sqlite")
    report = verify_store(store)
    store.close()
    assert report.verified, report.reason
    replayed = open_node(tmp_path / "d")
    assert replayed.machine.contracts.digest() == digest
    assert [c.contract_id for c in replayed.machine.contracts.contracts(template="swap")] == ["S2:1", "S4:1", "S4:2"]
    replayed.store.close()


def test_swaps_and_oracle_commands(tmp_path: Path) -> None:
    scenario = write_scenario(
        tmp_path / "scenario",
        participants="participant_id,name\nA,Bank A\nB,Bank B",
        securities="security_id,currency,lot_size\nXYZ,USD,1",
        holdings="participant_id,security_id,quantity\nB,XYZ,100",
        cash="participant_id,currency,amount\nA,USD,1000000\nB,USD,1000000",
        trades="trade_id,trade_date,buyer,seller,security_id,quantity,price\nT1,2011-02-04,A,B,XYZ,10,5",
    )
    data = tmp_path / "data"
    code, stdout = cli("run", str(scenario), "--data", str(data), "--cycle", "T+0", "--json")
    assert code == 0, stdout
    code, stdout = cli("swaps", "import", str(USD_SWAP_FILE), "--party1", "A", "--party2", "B", "--clear",
                       "--business-center", "primaryBusinessCenters=USNY", "--date", "2011-02-08",
                       "--data", str(data), "--json")
    assert code == 0, stdout
    imported = json.loads(stdout)
    assert len(imported["cleared"]) == 2
    code, stdout = cli("oracle", "publish", LIBOR, FIXINGS[0].isoformat(), "0.003", "--id", "L0",
                       "--data", str(data), "--json")
    assert code == 0, stdout
    assert json.loads(stdout)["status"] == "accepted"
    code, stdout = cli("swaps", "lifecycle", "--until", PAY_1.isoformat(), "--data", str(data), "--json")
    assert code == 0, stdout
    days = json.loads(stdout)["days"]
    assert days[0]["date"] == "2011-02-08" and days[-1]["date"] == PAY_1.isoformat()
    assert days[-1]["lifecycle"]["cash_flows"] == 2
    side_a = imported["cleared"][0]
    code, stdout = cli("swaps", "schedule", side_a, "--data", str(data), "--json")
    assert code == 0, stdout
    first = json.loads(stdout)["periods"][0]
    assert (first["floating_rate"], first["floating_amount"], first["paid"]) == ("0.003", "7500.00", True)
    code, stdout = cli("oracle", "correct", "L0", "0.004", "--data", str(data), "--json")
    assert code == 0, stdout
    assert json.loads(stdout)["summary"]["cash_flows"] == 4
    code, stdout = cli("swaps", "list", "--template", "swap", "--data", str(data), "--json")
    assert code == 0 and [c["contract_id"] for c in json.loads(stdout)["contracts"]] == [
        imported["swap"], *imported["cleared"]]
    code, stdout = cli("oracle", "correct", "L0", "0.004", "--data", str(data), "--json")
    assert code == 0 and json.loads(stdout)["status"] == "exists"
    code, stdout = cli("oracle", "correct", "L9", "0.004", "--data", str(data))
    assert code == 2
    code, stdout = cli("verify", "--data", str(data), "--json")
    assert code == 0 and json.loads(stdout)["verified"]
