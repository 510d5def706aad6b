"""The contract engine without the ledger: authority, swaps, the oracle, lifecycle and corrections."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clearhouse.contracts as contracts_package
from clearhouse.contracts.cdm import parse_swap_terms
from clearhouse.contracts.compression import Compression, SwapPosition, compress, positions_from_swaps
from clearhouse.contracts.engine import DEFAULT_TEMPLATES, CashFlowInstruction, ContractEngine, ContractOutcome
from clearhouse.contracts.events import Observation, execution, payments_due, reset
from clearhouse.contracts.framework import Args, Context, ContractError, Effect, Template, any_of, choice
from clearhouse.contracts.schedule import periods
from clearhouse.contracts.swap_templates import Swap
from clearhouse.core.errors import InputError
from clearhouse.core.hashing import canonical_json

DATA = Path(__file__).parent / "data"
USD_SWAP = (DATA / "USD-Vanilla-swap-cdm-tradestate.json").read_text()
CENTERS = {"primaryBusinessCenters": ["USNY"]}
LIBOR = "USD-LIBOR-BBA"
PARTICIPANTS = {"A": "member", "B": "member", "C": "member", "CCP": "ccp", "ORACLE": "oracle", "ORACLE2": "oracle"}
TRADE_DAY = dt.date(2011, 2, 8)
TERMS = parse_swap_terms(USD_SWAP, business_centers={"primaryBusinessCenters": ("USNY",)})
FLOATING = periods(TERMS, 0)
FIXINGS = [p.fixing_date for p in FLOATING]  # 2011-02-04, 2011-05-05, 2011-08-04, ...
PAY_1, PAY_2 = FLOATING[0].payment_date, FLOATING[1].payment_date  # 2011-05-09, 2011-08-08 (with fixed)


class Ledger:
    """An engine and the participants, with one call per submission."""

    def __init__(self, templates: tuple[type[Template], ...] = DEFAULT_TEMPLATES) -> None:
        self.engine = ContractEngine(templates)
        self.flows: list[CashFlowInstruction] = []

    def submit(self, kind: str, who: str, body: dict[str, Any], day: dt.date = TRADE_DAY) -> ContractOutcome:
        outcome = self.engine.apply(kind, who, PARTICIPANTS[who], canonical_json(body), day, PARTICIPANTS)
        self.flows.extend(outcome.cash_flows)
        return outcome

    def ok(self, kind: str, who: str, body: dict[str, Any], day: dt.date = TRADE_DAY) -> ContractOutcome:
        outcome = self.submit(kind, who, body, day)
        assert outcome.status == "accepted", outcome.reason
        return outcome

    def exercise(self, who: str, contract_id: str, choice_name: str, day: dt.date = TRADE_DAY,
                 **args: Any) -> ContractOutcome:
        body = {"action": "exercise", "contract_id": contract_id, "choice": choice_name, "args": args}
        return self.submit("contract", who, body, day)

    def swap(self, proposer: str = "A", other: str = "B") -> str:
        mapping = {"party1": proposer, "party2": other}
        proposal = self.ok("contract", proposer, {"action": "create", "template": "swap_proposal",
                                                  "cdm": USD_SWAP, "parties": mapping,
                                                  "business_centers": CENTERS})
        accepted = self.exercise(other, proposal.summary["contract_id"], "accept")
        assert accepted.status == "accepted", accepted.reason
        (swap_id,) = accepted.summary["created"]
        return swap_id

    def agree(self, proposer: str, approvers: list[str], target: str, choice_name: str,
              day: dt.date = TRADE_DAY, **args: Any) -> ContractOutcome:
        """Propose a choice needing several parties, then approve it in turn; the last answer."""
        created = self.ok("contract", proposer, {"action": "create", "template": "proposal", "target": target,
                                                 "choice": choice_name, "args": args}, day)
        outcome = created
        for approver in approvers:
            outcome = self.exercise(approver, created.summary["contract_id"], "approve", day)
        return outcome

    def clear(self, swap_id: str, by: str = "A") -> tuple[str, str]:
        outcome = self.agree(by, ["CCP"], swap_id, "clear", ccp="CCP")
        assert outcome.status == "accepted", outcome.reason
        side_a, side_b = outcome.summary["created"]
        return side_a, side_b

    def publish(self, *rates: tuple[str, dt.date, str], day: dt.date = TRADE_DAY) -> ContractOutcome:
        items = [{"id": oid, "index": LIBOR, "fixing_date": fixing.isoformat(), "rate": rate}
                 for oid, fixing, rate in rates]
        return self.submit("observation", "ORACLE", {"observations": items}, day)

    def lifecycle(self, day: dt.date) -> ContractOutcome:
        return self.ok("contract", "CCP", {"action": "lifecycle", "date": day.isoformat()}, day)

    def state(self, contract_id: str) -> Any:
        record = self.engine.contract(contract_id)
        assert record is not None
        return record.state


def net(flows: list[CashFlowInstruction]) -> dict[tuple[str, str], int]:
    """Received minus paid per (participant, currency), zero entries dropped."""
    totals: dict[tuple[str, str], int] = {}
    for flow in flows:
        for party, sign in ((flow.receiver, 1), (flow.payer, -1)):
            totals[(party, flow.currency)] = totals.get((party, flow.currency), 0) + sign * flow.amount_minor
    return {key: value for key, value in sorted(totals.items()) if value}


# --------------------------------------------------------------------------- authority


def test_propose_accept_needs_each_signatory_on_the_ledger() -> None:
    ledger = Ledger()
    create = {"action": "create", "template": "swap_proposal", "cdm": USD_SWAP,
              "parties": {"party1": "A", "party2": "B"}, "business_centers": CENTERS}
    stranger = ledger.submit("contract", "C", create)
    assert stranger.status == "rejected" and "one of the swap's two counterparties" in stranger.reason
    proposal = ledger.ok("contract", "A", create).summary["contract_id"]
    record = ledger.engine.contract(proposal)
    assert record is not None and (record.signatories, record.observers) == (("A",), ("B",))
    for who in ("A", "C"):
        refused = ledger.exercise(who, proposal, "accept")
        assert refused.status == "rejected" and refused.reason.endswith("needs the authority of B")
    accepted = ledger.exercise("B", proposal, "accept")
    (swap_id,) = accepted.summary["created"]
    assert accepted.summary["archived"] == [proposal]
    swap = ledger.engine.contract(swap_id)
    assert swap is not None and swap.template == "swap" and swap.signatories == ("A", "B")
    assert [e.event for e in swap.state.trade.history] == ["Execution"]
    assert ledger.exercise("B", proposal, "accept").reason == f"no active contract {proposal!r}"
    for template in ("swap", "observation"):
        direct = ledger.submit("contract", "A", {"action": "create", "template": template})
        assert direct.status == "rejected" and "cannot be created by a participant" in direct.reason


def test_both_parties_must_agree_to_terminate_and_a_proposal_collects_them() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    alone = ledger.exercise("A", swap_id, "terminate")
    assert alone.status == "rejected" and alone.reason.endswith("needs the authority of B")
    fee = {"amount": "2000", "currency": "USD", "payer": "A", "receiver": "B"}
    proposed = ledger.ok("contract", "A", {"action": "create", "template": "proposal", "target": swap_id,
                                           "choice": "partial_termination",
                                           "args": {"decrease": "3000000", "fee": fee}})
    proposal_id = proposed.summary["contract_id"]
    assert ledger.exercise("C", proposal_id, "approve").status == "rejected"
    done = ledger.exercise("B", proposal_id, "approve")
    assert done.status == "accepted", done.reason
    assert done.summary["updated"] == [swap_id] and done.summary["archived"] == [proposal_id]
    (flow,) = done.cash_flows
    assert (flow.payer, flow.receiver, flow.currency, flow.amount_minor) == ("A", "B", "USD", 200_000)
    assert flow.settlement_date == TRADE_DAY and flow.reference.startswith(f"{swap_id}/")
    assert ledger.state(swap_id).trade.notionals == (Decimal("7000000.00"), Decimal("7000000.00"))
    direct = ledger.submit("contract", "A", {"action": "create", "template": "proposal", "target": swap_id,
                                             "choice": "reset", "args": {"observation": "X"}})
    assert direct.status == "rejected" and "exercise it directly" in direct.reason
    ended = ledger.agree("B", ["A"], swap_id, "terminate")
    assert ended.status == "accepted", ended.reason
    closed = ledger.state(swap_id)
    assert (closed.trade.position_state, closed.trade.closed_state) == ("Closed", "Terminated")
    assert ledger.exercise("A", swap_id, "reset", observation="X").reason.endswith("is closed (Terminated)")


def test_proposals_can_be_declined_or_withdrawn() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    first = ledger.ok("contract", "A", {"action": "create", "template": "proposal", "target": swap_id,
                                        "choice": "terminate", "args": {}}).summary["contract_id"]
    assert ledger.exercise("A", first, "decline").status == "rejected"
    assert ledger.exercise("B", first, "decline").summary["archived"] == [first]
    second = ledger.ok("contract", "A", {"action": "create", "template": "proposal", "target": swap_id,
                                         "choice": "terminate", "args": {}}).summary["contract_id"]
    assert ledger.exercise("B", second, "withdraw").status == "rejected"
    assert ledger.exercise("A", second, "withdraw").summary["archived"] == [second]
    assert ledger.state(swap_id).trade.is_open


def test_novation_needs_the_incoming_party_too() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    proposal = ledger.ok("contract", "A", {"action": "create", "template": "proposal", "target": swap_id,
                                           "choice": "novate", "args": {"outgoing": "A", "incoming": "C"}})
    proposal_id = proposal.summary["contract_id"]
    record = ledger.engine.contract(proposal_id)
    assert record is not None and record.observers == ("B", "C")
    halfway = ledger.exercise("B", proposal_id, "approve")
    assert halfway.summary["updated"] == [proposal_id] and halfway.summary["created"] == []
    done = ledger.exercise("C", proposal_id, "approve")
    assert done.status == "accepted", done.reason
    (new_id,) = done.summary["created"]
    new = ledger.engine.contract(new_id)
    assert new is not None and new.signatories == ("B", "C")
    assert new.state.trade.terms.counterparties[0].party == "C"
    assert ledger.state(swap_id).trade.closed_state == "Terminated"


def test_item_and_payload_faults() -> None:
    ledger = Ledger()
    for payload in (b"not json", b"[1]", b'{"action": "dance"}', b'{"action": "exercise", "contract_id": 1}',
                    b'{"rate": NaN, "action": "create", "template": "swap"}'):
        with pytest.raises(InputError):
            ledger.engine.apply("contract", "A", "member", payload, TRADE_DAY, PARTICIPANTS)
    with pytest.raises(InputError):
        ledger.engine.apply("observation", "ORACLE", "oracle", b'{"observations": 3}', TRADE_DAY, PARTICIPANTS)
    with pytest.raises(InputError):
        ledger.engine.apply("trades", "A", "member", b"{}", TRADE_DAY, PARTICIPANTS)
    bad_party = ledger.submit("contract", "A", {"action": "create", "template": "swap_proposal", "cdm": USD_SWAP,
                                                "parties": {"party1": "A", "party2": "ORACLE"},
                                                "business_centers": CENTERS})
    assert bad_party.status == "rejected" and "'ORACLE' is not a participant with role" in bad_party.reason
    unmapped = ledger.submit("contract", "A", {"action": "create", "template": "swap_proposal", "cdm": USD_SWAP,
                                               "parties": {"party1": "A"}, "business_centers": CENTERS})
    assert "no ledger participant given for Party2" in unmapped.reason
    unresolved = ledger.submit("contract", "A", {"action": "create", "template": "swap_proposal", "cdm": USD_SWAP,
                                                 "parties": {"Party1": "A", "Party2": "B"}})
    assert unresolved.status == "rejected" and "primaryBusinessCenters" in unresolved.reason
    assert ledger.engine.applied == 0 and not ledger.engine.contracts()


# --------------------------------------------------------------------------- oracle


def test_only_an_oracle_publishes_and_only_its_publisher_corrects() -> None:
    ledger = Ledger()
    item = {"id": "L1", "index": LIBOR, "fixing_date": "2011-02-04", "rate": "0.003"}
    member = ledger.submit("observation", "A", {"observations": [item]})
    assert member.status == "rejected" and member.reason == "only an oracle publishes observations"
    first = ledger.publish(("L1", FIXINGS[0], "0.003"), ("L2", FIXINGS[1], "0.0028"))
    assert first.summary["published"] == 2 and first.rejections == []
    again = ledger.submit("observation", "ORACLE", {"observations": [
        item,
        {**item, "rate": "0.004"},
        {**item, "id": "L9"},
        {"id": "L3", "index": LIBOR, "fixing_date": "2011-13-01", "rate": "0.01"},
        {"id": "L4", "index": LIBOR, "fixing_date": "2011-08-04", "rate": "abc"},
        "x",
    ]})
    assert again.status == "accepted" and again.summary["published"] == 0
    assert [reason.split(":")[0] for _, reason in again.rejections] == [
        "exists", "exists_with_different_body", "fixing_already_published",
        "invalid_observation", "invalid_observation", "invalid_observation",
    ]
    assert [item_id for item_id, _ in again.rejections] == ["L1", "L1", "L9", "L3", "L4", "#5"]
    other = ledger.submit("observation", "ORACLE2", {"correct": "L1", "rate": "0.004"})
    assert other.status == "rejected" and other.reason.endswith("needs the authority of ORACLE")
    assert ledger.submit("observation", "ORACLE", {"correct": "L1", "rate": "0.003"}).status == "rejected"
    assert ledger.submit("observation", "ORACLE", {"correct": "L7", "rate": "0.1"}).reason == "no observation 'L7'"
    fixed = ledger.submit("observation", "ORACLE", {"correct": "L1", "rate": 0.0031}, dt.date(2011, 2, 9))
    assert fixed.status == "accepted"
    record = ledger.engine.observation("L1")
    assert record is not None and record.state.rate == Decimal("0.0031") and record.state.version == 2
    assert [(r.version, r.rate, r.corrected_on) for r in record.state.revisions] == [
        (1, Decimal("0.003"), dt.date(2011, 2, 9))
    ]


def test_reset_reads_the_observation_it_names() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    ledger.publish(("L1", FIXINGS[0], "0.003"), ("L2", FIXINGS[1], "0.0028"))
    assert ledger.exercise("C", swap_id, "reset", observation="L1").status == "rejected"
    assert ledger.exercise("A", swap_id, "reset", observation="L9").reason == "no observation 'L9'"
    done = ledger.exercise("B", swap_id, "reset", observation="L1")
    assert done.status == "accepted" and done.summary["updated"] == [swap_id]
    trade = ledger.state(swap_id).trade
    assert [(r.leg_index, r.period_index, r.observation.rate) for r in trade.resets] == [(0, 0, Decimal("0.003"))]
    (row, *_) = ledger.engine.schedule(swap_id)
    assert (row["floating_rate"], row["observation_id"], row["floating_amount"], row["paid"]) == (
        "0.003", "L1", "7500.00", False)


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_pays_what_the_events_compute_and_waits_for_missing_fixings() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    ledger.publish(("L1", FIXINGS[0], "0.003"))
    refused = ledger.submit("contract", "A", {"action": "lifecycle", "date": PAY_1.isoformat()}, PAY_1)
    assert refused.reason == "only the CCP runs the lifecycle"
    wrong_day = ledger.submit("contract", "CCP", {"action": "lifecycle", "date": "2011-05-10"}, PAY_1)
    assert wrong_day.status == "rejected"
    first = ledger.lifecycle(PAY_1)
    (flow,) = first.cash_flows
    assert (flow.payer, flow.receiver, flow.amount_minor, flow.settlement_date) == ("A", "B", 750_000, PAY_1)
    assert ledger.engine.last_lifecycle == PAY_1
    waiting = ledger.lifecycle(PAY_2)
    assert waiting.cash_flows == [] and waiting.rejections[0][0] == swap_id
    assert waiting.rejections[0][1].startswith("missing_observation")
    late = PAY_2 + dt.timedelta(days=2)
    ledger.publish(("L2", FIXINGS[1], "0.0028"), day=late)
    paid = ledger.lifecycle(late)
    (second,) = paid.cash_flows
    expected = execution(TERMS, TRADE_DAY)
    for i, rate in enumerate(("0.003", "0.0028")):
        expected = reset(expected, Observation(LIBOR, FIXINGS[i], Decimal(rate)), TRADE_DAY)
    (due,) = payments_due(expected, PAY_2)
    assert (second.payer, second.receiver, second.amount_minor) == ("B", "A", due.amount_minor)
    assert second.settlement_date == late
    assert ledger.lifecycle(late).cash_flows == []
    rows = ledger.engine.schedule(swap_id)
    assert [r["paid"] for r in rows if r["leg"] == 0][:3] == [True, True, False]
    fixed = next(r for r in rows if r["leg"] == 1)
    assert (fixed["fixed_rate"], fixed["fixed_amount"], fixed["day_count_fraction"]) == ("0.0253", "126500.00", "1/2")


def test_clearing_leaves_each_member_its_flows_and_the_ccp_flat() -> None:
    bilateral, cleared = Ledger(), Ledger()
    bilateral_id = bilateral.swap()
    side_a, side_b = cleared.clear(cleared.swap())
    assert cleared.engine.contract(side_a).signatories == ("A", "CCP")  # type: ignore[union-attr]
    assert cleared.engine.contract(side_b).signatories == ("B", "CCP")  # type: ignore[union-attr]
    for ledger in (bilateral, cleared):
        ledger.publish(("L1", FIXINGS[0], "0.003"), ("L2", FIXINGS[1], "0.0028"))
        ledger.lifecycle(PAY_1)
        ledger.lifecycle(PAY_2)
    assert net(cleared.flows) == net(bilateral.flows)
    assert all("CCP" in (f.payer, f.receiver) for f in cleared.flows) and len(cleared.flows) == 4
    assert len(bilateral.state(bilateral_id).payments) == 2


def test_one_side_of_a_cleared_swap_is_not_ended_alone() -> None:
    ledger = Ledger()
    side_a, _ = ledger.clear(ledger.swap())
    outcome = ledger.agree("A", ["CCP"], side_a, "terminate")
    assert outcome.status == "rejected" and "leave the CCP unbalanced" in outcome.reason
    assert ledger.state(side_a).trade.is_open
    moved = ledger.agree("A", ["CCP", "C"], side_a, "novate", outgoing="A", incoming="C")
    assert moved.status == "accepted", moved.reason
    (new_side,) = moved.summary["created"]
    assert ledger.engine.contract(new_side).signatories == ("C", "CCP")  # type: ignore[union-attr]


def test_flows_that_leave_the_ccp_unbalanced_are_rejected() -> None:
    ledger = Ledger((*DEFAULT_TEMPLATES, Iou))
    iou = ledger.ok("contract", "CCP", {"action": "create", "template": "iou", "owner": "B", "currency": "USD",
                                        "amount_minor": 100, "due": "2011-03-01"}).summary["contract_id"]
    outcome = ledger.exercise("B", iou, "settle")
    assert outcome.status == "rejected" and outcome.reason == (
        "the cash flows of CCP do not net to zero: -100 minor units of USD on 2011-03-01")
    assert ledger.engine.contract(iou).active  # type: ignore[union-attr]


# --------------------------------------------------------------------------- corrections

RATES = st.decimals(min_value=Decimal("-0.01"), max_value=Decimal("0.12"), places=5)


@settings(max_examples=25, deadline=None)
@given(right=RATES, wrong=RATES, other=RATES, wrong_period=st.sampled_from([0, 1]), cleared=st.booleans())
def test_a_wrong_fixing_corrected_after_two_payments_nets_to_the_right_value(
    right: Decimal, wrong: Decimal, other: Decimal, wrong_period: int, cleared: bool
) -> None:
    def run(first_rate: Decimal) -> Ledger:
        ledger = Ledger()
        swap_id = ledger.swap()
        if cleared:
            ledger.clear(swap_id)
        rates = [first_rate if i == wrong_period else other for i in (0, 1)]
        ledger.publish(("L0", FIXINGS[0], str(rates[0])), ("L1", FIXINGS[1], str(rates[1])))
        ledger.lifecycle(PAY_1)
        ledger.lifecycle(PAY_2)
        return ledger

    truth, corrected = run(right), run(wrong)
    late = PAY_2 + dt.timedelta(days=3)
    outcome = corrected.submit("observation", "ORACLE", {"correct": f"L{wrong_period}", "rate": str(right)}, late)
    if wrong == right:
        assert outcome.status == "rejected"
        return
    assert outcome.status == "accepted", outcome.reason
    assert net(corrected.flows) == net(truth.flows)
    assert all(flow.settlement_date == late for flow in outcome.cash_flows)
    swaps = [c for c in corrected.engine.contracts(template="swap") if c.state.payments]
    for record in swaps:
        payments = record.state.payments
        reversals = [p for p in payments if p.kind == "Reversal"]
        replacements = [p for p in payments if p.payment_id.split("/")[-1].startswith("correction-")]
        assert len(reversals) == len(replacements) == 1
        assert reversals[0].supersedes == replacements[0].supersedes
        assert record.state.trade.history[-1].event == "Correction"
    # later payments use the corrected value: one more period on both ledgers stays equal
    third = FLOATING[2]
    for ledger in (truth, corrected):
        ledger.publish(("L2", FIXINGS[2], "0.01"), day=third.payment_date)
        ledger.lifecycle(third.payment_date)
    assert net(corrected.flows) == net(truth.flows)


# --------------------------------------------------------------------------- determinism


def _script(ledger: Ledger) -> list[ContractOutcome]:
    swap_id = ledger.swap()
    return [
        ledger.publish(("L1", FIXINGS[0], "0.003")),
        ledger.exercise("A", swap_id, "terminate"),
        ledger.lifecycle(PAY_1),
        ledger.submit("observation", "ORACLE", {"correct": "L1", "rate": "0.0035"}, PAY_1),
    ]


def test_same_submissions_same_state_and_a_rejection_changes_nothing() -> None:
    first, second = Ledger(), Ledger()
    assert _script(first) == _script(second)
    assert first.engine.digest() == second.engine.digest()
    before = first.engine.digest()
    assert first.exercise("C", "S2:1", "terminate").status == "rejected"
    assert first.engine.digest() == before
    first.lifecycle(PAY_2)
    assert first.engine.digest() != before
    as_json = [c.to_json() for c in first.engine.contracts()]
    assert json.loads(json.dumps(as_json)) == as_json


FORBIDDEN_MODULES = {"time", "random", "secrets", "uuid", "os", "socket", "urllib", "http", "requests",
                     "subprocess", "threading", "asyncio", "sqlite3", "pathlib"}
FORBIDDEN_CALLS = {"now", "today", "utcnow", "time_ns", "perf_counter", "getenv"}


def test_contract_modules_read_no_clock_network_or_randomness() -> None:
    for path in sorted(Path(contracts_package.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    top = name.split(".")[0]
                    assert top not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
                    assert top in {"__future__", "clearhouse", "QuantLib", "numpy", "scipy", "highspy"} or (
                        top in {"collections", "contextlib", "dataclasses", "datetime", "decimal", "enum",
                                "fractions", "functools", "json", "typing", "hashlib", "itertools", "math"}
                    ), f"{path.name} imports {name}"
                    if top == "clearhouse":
                        assert name.startswith(("clearhouse.core", "clearhouse.contracts")), f"{path.name}: {name}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in FORBIDDEN_CALLS, f"{path.name} uses .{node.attr}"


# --------------------------------------------------------------------------- a new template (docs/CONTRACTS.md)


@dataclasses.dataclass(frozen=True, slots=True)
class Iou(Template):
    """An amount the issuer owes the owner, payable on a due date.

    Attributes:
        issuer: who owes (signatory).
        owner: who is owed (observer); may transfer the claim.
        currency: ISO 4217 code.
        amount_minor: the amount in minor units.
        due: the earliest settlement date.
    """

    name: ClassVar[str] = "iou"
    creatable: ClassVar[bool] = True

    issuer: str
    owner: str
    currency: str
    amount_minor: int
    due: dt.date

    def signatories(self) -> frozenset[str]:
        return frozenset({self.issuer})

    def observers(self) -> frozenset[str]:
        return frozenset({self.owner})

    @classmethod
    def create(cls, ctx: Context, fields: Args) -> Template:
        (issuer,) = ctx.actors
        amount = fields.get("amount_minor")
        if not isinstance(amount, int) or amount <= 0:
            raise ContractError("amount_minor must be a positive integer")
        owner = ctx.require_role(fields.get("owner"), "member")
        return cls(issuer, owner, str(fields.get("currency")), amount, dt.date.fromisoformat(str(fields.get("due"))))

    @choice(controllers=lambda c: {c.owner})
    def transfer(self, ctx: Context, args: Args) -> Effect:
        return Effect(dataclasses.replace(self, owner=ctx.require_role(args.get("to"), "member")))

    @choice(controllers=lambda c: any_of(c.issuer, c.owner))
    def settle(self, ctx: Context, args: Args) -> Effect:
        flow = CashFlowInstruction(self.issuer, self.owner, self.currency, max(self.due, ctx.business_date),
                                   self.amount_minor, f"{ctx.contract_id}/settle")
        return Effect(None, cash_flows=(flow,))


def test_a_new_template_as_documented() -> None:
    ledger = Ledger((*DEFAULT_TEMPLATES, Iou))
    created = ledger.ok("contract", "A", {"action": "create", "template": "iou", "owner": "B",
                                          "currency": "USD", "amount_minor": 5_000, "due": "2011-03-01"})
    iou = created.summary["contract_id"]
    assert created.summary["created"] == [iou] == ["S1:1"]
    assert ledger.exercise("A", iou, "transfer", to="C").status == "rejected"
    assert ledger.exercise("B", iou, "transfer", to="C").status == "accepted"
    assert ledger.exercise("B", iou, "settle").reason == "choice 'settle' of S1:1 needs the authority of one of A, C"
    (flow,) = ledger.exercise("C", iou, "settle").cash_flows
    assert (flow.payer, flow.receiver, flow.amount_minor, flow.settlement_date) == ("A", "C", 5_000,
                                                                                  dt.date(2011, 3, 1))
    record = ledger.engine.contract(iou)
    assert record is not None and not record.active and record.archived_on == TRADE_DAY


def test_swap_state_round_trips_to_canonical_json() -> None:
    ledger = Ledger()
    swap_id = ledger.swap()
    record = ledger.engine.contract(swap_id)
    assert record is not None and isinstance(record.state, Swap)
    state = record.to_json()["state"]
    assert state["trade"]["terms"]["counterparties"] == [{"role": "Party1", "party": "A"},
                                                          {"role": "Party2", "party": "B"}]
    assert state["paid_through"] == "2011-02-07"


# --------------------------------------------------------------------------- compression

M = 1_000_000_00  # one million in minor units


def _position(contract_id: str, payer: str, receiver: str, millions: int, currency: str = "USD",
              bucket: str = "2-5Y") -> SwapPosition:
    return SwapPosition(contract_id, currency, bucket, payer, receiver, millions * M)


def _nets(positions: list[SwapPosition], result: Compression) -> dict[tuple[str, str, str], int]:
    """Nets after applying the result's terminations and replacements to ``positions``."""
    totals: dict[tuple[str, str, str], int] = {}
    kept = [(p.currency, p.bucket, p.fixed_payer, p.fixed_receiver, p.notional_minor)
            for p in positions if p.contract_id not in result.terminations]
    added = [(r.currency, r.bucket, r.fixed_payer, r.fixed_receiver, r.notional_minor) for r in result.replacements]
    for currency, bucket, payer, receiver, notional in kept + added:
        totals[(currency, bucket, payer)] = totals.get((currency, bucket, payer), 0) - notional
        totals[(currency, bucket, receiver)] = totals.get((currency, bucket, receiver), 0) + notional
    return totals


def test_compression_of_a_cycle_worked_by_hand() -> None:
    # A pays fixed to B on 100m, B to C on 100m, C to A on 50m; D pays fixed to A on 10m in EUR.
    # Nets (received fixed - paid fixed): A -50m, B 0, C +50m; gross 250m.
    portfolio = [_position("t1", "A", "B", 100), _position("t2", "B", "C", 100), _position("t3", "C", "A", 50),
                 _position("t4", "D", "A", 10, currency="EUR")]
    free = compress(portfolio)
    # Any pair may trade: one 50m trade A pays fixed to C replaces all three.
    assert free.terminations == ("t1", "t2", "t3")
    assert [(r.fixed_payer, r.fixed_receiver, r.notional_minor) for r in free.replacements] == [("A", "C", 50 * M)]
    assert free.gross_before[("USD", "2-5Y")] == 250 * M and free.gross_after[("USD", "2-5Y")] == 50 * M
    assert free.gross_after[("EUR", "2-5Y")] == 10 * M
    # Existing pairs only, never more than before: x(A,B) = x(B,C) = x(C,A) + 50m, minimised at
    # x(C,A) = 0: A->B 50m, B->C 50m, C->A terminated; gross 100m.
    conservative = compress(portfolio, existing_only=True)
    assert conservative.terminations == ("t1", "t2", "t3")
    assert [(r.fixed_payer, r.fixed_receiver, r.notional_minor) for r in conservative.replacements] == [
        ("A", "B", 50 * M), ("B", "C", 50 * M)]
    assert conservative.gross_after[("USD", "2-5Y")] == 100 * M
    for result in (free, conservative):
        assert {k: v for k, v in _nets(portfolio, result).items() if v} == {k: v for k, v in result.nets.items() if v}


def test_compression_through_the_ccp_keeps_every_trade_facing_it() -> None:
    ledger = Ledger()
    ledger.clear(ledger.swap())
    ledger.clear(ledger.swap("B", "C"), by="B")
    swaps = [(c.contract_id, c.state) for c in ledger.engine.contracts(template="swap")]
    positions, skipped = positions_from_swaps(swaps, TRADE_DAY)
    assert [reason for _, reason in skipped] == ["closed", "closed"]
    # The fixed leg is paid by Party2: CCP pays A and B pays CCP (first trade), CCP pays B and C pays CCP.
    assert [(p.fixed_payer, p.fixed_receiver, p.bucket) for p in positions] == [
        ("CCP", "A", "2-5Y"), ("B", "CCP", "2-5Y"), ("CCP", "B", "2-5Y"), ("C", "CCP", "2-5Y")]
    result = compress(positions, hub="CCP")
    assert set(result.terminations) == {positions[1].contract_id, positions[2].contract_id}
    assert result.replacements == ()
    assert result.gross_after[("USD", "2-5Y")] == 2 * 10_000_000_00


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCDE"), st.sampled_from("ABCDE"), st.integers(1, 50),
                          st.sampled_from(["USD", "EUR"])), min_size=1, max_size=10))
def test_compression_keeps_every_net_and_never_adds_gross(trades: list[tuple[str, str, int, str]]) -> None:
    portfolio = [_position(f"t{i}", a, b, n, currency=c) for i, (a, b, n, c) in enumerate(trades) if a != b]
    if not portfolio:
        return
    for result in (compress(portfolio), compress(portfolio, existing_only=True)):
        assert {k: v for k, v in _nets(portfolio, result).items() if v} == {k: v for k, v in result.nets.items() if v}
        for key, before in result.gross_before.items():
            assert result.gross_after[key] <= before
    free = compress(portfolio)
    for (currency, bucket), after in free.gross_after.items():
        positive = sum(v for (c, b, _), v in free.nets.items() if (c, b) == (currency, bucket) and v > 0)
        assert after == positive
