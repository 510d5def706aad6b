"""A whole network on one machine, and the client side of any network.

``up`` creates the data directory's keys, starts a NATS JetStream cluster and one PostgreSQL
server (a database per node) on loopback, creates the streams, and starts one node process per
participant (CCP as the sequencer, CSD, central bank, regulator, each member), recording
everything in ``DATA/network/cluster.json`` and a PID file per node; ``down`` stops what ``up``
started; ``status`` reads the nodes' status files. ``up`` on a data directory that has run before
starts the same network again: the streams and every node's store are kept, and each node
catches up from where it stopped.

The client side publishes into the log: the steps of a scenario's plan (each followed by a seal
request with the plan's business date and timestamp, so the network makes the same blocks as the
embedded run), a trade file, a day's cut-off and settlement, a member's admission, and writes
signed snapshots. Imports clearhouse.core, ledger, clearing, cycle, node, state and network;
never an interface.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats.js.errors
import polars as pl
import psycopg
import psycopg.sql
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from psycopg.conninfo import make_conninfo

from clearhouse.clearing.batch import encode_trades
from clearhouse.core.calendar import BusinessCalendar
from clearhouse.core.errors import InputError, StorageError
from clearhouse.cycle.run import (
    CCP,
    CENTRAL_BANK,
    CSD,
    REGULATOR,
    SEQUENCER,
    SYSTEM_ROLES,
    TRADES_PER_SUBMISSION,
    Keys,
    Step,
    block_timestamp,
    plan,
    schedule_trades,
    sign,
)
from clearhouse.cycle.scenario import Scenario, read_trades
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.records import BlockHeader, submissions_root
from clearhouse.ledger.store import LedgerStore
from clearhouse.network.jetstream import iter_stream
from clearhouse.network.node import (
    NodeConfig,
    TlsFiles,
    connect_nats,
    ensure_streams,
    network_dir,
    open_store,
    publish_seal,
    publish_submission,
    retry_transient,
    sequencer_pub_path,
    sequencer_public_key,
    status_path,
    write_json_atomic,
)
from clearhouse.network.servers import LOOPBACK, POSTGRES_SUPERUSER, NatsCluster, PostgresServer, ServerError
from clearhouse.network.wire import (
    BLOCKS_STREAM,
    CHECKPOINTS_STREAM,
    REPLICAS,
    Checkpoint,
    WireError,
    blocks_subject,
    decode_block_message,
    write_snapshot,
)
from clearhouse.state.kinds import Kind, encode_json

CLUSTER_FILE = "cluster.json"
SEQUENCER_NODE = CCP
SYSTEM_NODES = (CCP, CSD, CENTRAL_BANK, REGULATOR)
NODE_MODULE = "clearhouse.network.node"
READY_STATES = ("following", "halted", "failed")
STOP_TIMEOUT_S = 15.0

# processes this Python process started, so stopped ones are reaped rather than left as zombies
_children: dict[int, subprocess.Popen[bytes]] = {}


def member_ids(count: int) -> list[str]:
    """The ids ``up --members N`` gives (the synthetic market's naming)."""
    return [f"M{i:03d}" for i in range(count)]


def cluster_path(data_dir: Path) -> Path:
    return network_dir(data_dir) / CLUSTER_FILE


def load_cluster(data_dir: Path) -> dict[str, Any]:
    try:
        body: dict[str, Any] = json.loads(cluster_path(data_dir).read_text())
    except FileNotFoundError as exc:
        raise InputError(f"no network recorded in {network_dir(data_dir)}; run `clearhouse network up` first") from exc
    return body


def _database_name(node_id: str) -> str:
    return "node_" + "".join(c if c.isalnum() else "_" for c in node_id.lower())


def _dsn(info: dict[str, Any], database: str) -> str:
    pg = info["postgres"]
    return make_conninfo(host=pg.get("host", LOOPBACK), port=pg["port"], user=pg.get("user", POSTGRES_SUPERUSER),
                         dbname=database, connect_timeout=5)


def _create_database(info: dict[str, Any], name: str) -> None:
    try:
        with psycopg.connect(_dsn(info, "postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    except psycopg.Error as exc:
        raise StorageError(f"cannot create database {name}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# processes


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, IndexError):
        return False


def _is_our_node(pid: int, node_id: str, data_dir: Path) -> bool:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    text = [a.decode(errors="replace") for a in args]
    return NODE_MODULE in text and node_id in text and str(data_dir.resolve()) in text


def _exit_note(data_dir: Path, node_ids: Sequence[str]) -> str:
    """How the given nodes' processes ended, where this process started them."""
    notes = []
    for node_id in node_ids:
        try:
            child = _children.get(int(_pid_path(data_dir, node_id).read_text().strip()))
        except (FileNotFoundError, ValueError):
            child = None
        if child is not None and child.poll() is not None:
            notes.append(f"{node_id} exit status {child.returncode}")
    return f" ({', '.join(notes)})" if notes else ""


def _pid_path(data_dir: Path, node_id: str) -> Path:
    return network_dir(data_dir) / f"{node_id}.pid"


def node_pid(data_dir: Path, node_id: str) -> int | None:
    """PID of the node's process when it is running."""
    try:
        pid = int(_pid_path(data_dir, node_id).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid in _children:
        # started here: known to be ours (its command line reads empty for a moment after exec)
        return pid if _alive(pid) else None
    return pid if _alive(pid) and _is_our_node(pid, node_id, data_dir) else None


def node_command(data_dir: Path, info: dict[str, Any], node_id: str, snapshot: Path | None = None) -> list[str]:
    data = data_dir.resolve()
    args = [sys.executable, "-m", NODE_MODULE, "--id", node_id, "--data", str(data),
            "--nats", ",".join(info["nats"]), "--store", info["store"], "--replicas", str(info["replicas"])]
    if info["store"] == "postgres":
        args += ["--dsn", _dsn(info, _database_name(node_id))]
    if node_id == info["sequencer_node"]:
        args.append("--sequencer")
        if info.get("seal_every_s"):
            args += ["--seal-every", str(info["seal_every_s"])]
    if snapshot is not None:
        args += ["--snapshot", str(snapshot.resolve())]
    return args


def start_node(data_dir: Path, node_id: str, snapshot: Path | None = None) -> int:
    """Start one node process (its database created if needed); returns its PID."""
    info = load_cluster(data_dir)
    if node_pid(data_dir, node_id) is not None:
        raise InputError(f"node {node_id} is already running")
    if info["store"] == "postgres":
        _create_database(info, _database_name(node_id))
    logs = network_dir(data_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    status_path(data_dir, node_id).unlink(missing_ok=True)
    with open(logs / f"{node_id}.log", "ab") as out:
        proc = subprocess.Popen(
            node_command(data_dir, info, node_id, snapshot), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=network_dir(data_dir),
        )
    _children[proc.pid] = proc
    _pid_path(data_dir, node_id).write_text(f"{proc.pid}\n")
    nodes = info.setdefault("nodes", {})
    if node_id not in nodes:
        nodes[node_id] = {"log": str(logs / f"{node_id}.log"), "status": str(status_path(data_dir, node_id))}
        if info["store"] == "postgres":
            nodes[node_id]["database"] = _database_name(node_id)
        write_json_atomic(cluster_path(data_dir), info)
    return proc.pid


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            _children.pop(pid, None)
            return True
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def stop_node(data_dir: Path, node_id: str, *, kill: bool = False, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop a node (SIGTERM, SIGKILL after ``timeout_s``; ``kill``: SIGKILL at once, a crash).
    True when it was running."""
    pid = node_pid(data_dir, node_id)
    _pid_path(data_dir, node_id).unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if not _wait_gone(pid, timeout_s):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)
    return True


# ----------------------------------------------------------------------------------------------
# up, down, status


def make_keys(data_dir: Path, members: Sequence[str]) -> Keys:
    """Key pairs of the system participants, the sequencer and the members; publishes the
    sequencer's public key to ``DATA/network/sequencer.pub``."""
    keys = Keys(data_dir)
    for pid in (SEQUENCER, *SYSTEM_ROLES, *members):
        keys[pid]
    pub = sequencer_pub_path(data_dir)
    pub.parent.mkdir(parents=True, exist_ok=True)
    pub.write_text(keys[SEQUENCER].public_hex + "\n")
    return keys


def up(
    data_dir: Path,
    members: int = 4,
    *,
    store: str = "postgres",
    nats_servers: int = 3,
    nodes: Sequence[str] | None = None,
    seal_every_s: float = 0.0,
    ready_timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Start the servers and the nodes; returns the cluster record. Stops everything on failure.

    ``seal_every_s`` > 0 has the sequencer seal submissions that waited that long (for clients
    that hold no sequencer key); 0 leaves every seal to the clients.
    """
    if store not in ("postgres", "sqlite"):
        raise InputError("--store must be postgres or sqlite")
    net = network_dir(data_dir)
    if cluster_path(data_dir).exists() and load_cluster(data_dir).get("running"):
        raise InputError(f"a network is already up in {data_dir} (run `clearhouse network down` first)")
    node_ids = list(nodes) if nodes is not None else [*SYSTEM_NODES, *member_ids(members)]
    make_keys(data_dir, [n for n in node_ids if n not in SYSTEM_ROLES])
    net.mkdir(parents=True, exist_ok=True)
    nats_cluster = NatsCluster(net / "nats", nats_servers)
    pg = PostgresServer(net / "pg") if store == "postgres" else None
    info: dict[str, Any] = {
        "running": True, "data": str(data_dir.resolve()), "store": store,
        "replicas": min(REPLICAS, nats_servers), "sequencer_node": SEQUENCER_NODE, "nodes": {},
        "seal_every_s": seal_every_s,
    }
    try:
        nats_cluster.start()
        info["nats"] = nats_cluster.urls
        if pg is not None:
            pg.start()
            info["postgres"] = {"host": LOOPBACK, "port": pg.port, "user": POSTGRES_SUPERUSER,
                                "base": str(pg.base_dir)}
        write_json_atomic(cluster_path(data_dir), info)
        asyncio.run(_with_js(info, lambda nc, js: ensure_streams(js, info["replicas"])))
        for node_id in node_ids:
            start_node(data_dir, node_id)
        wait_ready(data_dir, node_ids, ready_timeout_s)
    except BaseException:
        down(data_dir)
        raise
    return load_cluster(data_dir)


def down(data_dir: Path) -> dict[str, int]:
    """Stop every node, the NATS cluster and PostgreSQL recorded under the data directory."""
    net = network_dir(data_dir)
    stopped_nodes = 0
    for pid_file in sorted(net.glob("*.pid")):
        stopped_nodes += stop_node(data_dir, pid_file.stem)
    stopped_nats = NatsCluster.stop_from_dir(net / "nats")
    stopped_pg = PostgresServer.stop_from_dir(net / "pg")
    if cluster_path(data_dir).exists():
        info = load_cluster(data_dir)
        info["running"] = False
        write_json_atomic(cluster_path(data_dir), info)
    return {"nodes": stopped_nodes, "nats_servers": stopped_nats, "postgres": int(stopped_pg)}


def read_status(data_dir: Path, node_id: str) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = json.loads(status_path(data_dir, node_id).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return body


def status(data_dir: Path) -> dict[str, Any]:
    """Every node's height, head hash, state root, state and alarms, and whether they agree."""
    info = load_cluster(data_dir)
    rows = []
    for node_id in info.get("nodes", {}):
        st = read_status(data_dir, node_id) or {}
        rows.append({
            "node": node_id, "running": node_pid(data_dir, node_id) is not None,
            "role": st.get("role", ""), "state": st.get("state", "unknown"), "height": st.get("height", -1),
            "head_hash": st.get("head_hash", ""), "state_root": st.get("state_root", ""),
            "halted": st.get("halted"), "alarms": st.get("alarms", []), "updated": st.get("updated", ""),
        })
    top = max((r["height"] for r in rows), default=-1)
    tops = {(r["head_hash"], r["state_root"]) for r in rows if r["height"] == top}
    return {"nats": info.get("nats", []), "store": info.get("store"), "running": info.get("running", False),
            "nodes": rows, "agree_at_top": len(tops) == 1,
            "alarms": sum(len(r["alarms"]) for r in rows)}


def wait_ready(data_dir: Path, node_ids: Sequence[str], timeout_s: float) -> None:
    """Wait until every node has opened its store and follows the log (or has halted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = {n: (read_status(data_dir, n) or {}).get("state") for n in node_ids}
        if all(s in READY_STATES for s in states.values()):
            return
        dead = [n for n in node_ids if node_pid(data_dir, n) is None and states[n] not in READY_STATES]
        if dead:
            raise ServerError(f"node(s) {', '.join(dead)} exited while starting{_exit_note(data_dir, dead)}; "
                              f"see {network_dir(data_dir) / 'logs'}")
        if time.monotonic() >= deadline:
            raise ServerError(f"nodes not ready within {timeout_s} s: {states}")
        time.sleep(0.1)


def wait_height(data_dir: Path, node_ids: Sequence[str], height: int, timeout_s: float,
                progress: Callable[[dict[str, int]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Wait until every node is at ``height`` or beyond (or has halted); returns their statuses."""
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = {n: read_status(data_dir, n) or {} for n in node_ids}
        heights = {n: int(s.get("height", -1)) for n, s in statuses.items()}
        if progress:
            progress(heights)
        if all(heights[n] >= height or statuses[n].get("state") in ("halted", "failed") for n in node_ids):
            return statuses
        gone = [n for n in node_ids if node_pid(data_dir, n) is None]
        if gone:
            raise ServerError(f"node(s) {', '.join(gone)} not running{_exit_note(data_dir, gone)}; "
                              f"see {network_dir(data_dir) / 'logs'}")
        if time.monotonic() >= deadline:
            raise ServerError(f"nodes not at height {height} within {timeout_s} s: {heights}")
        time.sleep(0.05)


# ----------------------------------------------------------------------------------------------
# the client side


async def _with_js(info: dict[str, Any], body: Callable[[NATS, JetStreamContext], Awaitable[Any]]) -> Any:
    """Connect as a client of the network ``info`` describes: its ``nats`` URLs, and optionally
    ``tls`` (``ca``, ``cert``, ``key`` file paths) and ``creds`` (a NATS credentials file)."""
    tls = info.get("tls")
    files = TlsFiles(*(Path(tls[k]) if tls.get(k) else None for k in ("ca", "cert", "key"))) if tls else None
    creds = Path(info["creds"]) if info.get("creds") else None
    nc = await connect_nats(info["nats"], "clearhouse-client", files, creds)
    try:
        return await body(nc, nc.jetstream(timeout=5))
    finally:
        await nc.drain()


def with_network(data_dir: Path, body: Callable[[NATS, JetStreamContext], Awaitable[Any]]) -> Any:
    """Run ``body`` against the network recorded under the data directory."""
    return asyncio.run(_with_js(load_cluster(data_dir), body))


async def network_head(js: JetStreamContext) -> BlockHeader | None:
    """The last header the sequencer published, None before genesis."""
    try:
        info = await retry_transient(lambda: js.stream_info(BLOCKS_STREAM), "blocks stream")
    except nats.js.errors.NotFoundError:
        return None
    if info.state.messages == 0:
        return None
    raw = await retry_transient(lambda: js.get_msg(BLOCKS_STREAM, info.state.last_seq), "blocks stream")
    return decode_block_message(raw.data or b"")[0]


@dataclass(slots=True)
class PlanPublisher:
    """Publishes a plan's steps: each step's submissions, then a seal request for its block."""

    js: JetStreamContext
    sequencer: KeyPair
    per_day: dict[dt.date, int]

    async def publish(self, step: Step) -> None:
        for sub in step.build():
            await publish_submission(self.js, sub)
        self.per_day[step.day] = self.per_day.get(step.day, 0) + 1
        await publish_seal(self.js, self.sequencer, step.day, block_timestamp(step.day, self.per_day[step.day]))


def plan_steps(data_dir: Path, scenario: Scenario, cycle_days: int) -> list[Step]:
    keys = Keys(data_dir)
    for pid in scenario.participants["participant_id"].to_list():
        keys[str(pid).strip()]
    return list(plan(scenario, keys, cycle_days))


async def publish_plan(js: JetStreamContext, data_dir: Path, steps: list[Step],
                       progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Publish every step the network does not hold yet; returns (first height published,
    the height the last step makes)."""
    head = await network_head(js)
    done = -1 if head is None else head.height
    if done >= len(steps):
        raise InputError("the network holds a longer ledger than this scenario makes")
    if done >= 0 and submissions_root(steps[0].build()) != (await _header(js, 0)).merkle_root:
        raise InputError("the network holds another ledger (its genesis differs from this scenario's)")
    publisher = PlanPublisher(js, Keys(data_dir)[SEQUENCER], {})
    for height, step in enumerate(steps):
        if height <= done:
            publisher.per_day[step.day] = publisher.per_day.get(step.day, 0) + 1
            continue
        await publisher.publish(step)
        if progress:
            progress(height + 1, len(steps))
    return done + 1, len(steps) - 1


async def _header(js: JetStreamContext, height: int) -> BlockHeader:
    raw = await js.get_last_msg(BLOCKS_STREAM, blocks_subject(height))
    return decode_block_message(raw.data or b"")[0]


def _timestamp(day: dt.date) -> str:
    return f"{day.isoformat()}T{dt.datetime.now(dt.UTC).strftime('%H:%M:%S.%f')}Z"


async def _seal_date(js: JetStreamContext, given: dt.date | None, at_least: dt.date | None = None) -> dt.date:
    """``given``, else the later of the network's business date and ``at_least`` (today's date
    on an empty network): business dates never go back on their own."""
    if given is not None:
        return given
    head = await network_head(js)
    current = dt.date.fromisoformat(head.business_date) if head else None
    return max((d for d in (current, at_least) if d is not None), default=dt.datetime.now(dt.UTC).date())


async def submit_trades(js: JetStreamContext, data_dir: Path, path: Path, submitter: str,
                        business_date: dt.date | None = None, seal: bool = True, cycle_days: int = 2,
                        holidays: Sequence[dt.date] = ()) -> dict[str, Any]:
    """Publish a trade file signed by ``submitter`` (batches of 50,000), then a seal request when
    this installation holds the sequencer key. A trade without a settlement date settles
    ``cycle_days`` business days after its trade date (weekends and ``holidays`` skipped). Ids
    derive from the file's bytes, so the same file sent again is stored once (answered
    ``exists`` after the de-duplication window), never applied twice."""
    keys = Keys(data_dir)
    if not keys.store.has(submitter):
        raise InputError(f"no key of {submitter} in {data_dir / 'keys'}")
    trades = read_trades(path)
    if trades.height == 0:
        raise InputError(f"{path} holds no trades")
    trades = schedule_trades(trades, BusinessCalendar.of(holidays), cycle_days).drop("send_day")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    ids = []
    for k, start in enumerate(range(0, trades.height, TRADES_PER_SUBMISSION)):
        sid = f"file-{digest}-{k}"
        chunk = trades.slice(start, TRADES_PER_SUBMISSION)
        await publish_submission(js, sign(keys[submitter], submitter, sid, Kind.trades, encode_trades(chunk)))
        ids.append(sid)
    body: dict[str, Any] = {"submitter": submitter, "trades": trades.height, "submissions": ids, "sealed": False}
    if seal and keys.store.has(SEQUENCER):
        latest = _latest_date(trades["trade_date"].cast(pl.String).drop_nulls().to_list())
        day = await _seal_date(js, business_date, latest)
        await publish_seal(js, keys[SEQUENCER], day, _timestamp(day))
        body.update(sealed=True, business_date=day.isoformat())
    return body


def _latest_date(values: list[str]) -> dt.date | None:
    days = []
    for value in values:
        try:
            days.append(dt.date.fromisoformat(value.strip()))
        except ValueError:
            continue
    return max(days, default=None)


async def close_day(js: JetStreamContext, data_dir: Path, day: dt.date) -> None:
    """The CCP's cut-off (novation and netting) and settlement run for ``day``, and its seal."""
    keys = Keys(data_dir)
    iso = day.isoformat()
    for sid, kind, body in ((f"cutoff-{iso}", Kind.cutoff, {"business_date": iso}),
                            (f"settle-{iso}", Kind.settle, {"settlement_date": iso})):
        await publish_submission(js, sign(keys[CCP], CCP, sid, kind, encode_json(body)))
    await publish_seal(js, keys[SEQUENCER], day, _timestamp(day))


async def admit_member(js: JetStreamContext, data_dir: Path, member: str, name: str,
                       day: dt.date | None = None) -> dt.date:
    """The CCP admits ``member`` (a key pair is made for it here), sealed into the next block."""
    keys = Keys(data_dir)
    item = {"id": member, "name": name, "role": "member", "public_key": keys[member].public_hex}
    admit = sign(keys[CCP], CCP, f"admit-{member}", Kind.admit, encode_json({"participants": [item]}))
    await publish_submission(js, admit)
    when = await _seal_date(js, day)
    await publish_seal(js, keys[SEQUENCER], when, _timestamp(when))
    return when


def add_member(data_dir: Path, member: str, name: str | None = None, day: dt.date | None = None,
               timeout_s: float = 120.0) -> dict[str, Any]:
    """Admit a member on the running network and start its node, which catches up from the log."""
    if member in SYSTEM_ROLES or member == SEQUENCER:
        raise InputError(f"{member} is a system participant")
    when = with_network(data_dir, lambda nc, js: admit_member(js, data_dir, member, name or member, day))
    pid = start_node(data_dir, member)
    wait_ready(data_dir, [member], timeout_s)
    return {"member": member, "business_date": when.isoformat(), "pid": pid}


def open_node_store(data_dir: Path, node_id: str) -> LedgerStore:
    """A node's store, opened beside the running node (reads only)."""
    info = load_cluster(data_dir)
    dsn = _dsn(info, _database_name(node_id)) if info["store"] == "postgres" else None
    config = NodeConfig(node_id, data_dir, info["nats"], info["store"], sequencer_public_key(data_dir), dsn)
    return open_store(config)


def snapshot(data_dir: Path, node_id: str, out: Path, height: int | None = None) -> dict[str, Any]:
    """Every block of a node's store up to ``height`` (default its head) in a file signed by the
    sequencer key, with the log position a node importing it continues from."""
    store = open_node_store(data_dir, node_id)
    try:
        head = store.head_height() if height is None else height
        if head < 0 or head > store.head_height():
            raise InputError(f"node {node_id} holds no block {head}")
        raw = store.get_meta(f"resume/{head}")
        if raw is None:
            raise InputError(f"node {node_id} has no log position recorded for block {head}")
        return write_snapshot(out, (store.block(h) for h in range(head + 1)), json.loads(raw),
                              Keys(data_dir)[SEQUENCER])
    finally:
        store.close()


async def checkpoints_at(js: JetStreamContext, height: int, expected: Sequence[str] = (),
                         wait_s: float = 10.0) -> list[Checkpoint]:
    """Every node's latest checkpoint of ``height`` in the checkpoints stream, waiting up to
    ``wait_s`` for the ``expected`` nodes that have not stated it yet."""
    deadline = time.monotonic() + wait_s
    found: dict[str, Checkpoint] = {}
    start = 1
    while True:
        async for seq, _subject, data, _headers in iter_stream(js, CHECKPOINTS_STREAM, start, idle_timeout_s=10.0):
            start = seq + 1
            try:
                cp = Checkpoint.decode(data)
            except WireError:
                continue
            if cp.height == height:
                found[cp.node] = cp
        if set(expected) <= set(found) or time.monotonic() >= deadline:
            return list(found.values())
        await asyncio.sleep(0.2)
