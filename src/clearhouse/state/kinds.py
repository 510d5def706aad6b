"""Submission kinds, who may submit each, and the JSON payload encoding of the small ones.

Imports clearhouse.core only.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from clearhouse.core.errors import InputError
from clearhouse.core.hashing import canonical_json


class Role(StrEnum):
    """What a participant is; system roles are created at genesis."""

    sequencer = "sequencer"
    ccp = "ccp"
    csd = "csd"
    central_bank = "central_bank"
    venue = "venue"
    member = "member"
    regulator = "regulator"
    oracle = "oracle"


class Kind(StrEnum):
    """What a submission carries."""

    genesis = "genesis"
    admit = "admit"
    register_securities = "register_securities"
    issue = "issue"
    deposit = "deposit"
    trades = "trades"
    cutoff = "cutoff"
    settle = "settle"
    contract = "contract"
    observation = "observation"


#: which roles may submit which kind (genesis is checked apart: only block 0, self-signed)
AUTHORISED: dict[Kind, frozenset[Role]] = {
    Kind.admit: frozenset({Role.ccp}),
    Kind.register_securities: frozenset({Role.csd}),
    Kind.issue: frozenset({Role.csd}),
    Kind.deposit: frozenset({Role.central_bank}),
    Kind.trades: frozenset({Role.member, Role.venue}),
    Kind.cutoff: frozenset({Role.ccp}),
    Kind.settle: frozenset({Role.ccp}),
    Kind.contract: frozenset({Role.member, Role.ccp}),
    Kind.observation: frozenset({Role.oracle}),
}


def encode_json(value: Any) -> bytes:
    return canonical_json(value)


def decode_json(payload: bytes) -> Any:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # deep nesting must not halt a node
        raise InputError(f"payload is not JSON: {type(exc).__name__}") from exc
