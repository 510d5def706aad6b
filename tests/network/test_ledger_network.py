"""The replicated ledger end to end: real NATS JetStream servers, PostgreSQL and node processes on
loopback, driven the way ``clearhouse network`` drives them.

* A day of trades through a 3-server cluster ends with every node at the embedded run's head hash
  and state root, while the log's leader server is killed mid-run and a member node is killed and
  restarted; a resubmitted batch is applied once; a holding is proven against the nodes' signed
  checkpoints.
* A node whose database was altered reports the divergence at the altered block's height, and
  every other node names it at that height; a new node on a trimmed log starts from a signed
  snapshot and follows the log on to the same state root.

Each test runs its own network in a directory under the system temporary directory (PostgreSQL
runs as ``nobody`` when the tests run as root, so never under pytest's ``tmp_path``), stopped and
removed in a finalizer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import shutil
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from tests.conftest import cli

from clearhouse.core.errors import InputError
from clearhouse.cycle.run import CCP, CENTRAL_BANK, CSD, REGULATOR, Keys, run_scenario
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.records import Submission
from clearhouse.ledger.sqlite_store import SqliteStore
from clearhouse.ledger.verify import verify_store
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.network import cluster
from clearhouse.network.node import BlockCutter, publish_frame, publish_seal, publish_submission, sqlite_path
from clearhouse.network.proofs import make_proof, verify_proof
from clearhouse.network.wire import (
    LOG_STREAM,
    Checkpoint,
    Reassembler,
    WireError,
    decode_frame,
    decode_submission,
    encode_frame,
    encode_submission,
    message_id,
    read_snapshot,
    seal_request,
    split_message,
    write_snapshot,
)
from clearhouse.node.node import Node

WAIT_S = 120.0


@pytest.fixture
def network_data() -> Iterator[Path]:
    data = Path(tempfile.mkdtemp(prefix="clearhouse-net-test-"))
    try:
        yield data
    finally:
        cluster.down(data)
        for log in sorted((data / "network" / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")  # shown when the test fails
        shutil.rmtree(data, ignore_errors=True)


def _embedded(network: Path, tmp_path: Path, scenario: Any) -> Node:
    """The embedded run of the same scenario with the network's keys."""
    ref = tmp_path / "embedded"
    shutil.copytree(network / "keys", ref / "keys")
    return run_scenario(scenario, ref, 2)


def _receipt_status(raw: bytes) -> str:
    size = int.from_bytes(raw[:4], "little")
    return str(json.loads(raw[4:4 + size])["status"])


def _kill_nats_server(data: Path, name: str) -> None:
    records = json.loads((data / "network" / "nats" / "nats-cluster.json").read_text())["servers"]
    pid = next(r["pid"] for r in records if r["name"] == name)
    os.kill(pid, signal.SIGKILL)


def _statuses(data: Path, nodes: list[str]) -> dict[str, dict[str, Any]]:
    return {n: cluster.read_status(data, n) or {} for n in nodes}


def _wait_for(predicate: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _assert_at_embedded_head(data: Path, nodes: list[str], last: int, embedded: Node, member: str) -> None:
    """Every node at the embedded run's height, head hash and state root with no alarm, and the
    member's store holding the embedded run's blocks byte for byte, verifying."""
    statuses = cluster.wait_height(data, nodes, last, WAIT_S)
    for node_id, st in statuses.items():
        assert (st["height"], st["head_hash"], st["state_root"]) == (
            last, embedded.head_hash.hex(), embedded.machine.state_root().hex()), node_id
        assert st["alarms"] == [], node_id
    member_store = cluster.open_node_store(data, member)
    try:
        assert all(member_store.block(h) == embedded.store.block(h) for h in range(last + 1))
        assert verify_store(member_store).verified
    finally:
        member_store.close()


def test_a_day_through_the_cluster_equals_the_embedded_run(network_data: Path, tmp_path: Path) -> None:
    data = network_data
    info = cluster.up(data, members=1)
    nodes = list(info["nodes"])
    assert nodes == [CCP, CSD, CENTRAL_BANK, REGULATOR, "M000"]
    scenario = generate_market(MarketSpec(members=4, securities=6, trades=3000, days=2))
    steps = cluster.plan_steps(data, scenario, 2)
    embedded = _embedded(data, tmp_path, scenario)
    last = len(steps) - 1
    killed: list[str] = []

    async def publish_all(nc: Any, js: JetStreamContext) -> None:
        publisher = cluster.PlanPublisher(js, Keys(data)["SEQUENCER"], {})
        for height, step in enumerate(steps):
            if height == 3:
                leader = (await js.stream_info(LOG_STREAM)).cluster.leader  # type: ignore[union-attr]
                await asyncio.to_thread(_kill_nats_server, data, leader)
                killed.append(leader)
            if height == 4:
                await asyncio.to_thread(cluster.stop_node, data, "M000", kill=True)
            await publisher.publish(step)

    cluster.with_network(data, publish_all)
    assert killed
    cluster.start_node(data, "M000")
    _assert_at_embedded_head(data, nodes, last, embedded, "M000")

    # a resubmitted batch: within the de-duplication window the stream stores it once; sent
    # again under another message id (as after the window) the ledger answers `exists`
    batch = next(s for s in steps if s.ids[0].startswith("trades-")).build()[0]

    async def resubmit(nc: Any, js: JetStreamContext) -> bool:
        duplicate = await publish_submission(js, batch)
        await publish_frame(js, encode_submission(batch), f"resent/{batch.submission_id}")
        day = dt.date.fromisoformat(embedded.store.block(last).header.business_date)
        await publish_seal(js, Keys(data)["SEQUENCER"], day, f"{day.isoformat()}T18:00:00Z")
        return duplicate

    assert cluster.with_network(data, resubmit) is True
    statuses = cluster.wait_height(data, nodes, last + 1, WAIT_S)
    assert {st["state_root"] for st in statuses.values()} == {embedded.machine.state_root().hex()}
    store = cluster.open_node_store(data, CSD)
    try:
        assert [_receipt_status(r) for r in store.receipts(last + 1)] == ["exists"]
        assert [s.submission_id for s in store.block(last + 1).submissions] == [batch.submission_id]
    finally:
        store.close()

    # a holding proven against the state root every node signed, checked without a database
    _wait_for(lambda: all(
        p.get("agrees_through", -1) >= last + 1
        for p in (cluster.read_status(data, CCP) or {}).get("peers", {}).values()
    ) and len((cluster.read_status(data, CCP) or {}).get("peers", {})) == len(nodes) - 1, "checkpoints")
    security = next(s.id for s in embedded.machine.securities
                    if embedded.machine.sec_bal[embedded.machine.pindex["M000"], embedded.machine.sindex[s.id]])
    proof_file = tmp_path / "proof.json"
    code, _ = cli("proof", "M000", security, "--data", str(data), "--out", str(proof_file))
    assert code == 0
    code, text = cli("verify-proof", str(proof_file), "--trust-keys", str(data / "keys"), "--min-signers", "5")
    assert code == 0, text
    doc = json.loads(proof_file.read_text())
    doc["amount"] += 1
    doc["leaf"] = json.dumps(["securities", "M000", security, doc["amount"]], separators=(",", ":"))
    proof_file.write_text(json.dumps(doc))
    code, text = cli("verify-proof", str(proof_file), "--json")
    assert code == 1 and "Merkle path" in json.loads(text)["reason"]

    code, text = cli("network", "status", "--data", str(data), "--json")
    body = json.loads(text)
    assert code == 0 and body["agree_at_top"] and body["alarms"] == 0
    assert {r["node"]: r["height"] for r in body["nodes"]} == dict.fromkeys(nodes, last + 1)


def test_an_altered_store_is_named_at_its_height_and_a_snapshot_starts_a_new_node(
    network_data: Path, tmp_path: Path
) -> None:
    data = network_data
    followers = [CSD, REGULATOR, "M000"]
    cluster.up(data, store="sqlite", nodes=[CCP, *followers])
    scenario = generate_market(MarketSpec(members=3, securities=4, trades=600, days=1, seed=5))
    steps = cluster.plan_steps(data, scenario, 1)
    last = len(steps) - 1
    cluster.with_network(data, lambda nc, js: cluster.publish_plan(js, data, steps))
    cluster.wait_height(data, [CCP, *followers], last, WAIT_S)

    # a snapshot of the sequencer's store, then the log trimmed below where it continues
    snap = tmp_path / "ledger.snapshot"
    trailer = cluster.snapshot(data, CCP, snap)
    assert trailer["height"] == last

    async def trim(nc: Any, js: JetStreamContext) -> None:
        await js.purge_stream(LOG_STREAM, seq=trailer["resume"]["from"])

    cluster.with_network(data, trim)

    # alter one trade batch in the member's database, behind its back
    altered = next(h for h, s in enumerate(steps) if s.ids[0].startswith("trades-"))
    cluster.stop_node(data, "M000")
    with sqlite3.connect(sqlite_path(data, "M000")) as db:
        (payload,) = db.execute("SELECT payload FROM submissions WHERE height = ?", (altered,)).fetchone()
        edited = payload[:-1] + bytes([payload[-1] ^ 1])
        db.execute("UPDATE submissions SET payload = ? WHERE height = ?", (edited, altered))
    cluster.start_node(data, "M000")
    _wait_for(lambda: (cluster.read_status(data, "M000") or {}).get("state") == "halted", "M000 to halt")
    own = (cluster.read_status(data, "M000") or {})["alarms"]
    assert [(a["node"], a["height"]) for a in own] == [("M000", altered)], own
    _wait_for(lambda: all(any(a["node"] == "M000" for a in st.get("alarms", []))
                          for st in _statuses(data, [CCP, CSD, REGULATOR]).values()), "the others' alarms")
    for node_id, st in _statuses(data, [CCP, CSD, REGULATOR]).items():
        assert [(a["node"], a["height"]) for a in st["alarms"]] == [("M000", altered)], node_id
    code, _ = cli("network", "status", "--data", str(data))
    assert code == 1

    # a new node cannot rebuild from the trimmed log alone, and does from the snapshot
    cluster.start_node(data, CENTRAL_BANK)
    _wait_for(lambda: (cluster.read_status(data, CENTRAL_BANK) or {}).get("state") == "halted", "a halt")
    assert "snapshot" in (cluster.read_status(data, CENTRAL_BANK) or {})["halted"]
    cluster.stop_node(data, CENTRAL_BANK)
    cluster.start_node(data, CENTRAL_BANK, snapshot=snap)
    next_day = steps[-1].day + dt.timedelta(days=1 if steps[-1].day.weekday() < 4 else 3)
    cluster.with_network(data, lambda nc, js: cluster.close_day(js, data, next_day))
    healthy = [CCP, CSD, REGULATOR, CENTRAL_BANK]
    statuses = cluster.wait_height(data, healthy, last + 1, WAIT_S)
    assert len({(st["height"], st["head_hash"], st["state_root"]) for st in statuses.values()}) == 1, statuses
    assert [(a["node"], a["height"]) for a in statuses[CENTRAL_BANK]["alarms"]] == [("M000", altered)]
    store = SqliteStore(sqlite_path(data, CENTRAL_BANK))
    try:
        assert store.head_height() == last + 1
        assert verify_store(store).verified
    finally:
        store.close()


# ----------------------------------------------------------------------------------------------
# the wire form, block boundaries, snapshots and proofs, without servers


def _sub(key: KeyPair, submitter: str, sid: str, payload: bytes) -> Submission:
    digest = Submission.digest_for(sid, "trades", submitter, payload)
    return Submission(sid, "trades", submitter, payload, key.sign(digest))


Cut = tuple[list[str], dict[str, int]]


def _cut_everything(cutter: BlockCutter, messages: list[bytes], start: int = 1) -> list[Cut]:
    """Blocks (submission ids) and the resume point recorded with each, as a node makes them."""
    blocks = []
    for seq in range(start, len(messages) + 1):
        seal = cutter.feed(seq, messages[seq - 1])
        if seal is not None:
            blocks.append(([s.submission_id for _, s in cutter.pending], cutter.resume_after(seq)))
            cutter.pending.clear()
            cutter.consumed = seq
    return blocks


def test_parts_and_seals_interleaved_cut_the_same_blocks_after_a_restart_anywhere() -> None:
    rng = random.Random(7)
    sequencer, member, stranger = KeyPair(b"s" * 32), KeyPair(b"m" * 32), KeyPair(b"x" * 32)
    queues: list[list[bytes]] = []
    for i in range(12):
        sub = _sub(member, "M000", f"b{i}", rng.randbytes(rng.choice([10, 150, 400])))
        queues.append([data for _, data in split_message(encode_submission(sub), message_id(sub), part_bytes=64)])
    messages: list[bytes] = []
    day = dt.date(2026, 3, 2)
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        messages.append(queue.pop(0))
        if rng.random() < 0.15:
            messages.append(encode_submission(seal_request(sequencer, day, f"2026-03-02T07:00:{len(messages):02d}Z")))
    messages.append(encode_submission(seal_request(stranger, day, "2026-03-02T08:00:00Z")))  # not the sequencer's
    messages.append(b"\x00\x00\x00\x05{bad}")
    messages.append(encode_submission(seal_request(sequencer, day, "2026-03-02T09:00:00Z")))

    cutter = BlockCutter(sequencer.public_key)
    blocks = _cut_everything(cutter, messages)
    assert sorted(i for ids, _ in blocks for i in ids) == sorted(f"b{i}" for i in range(12))
    assert cutter.skipped == 2
    for k, (_, resume) in enumerate(blocks):
        restarted = BlockCutter(sequencer.public_key, consumed=resume["consumed"])
        assert [ids for ids, _ in _cut_everything(restarted, messages, resume["from"])] == [
            ids for ids, _ in blocks[k + 1:]]


def test_a_part_that_disagrees_or_a_whole_that_misses_its_digest_is_dropped() -> None:
    key = KeyPair(b"m" * 32)
    sub = _sub(key, "M000", "big", bytes(300))
    parts = [data for _, data in split_message(encode_submission(sub), message_id(sub), part_bytes=100)]
    n = len(parts)
    assert n > 2
    header, body = decode_frame(parts[1])
    forged = encode_frame({**header, "parts": n + 1}, body)
    r = Reassembler()
    assert [r.feed(i, *decode_frame(p)) for i, p in enumerate([parts[0], forged, parts[0]], 1)] == [None] * 3
    assert r.first_open_seq() == 1
    assert [r.feed(4 + i, *decode_frame(p)) for i, p in enumerate(parts[1:-1])] == [None] * (n - 2)
    whole = r.feed(9, *decode_frame(parts[-1]))
    assert whole is not None and decode_submission(whole) == sub
    assert r.first_open_seq() is None
    bad = Reassembler()
    tampered = [decode_frame(p) for p in parts]
    tampered[2] = (tampered[2][0], bytes([tampered[2][1][0] ^ 1]) + tampered[2][1][1:])
    assert [bad.feed(i, h, b) for i, (h, b) in enumerate(tampered)] == [None] * n


def test_snapshot_round_trip_and_tampering(tmp_path: Path) -> None:
    spec = MarketSpec(members=3, securities=3, trades=300, days=1, seed=2)
    node = run_scenario(generate_market(spec), tmp_path / "ledger", 1)
    key = Keys(tmp_path / "ledger")["SEQUENCER"]
    path = tmp_path / "ledger.snapshot"
    trailer = write_snapshot(path, node.store.blocks(), {"consumed": 9, "from": 10}, key)
    assert trailer["height"] == node.height and trailer["head_hash"] == node.head_hash.hex()
    got, blocks = read_snapshot(path, key.public_key)
    assert got["resume"] == {"consumed": 9, "from": 10}
    assert list(blocks) == list(node.store.blocks())
    with pytest.raises(WireError, match="signature"):
        read_snapshot(path, KeyPair(b"x" * 32).public_key)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(WireError, match="digest"):
        read_snapshot(path, key.public_key)


def test_a_proof_holds_until_any_part_of_it_is_changed(tmp_path: Path) -> None:
    spec = MarketSpec(members=3, securities=3, trades=300, days=1, seed=2)
    node = run_scenario(generate_market(spec), tmp_path / "ledger", 1)
    keys = Keys(tmp_path / "ledger")
    m = node.machine
    holder, security = next((p.id, s.id) for p in m.participants for s in m.securities
                            if p.id.startswith("M") and m.sec_bal[m.pindex[p.id], m.sindex[s.id]])
    root = m.state_root()
    signers = [Checkpoint.signed(keys[n], n, node.height, node.head_hash, root) for n in ("CSD", "REGULATOR")]
    stale = Checkpoint.signed(keys["CCP"], "CCP", node.height - 1, node.head_hash, root)
    doc = make_proof(node, holder, security, [*signers, stale])
    assert [c["node"] for c in doc["checkpoints"]] == ["CSD", "REGULATOR"]
    trusted = {n: keys[n].public_key for n in ("SEQUENCER", "CSD", "REGULATOR")}
    assert verify_proof(doc, trusted, min_signers=2)[0]
    assert verify_proof(doc, trusted, min_signers=3) == (False, "2 node(s) signed this state root; 3 required")
    cash = make_proof(node, holder, m.securities[0].currency)
    assert cash["table"] == "cash" and verify_proof(cash, min_signers=0)[0]

    def broken(change: Callable[[dict[str, Any]], None]) -> str:
        copy = json.loads(json.dumps(doc))
        change(copy)
        ok, reason = verify_proof(copy, trusted)
        assert not ok
        return reason

    assert "do not hash" in broken(lambda d: d["components"].update(positions="00" * 32))
    assert "head hash" in broken(lambda d: d.update(head_hash="00" * 32))
    assert "signature of CSD" in broken(lambda d: d["checkpoints"][0].update(signature="00" * 64))
    assert "trusted key" in broken(lambda d: d["checkpoints"][0].update(public_key=keys["CCP"].public_hex))
    assert "malformed" in broken(lambda d: d.pop("merkle"))
    with pytest.raises(InputError, match="holds no"):
        make_proof(node, "CCP", security)


def test_a_member_node_killed_at_random_moments_again_and_again_catches_up(network_data: Path,
                                                                            tmp_path: Path) -> None:
    """SIGKILL a member's node at seeded random moments while blocks keep coming, restart it each
    time, and check that it ends at the embedded run's head, its store byte-identical and verified."""
    data = network_data
    info = cluster.up(data, members=1, store="sqlite", nodes=[CCP, CSD, "M000"])
    nodes = list(info["nodes"])
    scenario = generate_market(MarketSpec(members=4, securities=6, trades=4000, days=4, seed=5))
    steps = cluster.plan_steps(data, scenario, 2)
    embedded = _embedded(data, tmp_path, scenario)
    last = len(steps) - 1
    rng = random.Random(20261125)
    kills = 0

    async def publish_with_kills(nc: Any, js: JetStreamContext) -> None:
        nonlocal kills
        publisher = cluster.PlanPublisher(js, Keys(data)["SEQUENCER"], {})
        for step in steps:
            await publisher.publish(step)
            if rng.random() < 0.6:
                await asyncio.sleep(rng.uniform(0.0, 0.4))  # somewhere in the middle of applying
                await asyncio.to_thread(cluster.stop_node, data, "M000", kill=True)
                await asyncio.to_thread(cluster.start_node, data, "M000")
                kills += 1

    cluster.with_network(data, publish_with_kills)
    assert kills >= 3
    _assert_at_embedded_head(data, nodes, last, embedded, "M000")
