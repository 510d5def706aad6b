"""A participant's node on the replicated ledger: it follows the ordered log in NATS JetStream,
cuts the same blocks as every other node, applies them with the deterministic state machine,
keeps its own store, and checks every other node's checkpoints against its own.

How a node turns the log into blocks (:class:`BlockCutter`): submissions queue up in stream order
(a large one at its last part); each valid seal request of the sequencer cuts everything queued
into the next block (several blocks of at most ``SUBMISSIONS_PER_BLOCK_MAX`` when more are
queued) with the request's business date and timestamp. A seal request with nothing queued cuts
nothing. The sequencer node (the CCP operator's, holding the ``SEQUENCER`` key) signs each block
and publishes its header to ``clearhouse.blocks.<height>``; every other node builds the same
header itself, checks that it is the sequencer's (else it raises an alarm and halts) and stores
the block with the sequencer's signature, so every store holds byte-identical blocks.

After each block a node publishes a checkpoint (height, head hash, state root, signed with its
participant key) and compares every other node's checkpoint with its own record of that height;
the first height at which a node differs is an alarm naming that node. A node restarts from its
store (replayed and checked block by block) and reads the log on from the position recorded with
its last block (store meta ``resume/<height>``); a new node whose log has been trimmed starts from
a snapshot signed by the sequencer. Its status is written to ``DATA/network/<id>.status.json``.

Run one with ``clearhouse network node`` or ``python -m clearhouse.network.node``.
Imports clearhouse.core, ledger, state, node and network (wire, jetstream); never an interface.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from clearhouse.core.errors import ClearhouseError, InputError, InvariantViolation, StorageError
from clearhouse.core.hashing import ZERO_DIGEST
from clearhouse.ledger.crypto import KeyPair, KeyStore, verify_signature
from clearhouse.ledger.records import BlockHeader, Submission, submissions_root
from clearhouse.ledger.store import LedgerStore
from clearhouse.network.jetstream import (
    TRANSIENT_ERRORS,
    StreamRecord,
    ensure_stream,
    iter_stream,
    publish_with_retry,
)
from clearhouse.network.wire import (
    BLOCKS_PREFIX,
    BLOCKS_STREAM,
    CHECKPOINTS_PREFIX,
    CHECKPOINTS_STREAM,
    DUPLICATE_WINDOW_S,
    LOG_STREAM,
    LOG_SUBJECT,
    PART_KIND,
    REPLICAS,
    SEAL_KIND,
    SEQUENCER_ID,
    Checkpoint,
    Reassembler,
    Seal,
    WireError,
    blocks_subject,
    checkpoints_subject,
    decode_block_message,
    decode_frame,
    encode_block_message,
    encode_submission,
    parse_seal,
    read_snapshot,
    seal_request,
    split_message,
    submission_from,
)
from clearhouse.node.node import SUBMISSIONS_PER_BLOCK_MAX, Node

log = logging.getLogger("clearhouse.network.node")

ALARMS_MAX = 200
HELD_CHECKPOINTS_MAX = 10_000
HEADER_WAIT_LOG_S = 30.0
RETRY_S = 120.0
T = TypeVar("T")
STATUS_EVERY_S = 0.5


# ----------------------------------------------------------------------------------------------
# configuration and files


def network_dir(data_dir: Path) -> Path:
    return data_dir / "network"


def status_path(data_dir: Path, node_id: str) -> Path:
    return network_dir(data_dir) / f"{node_id}.status.json"


def sqlite_path(data_dir: Path, node_id: str) -> Path:
    return network_dir(data_dir) / "nodes" / node_id / "ledger.sqlite"


def sequencer_pub_path(data_dir: Path) -> Path:
    return network_dir(data_dir) / "sequencer.pub"


def write_json_atomic(path: Path, body: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


def sequencer_public_key(data_dir: Path) -> bytes:
    """The sequencer's public key: ``DATA/network/sequencer.pub`` (hex), else from its key file."""
    pub = sequencer_pub_path(data_dir)
    if pub.exists():
        return bytes.fromhex(pub.read_text().strip())
    return KeyStore(data_dir / "keys").load(SEQUENCER_ID).public_key


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Client TLS for NATS. Attributes: ca (trusted roots), cert and key (client certificate)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert:
            ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        return ctx


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """How one node runs.

    Attributes:
        node_id: the participant whose node this is (its key signs the checkpoints).
        data_dir: holds ``keys/`` and ``network/`` (status, SQLite stores).
        nats_urls: the NATS servers (any of them will do; the client fails over).
        store: ``postgres`` (``dsn`` required) or ``sqlite``.
        sequencer: True on the CCP operator's node, which signs blocks with the SEQUENCER key.
        sequencer_key: the sequencer's public key (pinned: seal requests, block headers and
            snapshots must verify with it).
        snapshot: a snapshot file to start from when the store is behind it.
        seal_every_s: on the sequencer, publish a seal request when submissions have waited this
            long (0: only clients seal).
        tls: client TLS for NATS; creds: a NATS credentials file.
        replicas: replicas of the streams when this node is the first to create them.
    """

    node_id: str
    data_dir: Path
    nats_urls: list[str]
    store: str
    sequencer_key: bytes
    dsn: str | None = None
    sequencer: bool = False
    snapshot: Path | None = None
    seal_every_s: float = 0.0
    tls: TlsFiles | None = None
    creds: Path | None = None
    replicas: int = REPLICAS


def open_store(config: NodeConfig) -> LedgerStore:
    if config.store == "postgres":
        from clearhouse.ledger.postgres_store import PostgresStore

        if not config.dsn:
            raise StorageError("a PostgreSQL store needs --dsn")
        return PostgresStore(config.dsn)
    if config.store == "sqlite":
        from clearhouse.ledger.sqlite_store import SqliteStore

        return SqliteStore(sqlite_path(config.data_dir, config.node_id))
    raise StorageError(f"unknown store {config.store!r} (postgres or sqlite)")


async def _quiet(exc: Exception) -> None:
    """Connection errors while a server is down are expected: the client reconnects."""
    log.debug("nats: %s", exc)


async def connect_nats(urls: list[str], name: str, tls: TlsFiles | None = None,
                       creds: Path | None = None) -> NATS:
    options: dict[str, Any] = {
        "servers": urls, "name": name, "connect_timeout": 2, "reconnect_time_wait": 0.5,
        "max_reconnect_attempts": -1, "error_cb": _quiet, "allow_reconnect": True,
    }
    if tls is not None:
        options["tls"] = tls.context()
    if creds is not None:
        options["user_credentials"] = str(creds)
    return await nats.connect(**options)


STREAMS = (
    (LOG_STREAM, [LOG_SUBJECT]),
    (BLOCKS_STREAM, [f"{BLOCKS_PREFIX}.>"]),
    (CHECKPOINTS_STREAM, [f"{CHECKPOINTS_PREFIX}.>"]),
)


async def retry_transient(request: Callable[[], Awaitable[T]], what: str, timeout_s: float = RETRY_S) -> T:
    """``request()``, repeated while it fails transiently (a server down, a leader election)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await request()
        except TRANSIENT_ERRORS as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("%s: %s; retrying", what, type(exc).__name__)
        await asyncio.sleep(0.5)


async def ensure_streams(js: JetStreamContext, replicas: int = REPLICAS, *, create_only: bool = False) -> None:
    """Create the log, blocks and checkpoints streams; ``create_only`` leaves existing ones as
    they are (a node joining a network takes the streams the network was set up with)."""
    for name, subjects in STREAMS:
        for attempt in range(3):
            try:
                if create_only:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await retry_transient(functools.partial(js.stream_info, name), f"stream {name}")
                        break
                await ensure_stream(js, name, subjects, replicas=replicas, duplicate_window_s=DUPLICATE_WINDOW_S)
                break
            except nats.js.errors.BadRequestError:
                # another node created it between our look and our create: look again
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)


async def publish_frame(js: JetStreamContext, data: bytes, msg_id: str, subject: str = LOG_SUBJECT) -> bool:
    """Publish a frame (as parts when large) under ``msg_id``; True when the stream already held it."""
    duplicate = True
    for part_id, part in split_message(data, msg_id):
        ack = await publish_with_retry(js, subject, part, part_id, timeout_s=5.0, attempts=40)
        duplicate = duplicate and bool(ack.duplicate)
    return duplicate


async def publish_submission(js: JetStreamContext, sub: Submission) -> bool:
    return await publish_frame(js, encode_submission(sub), f"{sub.submitter}/{sub.submission_id}")


async def publish_seal(js: JetStreamContext, key: KeyPair, business_date: dt.date, timestamp: str) -> bool:
    req = seal_request(key, business_date, timestamp)
    return await publish_frame(js, encode_submission(req), f"{req.submitter}/{req.submission_id}")


# ----------------------------------------------------------------------------------------------
# block boundaries


@dataclass(slots=True)
class BlockCutter:
    """Block boundaries from the ordered log: a pure function of the messages fed, in order.

    Attributes:
        sequencer_key: public key seal requests must verify with.
        consumed: stream sequence up to which every submission is already in a stored block;
            messages at or below it only rebuild the parts of large messages still open.
        pending: (stream sequence, submission) queued for the next block.
    """

    sequencer_key: bytes
    consumed: int = 0
    pending: list[tuple[int, Submission]] = field(default_factory=list)
    parts: Reassembler = field(default_factory=Reassembler)
    skipped: int = 0

    def feed(self, seq: int, data: bytes) -> Seal | None:
        """Take the next message; returns the seal when it cuts a block."""
        try:
            header, body = decode_frame(data)
            if header.get("kind") == PART_KIND:
                whole = self.parts.feed(seq, header, body)
                if whole is None:
                    return None
                header, body = decode_frame(whole)
                if header.get("kind") == PART_KIND:
                    raise WireError("a part inside a part")
            sub = submission_from(header, body)
        except WireError as exc:
            self.skipped += 1
            log.warning("log message %d skipped: %s", seq, exc)
            return None
        if sub.kind == SEAL_KIND:
            seal = parse_seal(sub, self.sequencer_key)
            if seal is None:
                self.skipped += 1
                log.warning("log message %d: a seal request that is not the sequencer's, ignored", seq)
                return None
            self.parts.seal_passed()
            return seal if seq > self.consumed and self.pending else None
        if seq > self.consumed:
            self.pending.append((seq, sub))
        return None

    def resume_after(self, consumed: int) -> dict[str, int]:
        """Where to read the log from after a block that consumed up to ``consumed``."""
        first_open = self.parts.first_open_seq()
        start = consumed + 1 if first_open is None else min(consumed + 1, first_open)
        return {"consumed": consumed, "from": start}


# ----------------------------------------------------------------------------------------------
# the sequencer's headers, as followers receive them


class Divergence(ClearhouseError):
    """This node built another block than the sequencer's (or the sequencer's does not verify)."""

    def __init__(self, height: int, what: str) -> None:
        super().__init__(f"block {height}: {what}")
        self.height = height
        self.what = what


class NodeStopping(ClearhouseError):
    """The node was asked to stop while it waited."""


class HeaderBoard:
    """Sequencer headers by height, handed from the event loop to the worker thread."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._headers: dict[int, tuple[BlockHeader, bytes]] = {}
        self.floor = -1
        self.wanted = -1
        self.stopping = False

    def put(self, header: BlockHeader, signature: bytes) -> None:
        with self._cv:
            if header.height > self.floor and header.height not in self._headers:
                self._headers[header.height] = (header, signature)
                self._cv.notify_all()

    def has(self, height: int) -> bool:
        with self._cv:
            return height in self._headers

    def wait(self, height: int, timeout_s: float) -> tuple[BlockHeader, bytes] | None:
        with self._cv:
            self._cv.wait_for(lambda: height in self._headers or self.stopping, timeout=timeout_s)
            if self.stopping:
                raise NodeStopping("stopping")
            return self._headers.get(height)

    def advance(self, height: int) -> None:
        """Forget headers at or below ``height`` (stored already)."""
        with self._cv:
            self.floor = height
            for h in [h for h in self._headers if h <= height]:
                del self._headers[h]

    def stop(self) -> None:
        with self._cv:
            self.stopping = True
            self._cv.notify_all()


class ReceivedSignature(KeyPair):
    """Stands in for the sequencer key in a follower's ``Node.seal``: instead of signing, it
    waits for the sequencer's header of the block being cut, checks that it is the header this
    node built (same hash) and signed by the sequencer, and returns the sequencer's signature;
    otherwise it raises :class:`Divergence` before anything is stored."""

    __slots__ = ("_board", "_sequencer_key", "_want", "_expected", "last_digest")

    def __init__(self, board: HeaderBoard, sequencer_key: bytes, want: Callable[[int], None]) -> None:
        self._board = board
        self._sequencer_key = sequencer_key
        self._want = want
        self._expected: dict[str, Any] = {}
        self.last_digest = ZERO_DIGEST

    def expect(self, height: int, **ours: Any) -> None:
        """Announce the block about to be cut (its height and the fields known before applying)."""
        self._expected = {"height": height, **ours}
        self._want(height)

    def sign(self, digest: bytes) -> bytes:
        height = int(self._expected["height"])
        self.last_digest = digest
        waited = 0.0
        while True:
            got = self._board.wait(height, timeout_s=1.0)
            if got is not None:
                break
            waited += 1.0
            if waited % HEADER_WAIT_LOG_S == 0:
                log.info("waiting for the sequencer's header of block %d (%.0f s)", height, waited)
                self._want(height)
        header, signature = got
        if not verify_signature(self._sequencer_key, header.hash(), signature):
            raise Divergence(height, "the sequencer's signature on its header does not verify")
        if header.hash() != digest:
            raise Divergence(height, self._difference(header))
        return signature

    def _difference(self, theirs: BlockHeader) -> str:
        ours = self._expected
        named = [
            f"{name}: sequencer {_show(getattr(theirs, name))}, this node {_show(ours[name])}"
            for name in ("prev_hash", "business_date", "timestamp", "merkle_root", "state_root")
            if name in ours and getattr(theirs, name) != ours[name]
        ]
        return "; ".join(named) or "results root differs from the sequencer's"


def _records(stream: AsyncIterator[StreamRecord]) -> AsyncGenerator[StreamRecord, None]:
    """``iter_stream``'s records, typed as the generator it is (so it can be closed at once)."""
    return cast(AsyncGenerator[StreamRecord, None], stream)


def _show(value: Any) -> str:
    return value.hex()[:16] if isinstance(value, bytes) else str(value)


# ----------------------------------------------------------------------------------------------
# the node


@dataclass(slots=True)
class Alarm:
    """A divergence seen by this node. Attributes: node (the one that differs), height, what."""

    node: str
    height: int
    what: str
    seen_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "height": self.height, "what": self.what, "seen_at": self.seen_at}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LedgerNode:
    """One participant's node: log follower (or sequencer), store, checkpoints, status."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.id = config.node_id
        keys = KeyStore(config.data_dir / "keys")
        self.key = keys.load(self.id)
        self.board = HeaderBoard()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._want_header = asyncio.Event()
        if config.sequencer:
            seq_key = keys.load(SEQUENCER_ID)
            if seq_key.public_key != config.sequencer_key:
                raise InputError("the SEQUENCER key held here is not the network's sequencer key")
            self.signer: KeyPair = seq_key
        else:
            self.signer = ReceivedSignature(self.board, config.sequencer_key, self._request_header)
        self.store = open_store(config)
        self.node = Node(self.store, SEQUENCER_ID, self.signer)
        self.cutter = BlockCutter(config.sequencer_key)
        self.records: dict[int, tuple[bytes, bytes]] = {}
        self.head: tuple[int, bytes, bytes] = (-1, ZERO_DIGEST, ZERO_DIGEST)
        self.public_keys: dict[str, bytes] = {}
        self.alarms: list[Alarm] = []
        self.alarmed: set[str] = set()
        self.peers: dict[str, dict[str, Any]] = {}
        self.held: dict[tuple[str, int], Checkpoint] = {}
        self.halted: str | None = None
        self.halt_height: int | None = None
        self.state = "starting"
        self.log_start = 1
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"node-{self.id}")
        self._last_pending_at = 0.0
        self._status_dirty = False
        self._business_date: dt.date | None = None

    # -- opening -------------------------------------------------------------------------------

    def replay(self) -> None:
        """Rebuild the state from the store, checking the chain, each sequencer signature and
        each state root; a stored block that does not check out halts the node with an alarm
        about itself at that height."""
        prev = ZERO_DIGEST
        head = self.store.head_height()
        for height in range(head + 1):
            try:
                block = self.store.block(height)
            except StorageError as exc:
                self._halt(Alarm(self.id, height, f"this node's store: block unreadable: {exc}"))
                return
            h = block.header
            problem = ""
            if h.height != height:
                problem = f"the block stored at {height} says height {h.height}"
            elif h.prev_hash != prev:
                problem = "the stored previous-block hash breaks the chain"
            elif not verify_signature(self.config.sequencer_key, h.hash(), block.signature):
                problem = "the stored block's sequencer signature does not verify"
            else:
                self.node.machine.apply_block(h.height, dt.date.fromisoformat(h.business_date), block.submissions)
                root = self.node.machine.state_root()
                if root != h.state_root:
                    problem = (f"replaying the stored block gives state root {root.hex()[:16]}, "
                               f"its header says {h.state_root.hex()[:16]}")
                    self._record(h.height, h.hash(), root)
            if problem:
                if h.height not in self.records:
                    self._record(h.height, h.hash(), h.state_root)
                self._halt(Alarm(self.id, h.height, f"this node's store: {problem}"))
                return
            prev = h.hash()
            self.node.head_hash = prev
            self._business_date = dt.date.fromisoformat(h.business_date)
            self._record(h.height, prev, h.state_root)
            if h.height % 100 == 0 and h.height:
                log.info("replayed %d of %d blocks", h.height, head)
        self._refresh_keys()
        if head >= 0:
            raw = self.store.get_meta(f"resume/{head}")
            if raw is None:
                self._halt(Alarm(self.id, head, "no log position recorded with the stored head block"))
                return
            resume = json.loads(raw)
            if int(resume.get("snapshot_height", head)) > head and self.config.snapshot is None:
                self._halt(Alarm(self.id, head, "a snapshot import stopped at this block: start the node with "
                                                "--snapshot again"))
                return
            self.cutter.consumed = int(resume["consumed"])
            self.log_start = int(resume["from"])
        self.board.advance(head)

    def import_snapshot(self, path: Path) -> None:
        """Append the snapshot's blocks beyond the store's head, each applied and checked."""
        trailer, blocks = read_snapshot(path, self.config.sequencer_key)
        imported = 0
        for block in blocks:
            h = block.header
            if h.height <= self.node.height:
                if h.height == self.node.height and h.hash() != self.node.head_hash:
                    raise Divergence(h.height, "the snapshot's block differs from the one stored here")
                continue
            board = HeaderBoard()
            board.put(h, block.signature)
            key = ReceivedSignature(board, self.config.sequencer_key, lambda _height: None)
            self.node.sequencer_key = key
            key.expect(h.height, prev_hash=self.node.head_hash, business_date=h.business_date,
                       timestamp=h.timestamp, merkle_root=submissions_root(block.submissions))
            for sub in block.submissions:
                self.node.submit(sub)
            # the log position is the snapshot's end: valid once its last block is in
            resume = {**trailer["resume"], "snapshot_height": int(trailer["height"])}
            self.store.set_meta(f"resume/{h.height}", json.dumps(resume))
            self.node.seal(dt.date.fromisoformat(h.business_date), h.timestamp)
            self._record(h.height, h.hash(), h.state_root)
            self._business_date = dt.date.fromisoformat(h.business_date)
            imported += 1
        self.node.sequencer_key = self.signer
        if imported:
            self.cutter.consumed = int(trailer["resume"]["consumed"])
            self.log_start = int(trailer["resume"]["from"])
            self.board.advance(self.node.height)
            self._refresh_keys()
        log.info("snapshot %s: %d blocks imported, head %d", path, imported, self.node.height)

    def _refresh_keys(self) -> None:
        participants = self.node.machine.participants
        if len(participants) != len(self.public_keys):
            self.public_keys = {p.id: p.public_key for p in participants}

    # -- cutting blocks (worker thread) --------------------------------------------------------

    def _cut(self, seal: Seal, seal_seq: int) -> list[int]:
        """Cut everything queued into blocks at ``seal``; returns the heights stored."""
        made: list[int] = []
        pending = self.cutter.pending
        while pending:
            batch = pending[:SUBMISSIONS_PER_BLOCK_MAX]
            consumed = seal_seq if len(batch) == len(pending) else batch[-1][0]
            height = self.node.height + 1
            subs = [sub for _, sub in batch]
            if isinstance(self.signer, ReceivedSignature):
                self.signer.expect(height, prev_hash=self.node.head_hash, business_date=seal.business_date.isoformat(),
                                   timestamp=seal.timestamp, merkle_root=submissions_root(subs))
            self.store.set_meta(f"resume/{height}", json.dumps(self.cutter.resume_after(consumed)))
            for sub in subs:
                self.node.submit(sub)
            try:
                block = self.node.seal(seal.business_date, seal.timestamp)
            except Divergence:
                ours = self.signer.last_digest if isinstance(self.signer, ReceivedSignature) else ZERO_DIGEST
                self._record(height, ours, self.node.machine.state_root())
                raise
            del pending[:len(batch)]
            self.cutter.consumed = consumed
            self._business_date = seal.business_date
            self._record(height, block.header.hash(), block.header.state_root)
            self.board.advance(height)
            self._refresh_keys()
            made.append(height)
        return made

    def _request_header(self, height: int) -> None:
        """Called from the worker: fetch the sequencer's header of ``height`` now if not here."""
        self.board.wanted = height
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._want_header.set)

    # -- checkpoints and alarms ----------------------------------------------------------------

    def _halt(self, alarm: Alarm) -> None:
        """Stop applying blocks. This node's records from the alarm's height on are its own
        (they differ from the network's), so other nodes' checkpoints are compared below it only."""
        self._alarm(alarm)
        self.halted = f"block {alarm.height}: {alarm.what}"
        self.halt_height = alarm.height
        self.state = "halted"

    def _alarm(self, alarm: Alarm) -> None:
        alarm.seen_at = _now()
        log.error("ALARM node %s at height %d: %s", alarm.node, alarm.height, alarm.what)
        if len(self.alarms) < ALARMS_MAX:
            self.alarms.append(alarm)

    def check_checkpoint(self, cp: Checkpoint) -> None:
        """Compare another node's checkpoint with this node's record of the same height."""
        if cp.node == self.id:
            return
        peer = self.peers.setdefault(cp.node, {"height": -1, "agrees_through": -1, "diverged_at": None})
        peer["height"] = max(peer["height"], cp.height)
        if self.halt_height is not None and cp.height >= self.halt_height:
            return
        key = self.public_keys.get(cp.node)
        if key is None or cp.height not in self.records:
            if len(self.held) < HELD_CHECKPOINTS_MAX:
                self.held[(cp.node, cp.height)] = cp
            return
        if not verify_signature(key, cp.digest(), cp.signature):
            self._alarm_once(cp.node, cp.height, "its checkpoint's signature does not verify with its key")
            return
        head_hash, state_root = self.records[cp.height]
        if (head_hash, state_root) == (cp.head_hash, cp.state_root):
            peer["agrees_through"] = max(peer["agrees_through"], cp.height)
            return
        what = []
        if head_hash != cp.head_hash:
            what.append(f"head hash {cp.head_hash.hex()[:16]} (here {head_hash.hex()[:16]})")
        if state_root != cp.state_root:
            what.append(f"state root {cp.state_root.hex()[:16]} (here {state_root.hex()[:16]})")
        if peer["diverged_at"] is None or cp.height < peer["diverged_at"]:
            peer["diverged_at"] = cp.height
        self._alarm_once(cp.node, cp.height, "differs at this height: " + ", ".join(what))

    def _alarm_once(self, node: str, height: int, what: str) -> None:
        """One alarm per diverging node: the first height at which it differs."""
        if node in self.alarmed:
            return
        self.alarmed.add(node)
        self._alarm(Alarm(node, height, what))

    def _recheck_held(self) -> None:
        ready = [k for k, cp in self.held.items() if cp.height in self.records and cp.node in self.public_keys]
        for k in sorted(ready, key=lambda k: k[1]):
            self.check_checkpoint(self.held.pop(k))

    def _record(self, height: int, head_hash: bytes, state_root: bytes) -> None:
        """What this node holds at ``height`` (checkpoints are compared with it)."""
        self.records[height] = (head_hash, state_root)
        self.head = (height, head_hash, state_root)

    def status(self) -> dict[str, Any]:
        height, head_hash, state_root = self.head
        return {
            "node": self.id, "role": "sequencer" if self.config.sequencer else "follower",
            "pid": os.getpid(), "state": self.state, "halted": self.halted,
            "height": height, "head_hash": head_hash.hex(), "state_root": state_root.hex(),
            "log_consumed": self.cutter.consumed, "queued": len(self.cutter.pending),
            "skipped_messages": self.cutter.skipped, "store": self.config.store,
            "alarms": [a.to_json() for a in self.alarms], "peers": self.peers, "updated": _now(),
        }

    def write_status(self) -> None:
        self._status_dirty = False
        write_json_atomic(status_path(self.config.data_dir, self.id), self.status())

    # -- the event loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """Follow the network until ``stop`` is set; returns the process exit status."""
        self._loop = asyncio.get_running_loop()
        nc = await connect_nats(self.config.nats_urls, f"clearhouse-node-{self.id}", self.config.tls,
                                self.config.creds)
        js = nc.jetstream(timeout=5)
        tasks: list[asyncio.Task[Any]] = []
        stopping = asyncio.create_task(stop.wait())
        code = 0
        try:
            await ensure_streams(js, self.config.replicas, create_only=True)
            self.state = "replaying"
            self.write_status()
            await self._in_worker(self.replay)
            if self.halted is None and self.config.snapshot is not None:
                await self._in_worker(self.import_snapshot, self.config.snapshot)
            tasks.append(asyncio.create_task(self._follow_checkpoints(js)))
            tasks.append(asyncio.create_task(self._flush_status()))
            if self.halted is None:
                await self._publish_checkpoint(js, self.node.height)
                if self.config.sequencer:
                    await self._republish_headers(js)
                else:
                    sub = await nc.subscribe(f"{BLOCKS_PREFIX}.>", cb=self._on_header)
                    tasks.append(asyncio.create_task(self._fetch_headers(js, sub)))
                tasks.append(asyncio.create_task(self._follow_log(js)))
                if self.config.sequencer and self.config.seal_every_s > 0:
                    tasks.append(asyncio.create_task(self._auto_seal(js)))
            else:
                await self._publish_halt_checkpoint(js)
            self.write_status()
            running = set(tasks)
            while not stop.is_set():
                finished, running = await asyncio.wait({stopping, *running}, return_when=asyncio.FIRST_COMPLETED)
                running.discard(stopping)
                for task in finished:
                    task.result()  # a task that failed stops the node; one that returned (halted) does not
        except InvariantViolation as exc:
            self._halt(Alarm(self.id, self.node.height + 1, f"invariant broken: {exc}"))
            code = 3
        except ClearhouseError as exc:
            log.error("node stopped: %s", exc)
            self.halted, self.state, code = str(exc), "failed", 1
        except Exception as exc:  # anything else unexpected stops the node, visibly
            log.exception("node failed")
            self.halted, self.state, code = f"{type(exc).__name__}: {exc}", "failed", 1
        finally:
            self.board.stop()
            for task in (*tasks, stopping):
                task.cancel()
            await asyncio.gather(*tasks, stopping, return_exceptions=True)
            self._worker.shutdown(wait=True)
            if self.state not in ("halted", "failed"):
                self.state = "stopped"
            self.write_status()
            self.store.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.drain(), timeout=5)
        return code

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the node's one worker thread (the store and the machine are used there only)."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def _follow_log(self, js: JetStreamContext) -> None:
        info = await retry_transient(lambda: js.stream_info(LOG_STREAM), "log stream")
        if info.state.first_seq > 1 and self.log_start < info.state.first_seq:
            self._halt(Alarm(self.id, self.node.height, (
                f"the log no longer holds messages from sequence {self.log_start} (it starts at "
                f"{info.state.first_seq}): start this node from a snapshot (--snapshot)")))
            self.write_status()
            return
        self.state = "following"
        self.write_status()
        log.info("following the log from sequence %d at height %d", self.log_start, self.node.height)
        stream = _records(iter_stream(js, LOG_STREAM, self.log_start, follow=True, idle_timeout_s=60.0,
                                      heartbeat_s=2.0))
        async with contextlib.aclosing(stream) as records:
            async for seq, _subject, data, _headers in records:
                seal = self.cutter.feed(seq, data)
                if self.cutter.pending and not self._last_pending_at:
                    self._last_pending_at = time.monotonic()
                if seal is None:
                    continue
                try:
                    made = await self._in_worker(self._cut, seal, seq)
                except Divergence as exc:
                    what = f"this node's block differs from the sequencer's: {exc.what}"
                    self._halt(Alarm(self.id, exc.height, what))
                    await self._publish_halt_checkpoint(js)
                    self.write_status()
                    return
                self._last_pending_at = 0.0
                for height in made:
                    if self.config.sequencer:
                        await self._publish_header(js, height)
                    await self._publish_checkpoint(js, height)
                self._recheck_held()
                self.write_status()

    async def _publish_header(self, js: JetStreamContext, height: int) -> None:
        block = await self._in_worker(self.store.block, height)
        await self._publish_forever(js, blocks_subject(height), encode_block_message(block.header, block.signature),
                                    f"block/{height}")

    async def _publish_forever(self, js: JetStreamContext, subject: str, data: bytes, msg_id: str) -> None:
        """Publish with retries until the stream takes it (a long outage only delays it)."""
        while True:
            try:
                await publish_with_retry(js, subject, data, msg_id, timeout_s=5.0, attempts=10)
                return
            except TRANSIENT_ERRORS as exc:
                log.warning("publishing %s still failing (%s); retrying", msg_id, type(exc).__name__)

    async def _publish_checkpoint(self, js: JetStreamContext, height: int) -> None:
        if height < 0 or height not in self.records:
            return
        head_hash, state_root = self.records[height]
        cp = Checkpoint.signed(self.key, self.id, height, head_hash, state_root)
        msg_id = f"ckpt/{self.id}/{height}/{state_root.hex()[:16]}"
        await self._publish_forever(js, checkpoints_subject(self.id), cp.encode(), msg_id)

    async def _publish_halt_checkpoint(self, js: JetStreamContext) -> None:
        """State, for the others to compare, what this node holds at the height it halted."""
        bad = [a.height for a in self.alarms if a.node == self.id]
        if bad and bad[-1] in self.records:
            await self._publish_checkpoint(js, bad[-1])

    async def _republish_headers(self, js: JetStreamContext) -> None:
        """After a restart, publish the headers of stored blocks the blocks stream lacks."""
        height = self.node.height
        while height >= 0:
            try:
                await retry_transient(functools.partial(js.get_last_msg, BLOCKS_STREAM, blocks_subject(height)),
                                      "blocks stream")
                break
            except nats.js.errors.NotFoundError:
                height -= 1
        for h in range(height + 1, self.node.height + 1):
            await self._publish_header(js, h)
        if self.node.height > height:
            log.info("republished headers %d..%d", height + 1, self.node.height)

    async def _on_header(self, msg: Msg) -> None:
        try:
            header, _raw, signature = decode_block_message(msg.data)
        except WireError as exc:
            log.warning("block message on %s skipped: %s", msg.subject, exc)
            return
        self.board.put(header, signature)

    async def _fetch_headers(self, js: JetStreamContext, sub: Any) -> None:
        """Fetch a wanted header from the stream when the live subscription has not brought it
        (a follower catching up, or a message missed across a reconnect)."""
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._want_header.wait(), timeout=1.0)
                self._want_header.clear()
                height = self.board.wanted
                if height <= self.board.floor or self.board.has(height):
                    continue
                try:
                    raw = await js.get_last_msg(BLOCKS_STREAM, blocks_subject(height))
                except nats.js.errors.NotFoundError:
                    continue
                except TRANSIENT_ERRORS:
                    continue
                await self._on_header_data(raw.data or b"")
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_header_data(self, data: bytes) -> None:
        try:
            header, _raw, signature = decode_block_message(data)
        except WireError:
            return
        self.board.put(header, signature)

    async def _follow_checkpoints(self, js: JetStreamContext) -> None:
        stream = _records(iter_stream(js, CHECKPOINTS_STREAM, 1, follow=True, idle_timeout_s=60.0, heartbeat_s=2.0))
        async with contextlib.aclosing(stream) as records:
            async for _seq, _subject, data, _headers in records:
                try:
                    cp = Checkpoint.decode(data)
                except WireError:
                    continue
                before = len(self.alarms)
                self.check_checkpoint(cp)
                if len(self.alarms) != before:
                    self.write_status()
                else:
                    self._status_dirty = True

    async def _flush_status(self) -> None:
        """Write the status file at most every ``STATUS_EVERY_S`` for changes between blocks."""
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            if self._status_dirty:
                self.write_status()

    async def _auto_seal(self, js: JetStreamContext) -> None:
        """On the sequencer: seal what has waited ``seal_every_s``, dated today (or the ledger's
        business date when that is later)."""
        key = KeyStore(self.config.data_dir / "keys").load(SEQUENCER_ID)
        while True:
            await asyncio.sleep(self.config.seal_every_s / 2)
            waited = self._last_pending_at and time.monotonic() - self._last_pending_at
            if waited and waited >= self.config.seal_every_s:
                now = dt.datetime.now(dt.UTC)
                day = max(now.date(), self._business_date or now.date())
                await publish_seal(js, key, day, f"{day.isoformat()}T{now.strftime('%H:%M:%S.%f')}Z")
                self._last_pending_at = time.monotonic()


# ----------------------------------------------------------------------------------------------
# running one node as a process


def run_node(config: NodeConfig) -> int:
    """Run a node until SIGTERM or SIGINT; returns the exit status (3 when an invariant broke)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {config.node_id} %(levelname)s %(message)s")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            node = LedgerNode(config)
        except ClearhouseError as exc:
            log.error("cannot start: %s", exc)
            return 1
        return await node.run(stop)

    return asyncio.run(main())


def parse_args(argv: list[str]) -> NodeConfig:
    p = argparse.ArgumentParser(prog="python -m clearhouse.network.node", description="Run one ledger node.")
    p.add_argument("--id", required=True, help="participant id of this node")
    p.add_argument("--data", type=Path, required=True, help="data directory (keys/, network/)")
    p.add_argument("--nats", required=True, help="comma-separated NATS server URLs")
    p.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    p.add_argument("--dsn", help="PostgreSQL connection string of this node's database")
    p.add_argument("--sequencer", action="store_true", help="cut and sign blocks (needs the SEQUENCER key)")
    p.add_argument("--sequencer-key", help="the sequencer's public key in hex (default: DATA/network/sequencer.pub)")
    p.add_argument("--snapshot", type=Path, help="start from this snapshot file")
    p.add_argument("--seal-every", type=float, default=0.0, help="sequencer: seal waiting submissions after S s")
    p.add_argument("--tls-ca", type=Path)
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument("--creds", type=Path, help="NATS credentials file")
    p.add_argument("--replicas", type=int, default=REPLICAS, help="stream replicas if this node creates them")
    a = p.parse_args(argv)
    tls = TlsFiles(a.tls_ca, a.tls_cert, a.tls_key) if (a.tls_ca or a.tls_cert) else None
    seq_key = bytes.fromhex(a.sequencer_key) if a.sequencer_key else sequencer_public_key(a.data)
    return NodeConfig(a.id, a.data, [u for u in a.nats.split(",") if u], a.store, seq_key, a.dsn, a.sequencer,
                      a.snapshot, a.seal_every, tls, a.creds, a.replicas)


if __name__ == "__main__":
    sys.exit(run_node(parse_args(sys.argv[1:])))
