"""Request and response bodies of the REST API (pydantic), and the one error body every refusal uses.

Amounts are decimal strings in the currency's minor-unit precision; quantity > 0 means the
member receives securities, cash > 0 means it receives cash. Hashes, keys and signatures are
lower-case hex. Imports pydantic only: nothing of clearhouse, so clients may reuse these models.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Id = Annotated[str, Field(min_length=1, max_length=64)]
HexSignature = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{128}$", description="Ed25519 signature, 64 bytes in hex")
]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer: a stable machine code and a sentence for people."""

    error: str = Field(description="machine-readable code, e.g. not_authenticated, forbidden")
    detail: Any = Field(description="what went wrong, in words (or the list of invalid fields)")


# ---------------------------------------------------------------- authentication


class ChallengeRequest(BaseModel):
    participant_id: Id


class ChallengeResponse(BaseModel):
    participant_id: str
    nonce: str = Field(description="sign the UTF-8 bytes of this text with the participant's key")
    expires_in: int = Field(description="seconds the nonce stays valid; it is single-use")


class TokenRequest(BaseModel):
    participant_id: Id
    nonce: str = Field(min_length=1, max_length=200)
    signature: HexSignature


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    participant_id: str
    role: str


class DashboardLoginRequest(BaseModel):
    participant_id: Id
    seed_hex: str = Field(pattern=r"^[0-9a-fA-F]{64}$", description="the 32-byte key seed in hex")


class AuthMethods(BaseModel):
    challenge: bool = True
    dashboard_login: bool


class LoggedOut(BaseModel):
    participant_id: str
    revoked: bool = True


class Me(BaseModel):
    participant_id: str
    name: str
    role: str
    expires_in: int


# ---------------------------------------------------------------- writes


class SignedSubmission(BaseModel):
    """A batch signed by the caller's own key (the submitter is the authenticated participant)."""

    submission_id: Id
    payload: str = Field(max_length=12_000_000, description="the batch: JSON text, or base64")
    encoding: Literal["utf-8", "base64"] = "utf-8"
    signature: HexSignature


class TradeResultItem(BaseModel):
    trade_id: str
    result: str


class TradeSubmissionResponse(BaseModel):
    submission_id: str
    status: str = Field(description="accepted, or exists when this submission was already applied")
    reason: str
    height: int = Field(description="the block that holds the submission")
    block_hash: str
    submitted: int
    accepted: int
    rejected: int
    results: list[TradeResultItem]


class SignedMessage(BaseModel):
    """A FIX or ISO 20022 message, and the submitter's signature over the trade batch it yields."""

    submission_id: Id
    message: str = Field(max_length=12_000_000, description="the message bytes, base64")
    payload_sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="sha256 (hex) of the canonical JSON trade batch the client derived from the message",
    )
    signature: HexSignature = Field(description="over Submission.digest_for(submission_id, 'trades', "
                                    "submitter, batch)")


class MessageRejection(BaseModel):
    position: int = Field(description="the message (FIX) or instruction (ISO 20022) in the input, "
                          "from 1; 0 for bytes or a document as a whole")
    ref: str = Field(description="its own reference, where one could be read")
    reason: str
    text: str


class TradeAck(BaseModel):
    report_ref: str = Field(description="TradeReportID, else ExecID, else MsgSeqNum of the report")
    trade_id: str = Field(description="the trade it became, empty when the reader refused it")
    status: Literal["accepted", "rejected"]
    reason: str | None
    message: str = Field(description="the TradeCaptureReportAck (35=AR), SOH written as |")


class FixSubmissionResponse(TradeSubmissionResponse):
    message_sha256: str = Field(description="sha256 of the message as received (the journal keeps it)")
    rejections: list[MessageRejection] = Field(description="reports the reader could not turn into trades")
    acks: list[TradeAck] = Field(description="one per report read, in input order")


class InstructionStatus(BaseModel):
    instruction_id: str
    trade_id: str = Field(description="the trade it became, empty when it made none")
    status: Literal["matched", "pending", "unmatched", "rejected"]
    reasons: list[str] = Field(description="ISO 20022 reason codes of the status")
    reason: str | None = Field(description="why it was refused: the reader's reason or the ledger's result")
    sese024: str = Field(description="the status advice, sese.024 XML")


class Sese023SubmissionResponse(TradeSubmissionResponse):
    message_sha256: str = Field(description="sha256 of the message as received (the journal keeps it)")
    rejections: list[MessageRejection] = Field(description="instructions the reader could not turn into trades")
    statuses: list[InstructionStatus] = Field(description="one per instruction, in document order")


class CommandResponse(BaseModel):
    command: str
    submission_id: str
    status: str
    reason: str
    business_date: dt.date
    height: int
    block_hash: str
    summary: dict[str, Any]


class NextDayRequest(BaseModel):
    business_date: dt.date | None = Field(
        default=None, description="a later business day; the next one when left out"
    )


class NextDayResponse(BaseModel):
    previous_business_date: dt.date
    business_date: dt.date
    height: int
    block_hash: str
    pending_trades: int = Field(description="accepted trades still waiting for a cut-off")


class ObservationResult(BaseModel):
    observation_id: str
    result: str = Field(description="ok, or why the item was refused (exists, fixing_already_published, ...)")


class ObservationsResponse(BaseModel):
    submission_id: str
    status: str = Field(description="accepted, or exists when this submission was already applied")
    reason: str
    height: int = Field(description="the block that holds the submission")
    block_hash: str
    summary: dict[str, Any]
    results: list[ObservationResult] = Field(description="per published item; empty for a correction")


class ObservationRecord(BaseModel):
    observation_id: str
    index: str = Field(description="what is observed: a rate index or a security id")
    fixing_date: dt.date
    rate: str = Field(description="the value in force (a rate as a decimal fraction, or a price)")
    publisher: str
    published_on: dt.date
    version: int = Field(description="1 as first published, +1 per correction")
    contract_id: str


class ObservationList(BaseModel):
    observations: list[ObservationRecord]


# ---------------------------------------------------------------- reads


class ParticipantInfo(BaseModel):
    participant_id: str
    name: str
    role: str
    public_key: str


class ParticipantList(BaseModel):
    participants: list[ParticipantInfo]


class Holding(BaseModel):
    security_id: str
    quantity: int


class CashBalance(BaseModel):
    currency: str
    amount: str


class OpenPosition(BaseModel):
    security_id: str
    settlement_date: dt.date
    quantity: int
    cash: str
    currency: str
    first_due: dt.date
    failing: bool = Field(description="its settlement date passed, or is today and today's settlement ran")


class Positions(BaseModel):
    participant_id: str
    height: int
    as_of_height: int = Field(description="the block the stored state rows are of")
    securities: list[Holding]
    cash: list[CashBalance]
    open_positions: list[OpenPosition]


class NetObligation(BaseModel):
    settlement_date: dt.date
    security_id: str
    quantity: int
    cash: str
    currency: str


class NetCash(BaseModel):
    settlement_date: dt.date
    currency: str
    amount: str


class Obligations(BaseModel):
    participant_id: str
    height: int
    obligations: list[NetObligation]
    net_cash: list[NetCash]


class Instruction(BaseModel):
    settlement_date: dt.date = Field(description="the settlement cycle")
    due_date: dt.date = Field(description="when it first fell due")
    security_id: str
    quantity: int
    cash: str
    currency: str
    settled_quantity: int = Field(description="what moved (all of it when settled, part when partial)")
    settled_cash: str
    status: Literal["settled", "partial", "failed"]
    reason: str | None = Field(description="why the rest did not settle")


class Confirmation(BaseModel):
    instruction_id: str = Field(description="YYYYMMDD-<cycle>-<security>: the settlement instruction")
    settlement_date: dt.date
    security_id: str
    status: Literal["settled", "partial"]
    sese025: str = Field(description="the settlement confirmation, sese.025 XML")


class Confirmations(BaseModel):
    participant_id: str
    height: int
    confirmations: list[Confirmation]


class JournalEntry(BaseModel):
    seq: int
    received_at: str = Field(description="when the server received it, UTC")
    business_date: dt.date
    door: Literal["REST", "FIX", "FIX session", "ISO 20022"]
    submitter: str
    submission_id: str
    status: Literal["accepted", "exists", "refused"]
    reason: str = Field(description="why it was refused (error code and detail)")
    height: int | None = Field(description="the block that holds it")
    submitted: int
    accepted: int
    rejected: int
    message_sha256: str | None = Field(description="the FIX or XML message it was read from")


class MessageLog(BaseModel):
    business_date: dt.date
    messages: list[JournalEntry]


class Instructions(BaseModel):
    participant_id: str
    height: int
    instructions: list[Instruction]


class Fails(BaseModel):
    participant_id: str
    height: int
    fails: list[Instruction]


class ProofStep(BaseModel):
    hash: str
    side: Literal["left", "right"] = Field(description="where the sibling sits")


class HoldingProof(BaseModel):
    """Everything needed to recompute the state root from one balance leaf.

    leaf_hash = sha256(0x00 | leaf); parent = sha256(0x01 | left | right) up the path to
    balances_root; state_root = sha256("clearhouse/state/v1" | the components in key order).
    """

    participant_id: str
    table: Literal["securities", "cash"]
    asset: str
    amount: str
    leaf: str = Field(description="the leaf's bytes as UTF-8 text")
    index: int
    size: int
    path: list[ProofStep]
    balances_root: str
    components: dict[str, str]
    state_root: str
    height: int
    block_hash: str


class SubmissionInfo(BaseModel):
    submission_id: str
    kind: str
    submitter: str
    payload_bytes: int
    status: str
    reason: str
    summary: dict[str, Any]


class BlockSummary(BaseModel):
    height: int
    hash: str
    prev_hash: str
    business_date: dt.date
    timestamp: str
    merkle_root: str
    state_root: str
    results_root: str
    sequencer: str
    submissions: int


class BlockDetail(BlockSummary):
    signature: str
    items: list[SubmissionInfo]


class BlockList(BaseModel):
    height: int
    blocks: list[BlockSummary]


class ValueFigures(BaseModel):
    value: str | None = Field(description="the sum when one currency is used, else null")
    by_currency: dict[str, str]


class TradeCounts(BaseModel):
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0


class NettingFigures(BaseModel):
    cutoffs: int
    gross_obligations: int
    net_obligations: int
    gross_value: ValueFigures
    net_value: ValueFigures
    reduction_pct: float | None


class SettlementFigures(BaseModel):
    cycles: int
    settled: int
    failed: int
    settled_value: ValueFigures
    failed_value: ValueFigures


class DayFigures(BaseModel):
    business_date: dt.date
    blocks: int
    trades: TradeCounts
    netting: NettingFigures
    settlement: SettlementFigures


class Verification(BaseModel):
    status: Literal["verified", "failed", "not_checked"]
    verified_height: int | None = Field(description="the last block the full verification covered")
    reason: str | None
    sealed_since: int = Field(description="blocks this server sealed after the verification")


class DayView(DayFigures):
    height: int
    head_hash: str
    state_root: str
    pending_trades: int
    open_positions: int
    verification: Verification


class DailyStats(BaseModel):
    days: list[DayFigures]


class Health(BaseModel):
    status: Literal["ok", "halted"]
    height: int
    business_date: dt.date
    reason: str | None
