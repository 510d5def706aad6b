"""Canonical encodings and digests.

Everything hashed into the ledger goes through here, so that every node encodes the same value
into the same bytes: sorted-key compact JSON for small records, little-endian fixed-width bytes
for numpy columns. Imports nothing else of clearhouse.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

DIGEST_SIZE = 32
ZERO_DIGEST = bytes(DIGEST_SIZE)


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.digest()


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def array_bytes(array: np.ndarray, dtype: str = "<i8") -> bytes:
    """Little-endian fixed-width bytes of a numeric column."""
    return np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes()


def digest_arrays(*arrays: np.ndarray) -> bytes:
    """Digest of several int64 columns, each length-prefixed so boundaries cannot shift."""
    h = hashlib.sha256()
    for array in arrays:
        data = array_bytes(array)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()
