"""Wire forms of the replicated ledger: what travels through NATS JetStream and in snapshot files.

* **Frame**: 4-byte big-endian header length + canonical JSON header + body bytes.
* **Submission** (subject ``clearhouse.log``, stream ``CLEARHOUSE``): a frame with header
  ``{"id", "kind", "submitter", "signature"}`` (signature in hex) and the payload as body; its
  JetStream message id is ``"<submitter>/<submission id>"``, so a retried publish is stored once.
* **Seal request** (same subject): a submission of kind ``seal`` by the sequencer whose payload
  is ``{"seal": {"business_date", "timestamp"}}``, signed by the sequencer's key. Every node
  treats each valid seal request as a block boundary.
* **Part**: a frame larger than :data:`PART_BYTES` (a 50,000-trade batch is about 1.2 MB; NATS
  servers take 1 MB messages by default) travels as parts, each a frame with header
  ``{"kind": "part", "of", "part", "parts", "digest"}`` and a slice of the whole frame as body.
  :class:`Reassembler` joins them; the submission takes its place in the log at its last part.
* **Block** (subject ``clearhouse.blocks.<height>``, stream ``BLOCKS``): the sequencer's header
  canonical bytes and its signature.
* **Checkpoint** (subject ``clearhouse.checkpoints.<node>``, stream ``CHECKPOINTS``): a node's
  height, head hash and state root, signed with its participant key.
* **Snapshot file**: every block up to a height, with a trailer signed by the sequencer.

Everything here is a pure function of bytes: every node decodes the same message the same way,
and a message that does not decode is skipped by every node alike. Imports clearhouse.core and
clearhouse.ledger only; nothing of nats, the state machine or the nodes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from clearhouse.core.errors import InputError, StorageError
from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.ledger.crypto import KeyPair, verify_signature
from clearhouse.ledger.records import Block, BlockHeader, Submission, header_from_bytes

LOG_STREAM = "CLEARHOUSE"
LOG_SUBJECT = "clearhouse.log"
BLOCKS_STREAM = "BLOCKS"
BLOCKS_PREFIX = "clearhouse.blocks"
CHECKPOINTS_STREAM = "CHECKPOINTS"
CHECKPOINTS_PREFIX = "clearhouse.checkpoints"
REPLICAS = 3
DUPLICATE_WINDOW_S = 120.0  # longer than a leader failover (5-8 s), so retries are de-duplicated

SEQUENCER_ID = "SEQUENCER"
SEAL_KIND = "seal"
PART_KIND = "part"
PART_BYTES = 768 * 1024
PARTS_MAX = 512  # 384 MiB: more than the largest submission the state machine takes
HEADER_BYTES_MAX = 64 * 1024
# An incomplete multi-part submission is dropped once this many seal requests follow its first
# part: its parts may interleave with other clients' seals, but not indefinitely.
PART_SPAN_SEALS_MAX = 16

SNAPSHOT_MAGIC = b"clearhouse-snapshot/v1\n"


class WireError(InputError):
    """A message or file that is not in the wire form."""


# ----------------------------------------------------------------------------------------------
# frames and submissions


def encode_frame(header: dict[str, Any], body: bytes) -> bytes:
    head = canonical_json(header)
    return len(head).to_bytes(4, "big") + head + body


def decode_frame(data: bytes) -> tuple[dict[str, Any], bytes]:
    if len(data) < 4:
        raise WireError("frame shorter than its length prefix")
    size = int.from_bytes(data[:4], "big")
    if size > HEADER_BYTES_MAX or 4 + size > len(data):
        raise WireError(f"frame header of {size} bytes does not fit")
    try:
        header = json.loads(data[4:4 + size])
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"frame header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WireError("frame header is not an object")
    return header, data[4 + size:]


def encode_submission(sub: Submission) -> bytes:
    header = {"id": sub.submission_id, "kind": sub.kind, "submitter": sub.submitter,
              "signature": sub.signature.hex()}
    return encode_frame(header, sub.payload)


def submission_from(header: dict[str, Any], body: bytes) -> Submission:
    try:
        sid, kind, submitter = header["id"], header["kind"], header["submitter"]
        signature = bytes.fromhex(header["signature"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"not a submission header: {exc}") from exc
    if not all(isinstance(v, str) for v in (sid, kind, submitter)):
        raise WireError("submission id, kind and submitter must be strings")
    return Submission(sid, kind, submitter, body, signature)


def decode_submission(data: bytes) -> Submission:
    return submission_from(*decode_frame(data))


def message_id(sub: Submission) -> str:
    """The JetStream de-duplication id of a submission."""
    return f"{sub.submitter}/{sub.submission_id}"


def split_message(data: bytes, msg_id: str, part_bytes: int = PART_BYTES) -> list[tuple[str, bytes]]:
    """``[(message id, bytes)]`` to publish: the frame itself, or its parts when it is larger."""
    if len(data) <= part_bytes:
        return [(msg_id, data)]
    parts = -(-len(data) // part_bytes)
    if parts > PARTS_MAX:
        raise WireError(f"a message of {len(data):,} bytes needs more than {PARTS_MAX} parts")
    digest = hashlib.sha256(data).hexdigest()
    return [
        (f"{msg_id}#{k}/{parts}",
         encode_frame({"kind": PART_KIND, "of": msg_id, "part": k, "parts": parts, "digest": digest},
                      data[k * part_bytes:(k + 1) * part_bytes]))
        for k in range(parts)
    ]


@dataclass(slots=True)
class _Partial:
    first_seq: int
    parts: int
    digest: str
    seals_seen: int = 0
    bodies: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Joins the parts of large messages, in stream order; a pure function of the messages fed.

    A message opens with its part 0 (a client publishes its parts in order) and completes at its
    last missing part; a later part with no open message, parts that disagree with the first
    one (count, digest) and repeats of a part already held are ignored, and a whole that does
    not match its digest is dropped. Because a message opens only at part 0, a node that reads
    the log again from the first part still open (after a restart) rebuilds exactly the open
    messages it had, never a fragment of one that completed before.
    """

    def __init__(self) -> None:
        self._open: dict[str, _Partial] = {}

    def feed(self, seq: int, header: dict[str, Any], body: bytes) -> bytes | None:
        """The whole message when this part completes one, else None."""
        of, k, parts, digest = header.get("of"), header.get("part"), header.get("parts"), header.get("digest")
        if not (isinstance(of, str) and isinstance(k, int) and isinstance(parts, int) and isinstance(digest, str)):
            return None
        if not (1 < parts <= PARTS_MAX and 0 <= k < parts and len(body) <= PART_BYTES):
            return None
        partial = self._open.get(of)
        if partial is None:
            if k != 0:
                return None
            partial = self._open[of] = _Partial(seq, parts, digest)
        if partial.parts != parts or partial.digest != digest or k in partial.bodies:
            return None
        partial.bodies[k] = body
        if len(partial.bodies) < parts:
            return None
        del self._open[of]
        whole = b"".join(partial.bodies[i] for i in range(parts))
        return whole if hashlib.sha256(whole).hexdigest() == digest else None

    def seal_passed(self) -> None:
        """A valid seal request went by: drop what has waited too long for its parts."""
        for of in list(self._open):
            partial = self._open[of]
            partial.seals_seen += 1
            if partial.seals_seen > PART_SPAN_SEALS_MAX:
                del self._open[of]

    def first_open_seq(self) -> int | None:
        """Stream sequence of the earliest part still waiting for the rest of its message."""
        return min((p.first_seq for p in self._open.values()), default=None)


# ----------------------------------------------------------------------------------------------
# seal requests


@dataclass(frozen=True, slots=True)
class Seal:
    """A valid seal request. Attributes: business_date; timestamp (ISO 8601 UTC, passed in)."""

    business_date: dt.date
    timestamp: str


def seal_request(key: KeyPair, business_date: dt.date, timestamp: str, sequencer: str = SEQUENCER_ID) -> Submission:
    """A seal request signed by the sequencer key; its id names the date and timestamp."""
    payload = canonical_json({"seal": {"business_date": business_date.isoformat(), "timestamp": timestamp}})
    sid = f"seal/{business_date.isoformat()}/{timestamp}"
    digest = Submission.digest_for(sid, SEAL_KIND, sequencer, payload)
    return Submission(sid, SEAL_KIND, sequencer, payload, key.sign(digest))


def parse_seal(sub: Submission, sequencer_key: bytes, sequencer: str = SEQUENCER_ID) -> Seal | None:
    """The seal a request asks for, or None when it is not a valid seal request of the sequencer."""
    if sub.kind != SEAL_KIND or sub.submitter != sequencer:
        return None
    if not verify_signature(sequencer_key, sub.signing_digest(), sub.signature):
        return None
    try:
        body = json.loads(sub.payload)["seal"]
        day = dt.date.fromisoformat(body["business_date"])
        timestamp = body["timestamp"]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(timestamp, str) or not timestamp or len(timestamp) > 64:
        return None
    return Seal(day, timestamp)


# ----------------------------------------------------------------------------------------------
# blocks and checkpoints


def blocks_subject(height: int) -> str:
    return f"{BLOCKS_PREFIX}.{height}"


def checkpoints_subject(node_id: str) -> str:
    return f"{CHECKPOINTS_PREFIX}.{node_id}"


def encode_block_message(header: BlockHeader, signature: bytes) -> bytes:
    return canonical_json({"height": header.height, "header": header.canonical().decode(),
                           "signature": signature.hex()})


def decode_block_message(data: bytes) -> tuple[BlockHeader, bytes, bytes]:
    """(header, its canonical bytes as published, signature)."""
    try:
        body = json.loads(data)
        raw = body["header"].encode()
        signature = bytes.fromhex(body["signature"])
        header = header_from_bytes(raw)
    except (KeyError, TypeError, ValueError, AttributeError, StorageError) as exc:
        raise WireError(f"not a block message: {exc}") from exc
    return header, raw, signature


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a node states about its ledger after a block.

    Attributes: node (participant id whose key signed it), height, head_hash, state_root,
    signature over :meth:`digest`.
    """

    node: str
    height: int
    head_hash: bytes
    state_root: bytes
    signature: bytes

    @staticmethod
    def digest_for(height: int, head_hash: bytes, state_root: bytes) -> bytes:
        return sha256(b"clearhouse/checkpoint/v1", height.to_bytes(8, "big"), head_hash, state_root)

    def digest(self) -> bytes:
        return self.digest_for(self.height, self.head_hash, self.state_root)

    @classmethod
    def signed(cls, key: KeyPair, node: str, height: int, head_hash: bytes, state_root: bytes) -> Checkpoint:
        return cls(node, height, head_hash, state_root, key.sign(cls.digest_for(height, head_hash, state_root)))

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "height": self.height, "head_hash": self.head_hash.hex(),
                "state_root": self.state_root.hex(), "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, body: Any) -> Checkpoint:
        try:
            return cls(str(body["node"]), int(body["height"]), bytes.fromhex(body["head_hash"]),
                       bytes.fromhex(body["state_root"]), bytes.fromhex(body["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"not a checkpoint: {exc}") from exc

    def encode(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def decode(cls, data: bytes) -> Checkpoint:
        try:
            return cls.from_json(json.loads(data))
        except (UnicodeDecodeError, ValueError) as exc:
            raise WireError(f"not a checkpoint: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# snapshot files


def _encode_block(block: Block) -> bytes:
    subs = b"".join(len(f).to_bytes(8, "big") + f for f in map(encode_submission, block.submissions))
    header = {"header": block.header.canonical().decode(), "signature": block.signature.hex(),
              "submissions": len(block.submissions)}
    return encode_frame(header, subs)


def _decode_block(data: bytes) -> Block:
    head, body = decode_frame(data)
    try:
        header = header_from_bytes(head["header"].encode())
        signature = bytes.fromhex(head["signature"])
        count = int(head["submissions"])
    except (KeyError, TypeError, ValueError, AttributeError, StorageError) as exc:
        raise WireError(f"snapshot block unreadable: {exc}") from exc
    subs: list[Submission] = []
    offset = 0
    for _ in range(count):
        size = int.from_bytes(body[offset:offset + 8], "big")
        subs.append(decode_submission(body[offset + 8:offset + 8 + size]))
        offset += 8 + size
    if offset != len(body):
        raise WireError(f"snapshot block {header.height} has trailing bytes")
    return Block(header, signature, tuple(subs))


def _trailer_digest(trailer: dict[str, Any]) -> bytes:
    return sha256(b"clearhouse/snapshot/v1", canonical_json({k: v for k, v in trailer.items() if k != "signature"}))


def write_snapshot(path: Path, blocks: Iterator[Block], resume: dict[str, int], key: KeyPair,
                   sequencer: str = SEQUENCER_ID) -> dict[str, Any]:
    """Write every block given (from genesis, in order) and a trailer signed by the sequencer.

    ``resume`` holds where a node that imports the snapshot continues in the log (see
    ``clearhouse.network.node``). Returns the trailer.
    """
    body = hashlib.sha256()
    last: Block | None = None
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(SNAPSHOT_MAGIC)
        for expected, block in enumerate(blocks):
            if block.height != expected:
                raise StorageError(f"snapshot blocks out of order at {block.height}")
            frame = _encode_block(block)
            fh.write(len(frame).to_bytes(8, "big") + frame)
            body.update(frame)
            last = block
        if last is None:
            raise StorageError("no block to put in a snapshot")
        trailer: dict[str, Any] = {
            "height": last.height, "head_hash": last.header.hash().hex(),
            "state_root": last.header.state_root.hex(), "body_sha256": body.hexdigest(),
            "resume": resume, "sequencer": sequencer,
        }
        trailer["signature"] = key.sign(_trailer_digest(trailer)).hex()
        frame = encode_frame(trailer, b"")
        fh.write(frame + len(frame).to_bytes(8, "big"))
    tmp.replace(path)
    return trailer


def _read_frames(fh: BinaryIO, end: int) -> Iterator[bytes]:
    while fh.tell() < end:
        size = int.from_bytes(fh.read(8), "big")
        if fh.tell() + size > end:
            raise WireError("snapshot frame runs past the end of the blocks")
        yield fh.read(size)


def read_snapshot(path: Path, sequencer_key: bytes) -> tuple[dict[str, Any], Iterator[Block]]:
    """Check the file's body digest and the sequencer's signature over its trailer, then return
    (trailer, the blocks in order). Every block's own signature and state root are for the
    importing node to check as it applies them."""
    try:
        fh = open(path, "rb")  # closed by the block iterator below, or on a failed check
    except OSError as exc:
        raise WireError(f"cannot read the snapshot {path}: {exc}") from exc
    try:
        if fh.read(len(SNAPSHOT_MAGIC)) != SNAPSHOT_MAGIC:
            raise WireError(f"{path} is not a clearhouse snapshot")
        size = fh.seek(0, 2)
        fh.seek(size - 8)
        trailer_size = int.from_bytes(fh.read(8), "big")
        end = size - 8 - trailer_size
        if end < len(SNAPSHOT_MAGIC):
            raise WireError("snapshot trailer does not fit")
        fh.seek(end)
        trailer, _ = decode_frame(fh.read(trailer_size))
        try:
            signature = bytes.fromhex(trailer["signature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError("snapshot trailer is not signed") from exc
        if not verify_signature(sequencer_key, _trailer_digest(trailer), signature):
            raise WireError("the snapshot's signature does not verify with the sequencer's key")
        fh.seek(len(SNAPSHOT_MAGIC))
        body = hashlib.sha256()
        for frame in _read_frames(fh, end):
            body.update(frame)
        if body.hexdigest() != trailer.get("body_sha256"):
            raise WireError("the snapshot's blocks do not match its signed digest")
    except BaseException:
        fh.close()
        raise

    def blocks() -> Iterator[Block]:
        with fh:
            fh.seek(len(SNAPSHOT_MAGIC))
            for frame in _read_frames(fh, end):
                yield _decode_block(frame)

    return trailer, blocks()
