"""Shared by the API tests: the actors of each role and the small demo ledger they work on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from clearhouse.cycle.run import open_node, run_scenario, sign
from clearhouse.interfaces.api.service import block_timestamp
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
