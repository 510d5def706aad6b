"""Client helpers for the REST API: sign a trade or observation batch, a FIX or ISO 20022 message,
answer a login challenge.

A participant signs with its own Ed25519 key (``clearhouse.ledger.crypto.KeyPair``, e.g. loaded
from ``DATA/keys/ID.key``); the server and then the state machine verify the same signature. For
a FIX or sese.023 message the client signs the trade batch the message yields, read with the
same reader the server uses (``clearhouse.interfaces.api.messages``).
``login`` works with any ``httpx.Client`` pointed at the API (a test client included).
Imports clearhouse.clearing.batch, clearhouse.core, clearhouse.ledger and the API's auth
constant and message readers.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from clearhouse.clearing.batch import encode_trades_json
from clearhouse.core.hashing import canonical_json
from clearhouse.interfaces.api.auth import NONCE_PREFIX
from clearhouse.interfaces.api.messages import read_fix, read_sese023
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.records import Submission


def _envelope(key: KeyPair, submitter: str, submission_id: str, kind: str, payload: bytes) -> dict[str, str]:
    digest = Submission.digest_for(submission_id, kind, submitter, payload)
    return {"submission_id": submission_id, "payload": payload.decode("utf-8"), "encoding": "utf-8",
            "signature": key.sign(digest).hex()}


def sign_trades(
    key: KeyPair, submitter: str, submission_id: str, rows: Sequence[Mapping[str, str]]
) -> dict[str, str]:
    """The body of ``POST /trades``: the canonical JSON batch of the rows, signed by the submitter.

    Each row has trade_id, trade_date, buyer, seller, security_id, quantity, price and
    settlement_date as strings.
    """
    payload = encode_trades_json([dict(r) for r in rows])
    return _envelope(key, submitter, submission_id, "trades", payload)


def _signed_message(key: KeyPair, submitter: str, submission_id: str, message: bytes,
                    payload: bytes) -> dict[str, str]:
    digest = Submission.digest_for(submission_id, "trades", submitter, payload)
    return {"submission_id": submission_id, "message": base64.b64encode(message).decode("ascii"),
            "payload_sha256": hashlib.sha256(payload).hexdigest(), "signature": key.sign(digest).hex()}


def sign_fix(key: KeyPair, submitter: str, submission_id: str, fix_bytes: bytes) -> dict[str, str]:
    """The body of ``POST /fix/trade-capture``: FIX Trade Capture Reports (tag=value with SOH or
    ``|``, or FIXML), with the submitter's signature over the trade batch they yield."""
    return _signed_message(key, submitter, submission_id, fix_bytes, read_fix(fix_bytes).payload)


def sign_sese023(key: KeyPair, submitter: str, submission_id: str, xml: bytes) -> dict[str, str]:
    """The body of ``POST /iso20022/sese023``: a sese.023 document, with the submitter's signature
    over the trade batch its instructions yield."""
    return _signed_message(key, submitter, submission_id, xml, read_sese023(xml).payload)


def sign_json(key: KeyPair, submitter: str, submission_id: str, kind: str, body: Any) -> dict[str, str]:
    """A signed submission of any JSON kind, e.g. an oracle's correction
    ``sign_json(key, "ORACLE1", "fix-7", "observation", {"correct": "obs-1", "rate": "0.0412"})``."""
    return _envelope(key, submitter, submission_id, kind, canonical_json(body))


def sign_observations(
    key: KeyPair, oracle: str, submission_id: str, items: Sequence[Mapping[str, str]]
) -> dict[str, str]:
    """The body of ``POST /oracle/observations``: items with id, index, fixing_date and rate."""
    return sign_json(key, oracle, submission_id, "observation", {"observations": [dict(i) for i in items]})


def sign_nonce(key: KeyPair, nonce: str) -> str:
    """The signature answering a login challenge; refuses anything that is not a login nonce."""
    if not nonce.startswith(NONCE_PREFIX):
        raise ValueError(f"refusing to sign {nonce!r}: a login nonce starts with {NONCE_PREFIX!r}")
    return key.sign(nonce.encode("utf-8")).hex()


def login(http: httpx.Client, participant_id: str, key: KeyPair) -> dict[str, str]:
    """Log in by challenge and signature; returns the Authorization header to send."""
    r = http.post("/auth/challenge", json={"participant_id": participant_id})
    r.raise_for_status()
    nonce = r.json()["nonce"]
    r = http.post("/auth/token", json={"participant_id": participant_id, "nonce": nonce,
                                       "signature": sign_nonce(key, nonce)})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
