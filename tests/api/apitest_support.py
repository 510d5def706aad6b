"""Shared by the API tests: the actors of each role, the small demo ledger they work on, and FIX and
ISO 20022 messages to submit."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import simplefix

from clearhouse.cycle.run import open_node, run_scenario, sign
from clearhouse.interfaces.api.service import LedgerService, block_timestamp
from clearhouse.ledger.crypto import KeyStore
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.state.kinds import Kind, encode_json

ORACLE = "ORACLE1"
#: one participant of each kind the matrix tests, by a name for the case
ACTORS = {
    "member": "M000",
    "other_member": "M001",
    "ccp": "CCP",
    "regulator": "REGULATOR",
    "oracle": ORACLE,
    "venue": "EXCHANGE",
    "csd": "CSD",
    "central_bank": "CENTRAL_BANK",
    "sequencer": "SEQUENCER",
}


def make_ledger(directory: Path) -> Path:
    """The small demo market, run to its end at T+1, then an oracle admitted by the CCP."""
    run_scenario(generate_market(MarketSpec(members=4, securities=5, trades=500, days=2)), directory, 1)
    keys = KeyStore(directory / "keys")
    oracle = keys.get_or_create(ORACLE)
    node = open_node(directory)
    day = dt.date.fromisoformat(node.store.block(node.height).header.business_date)
    n = sum(1 for b in node.store.blocks() if b.header.business_date == day.isoformat()) + 1
    member = {"id": ORACLE, "name": "Price Oracle", "role": "oracle", "public_key": oracle.public_hex}
    node.submit(sign(keys.load("CCP"), "CCP", "admit-oracle", Kind.admit,
                     encode_json({"participants": [member]})))
    node.seal(day, block_timestamp(day, n))
    node.store.close()
    return directory


def fix_report(report_id: str, buyer: str, seller: str, security_id: str, quantity: int, price: str,
               trade_date: dt.date, settlement_date: dt.date, sender: str = "M000", seq: int = 1,
               msg_type: str = "AE", omit: tuple[int, ...] = ()) -> bytes:
    """A two-sided FIX 4.4 Trade Capture Report (35=AE), BodyLength and CheckSum by simplefix,
    without the body fields whose tags are in ``omit``."""
    message = simplefix.FixMessage()
    fields: list[tuple[int, object]] = [
        (8, "FIX.4.4"), (35, msg_type), (49, sender), (56, "CLEARHOUSE"), (34, seq),
        (52, f"{trade_date:%Y%m%d}-10:00:00.000"), (571, report_id), (487, 0), (856, 0),
        (55, security_id), (48, security_id), (22, 4), (32, quantity), (31, price), (75, f"{trade_date:%Y%m%d}"),
        (64, f"{settlement_date:%Y%m%d}"), (552, 2), (54, 1), (453, 1), (448, buyer), (447, "D"), (452, 1),
        (54, 2), (453, 1), (448, seller), (447, "D"), (452, 1),
    ]
    for tag, value in fields:
        if tag not in omit:
            message.append_pair(tag, value)
    return message.encode()


def sese023(tx_id: str, movement: str, owner: str, counterparty: str, security_id: str, quantity: str,
            price: str, trade_date: dt.date, settlement_date: dt.date, common_id: str = "") -> str:
    """One sese.023 settlement instruction against payment, as ``owner`` sends it, naming the
    counterparty by proprietary id (``Document`` without envelope)."""
    other_side = "RcvgSttlmPties" if movement == "DELI" else "DlvrgSttlmPties"
    common = f"<CmonId>{common_id}</CmonId>" if common_id else ""
    return f"""<Document xmlns="urn:iso:std:iso:20022:tech:xsd:sese.023.001.11"><SctiesSttlmTxInstr>
  <TxId>{tx_id}</TxId>
  <SttlmTpAndAddtlParams><SctiesMvmntTp>{movement}</SctiesMvmntTp><Pmt>APMT</Pmt>{common}</SttlmTpAndAddtlParams>
  <TradDtls><TradDt><Dt><Dt>{trade_date}</Dt></Dt></TradDt><SttlmDt><Dt><Dt>{settlement_date}</Dt></Dt></SttlmDt>
    <DealPric><Val><Amt Ccy="AUD">{price}</Amt></Val></DealPric></TradDtls>
  <FinInstrmId><ISIN>{security_id}</ISIN></FinInstrmId>
  <QtyAndAcctDtls><SttlmQty><Qty><Unit>{quantity}</Unit></Qty></SttlmQty>
    <AcctOwnr><Id><PrtryId><Id>{owner}</Id></PrtryId></Id></AcctOwnr></QtyAndAcctDtls>
  <{other_side}><Pty1><Id><PrtryId><Id>{counterparty}</Id></PrtryId></Id></Pty1></{other_side}>
</SctiesSttlmTxInstr></Document>"""


def quiet_security(service: LedgerService, buyer: str, seller: str, least: int) -> str:
    """A security the seller holds at least ``least`` units of and neither has an open position in
    (so what a new trade settles is all that moves)."""
    m = service.machine
    members = [m.pindex[buyer], m.pindex[seller]]
    busy = set(m.positions.security[np.isin(m.positions.member, members)].tolist())
    row = m.sec_bal[members[1]]
    return next(s.id for i, s in enumerate(m.securities) if row[i] >= least and i not in busy)
