"""The ``clearhouse network`` commands (the replicated ledger through NATS JetStream), and
``clearhouse proof`` / ``clearhouse verify-proof`` (a holding proven against a signed state root).

``network up`` starts a NATS cluster, PostgreSQL and one node per participant on loopback under
``--data``; ``network status`` shows each node's height, head hash, state root and alarms;
``network down`` stops everything ``up`` started. ``network run``, ``submit``, ``close-day`` and
``add-member`` publish into the log; ``network snapshot`` writes a signed snapshot; ``network
node`` runs one node (what ``up`` starts, and what runs on each machine of a real deployment).
Imports anything (an interface module); nothing imports it but ``interfaces.cli``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from clearhouse.core.errors import ClearhouseError, InputError
from clearhouse.cycle.run import LEDGER_FILE, SEQUENCER, open_node, parse_cycle
from clearhouse.cycle.scenario import load_scenario
from clearhouse.interfaces.console import err, out, progress_bars
from clearhouse.ledger.crypto import KeyPair
from clearhouse.ledger.verify import verify_store
from clearhouse.network import cluster
from clearhouse.network.node import NodeConfig, TlsFiles, run_node, sequencer_public_key
from clearhouse.network.proofs import make_proof, verify_proof
from clearhouse.network.servers import ServerError
from clearhouse.network.wire import REPLICAS
from clearhouse.node.node import Node

DEFAULT_DATA = Path("clearhouse-network")
DataOpt = Annotated[Path, typer.Option("--data", help="Data directory of the network (keys/, network/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DateOpt = Annotated[str | None, typer.Option("--date", help="Business date YYYY-MM-DD (default: the network's).")]

network_app = typer.Typer(no_args_is_help=True, help="The replicated ledger: NATS JetStream cluster and nodes.")


def register(app: typer.Typer) -> None:
    """Add ``network``, ``proof`` and ``verify-proof`` to the ``clearhouse`` app."""
    app.add_typer(network_app, name="network")
    app.command(name="proof")(proof)
    app.command(name="verify-proof")(verify_proof_cmd)


def _emit(body: Any) -> None:
    sys.stdout.write(json.dumps(body) + "\n")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        _fail(f"not a date (YYYY-MM-DD): {text!r}")


def _read_holidays(path: Path) -> list[dt.date]:
    try:
        lines = path.read_text().split()
        return [dt.date.fromisoformat(x.strip()) for x in lines[1:] if x.strip()]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read holidays from {path}: {exc}") from exc


def _short(hex_text: str) -> str:
    return hex_text[:16] + "…" if hex_text else ""


def _status_table(body: dict[str, Any]) -> None:
    table = Table(title="clearhouse network")
    for col in ("node", "role", "process", "state", "height", "head hash", "state root", "alarms"):
        table.add_column(col)
    for r in body["nodes"]:
        alarms = "; ".join(f"{a['node']}@{a['height']}" for a in r["alarms"]) or "-"
        table.add_row(r["node"], r["role"], "running" if r["running"] else "[red]stopped[/]", r["state"],
                      str(r["height"]), _short(r["head_hash"]), _short(r["state_root"]),
                      f"[red]{alarms}[/]" if r["alarms"] else alarms)
    out.print(table)
    for r in body["nodes"]:
        for a in r["alarms"]:
            out.print(f"[bold red]ALARM[/] seen by {r['node']}: node {a['node']} at height {a['height']}: {a['what']}")
        if r["halted"]:
            out.print(f"[bold red]{r['node']} halted[/]: {r['halted']}")
    verdict = "[green]every node at the top height agrees[/]" if body["agree_at_top"] else "[red]nodes disagree[/]"
    out.print(verdict)


@network_app.command()
def up(
    members: Annotated[int, typer.Option(help="Member nodes to start (ids M000, M001, ...).")] = 4,
    data: DataOpt = DEFAULT_DATA,
    store: Annotated[str, typer.Option(help="Node store: postgres (a database per node) or sqlite.")] = "postgres",
    nats_servers: Annotated[int, typer.Option("--nats-servers", help="NATS servers in the cluster.")] = 3,
    seal_every: Annotated[float, typer.Option(
        help="The sequencer seals submissions that waited this many seconds (0: clients seal).")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Start the NATS cluster, PostgreSQL and a node per participant on loopback."""
    try:
        info = cluster.up(data, members, store=store, nats_servers=nats_servers, seal_every_s=seal_every)
    except (ClearhouseError, ServerError) as exc:
        _fail(str(exc))
    if as_json:
        _emit(info)
        return
    out.print(f"[green]network up[/] in {data}")
    out.print(f"NATS JetStream ({len(info['nats'])} servers, {info['replicas']} replicas): {', '.join(info['nats'])}")
    if info["store"] == "postgres":
        pg = info["postgres"]
        out.print(f"PostgreSQL: {pg['host']}:{pg['port']} (user {pg['user']}, a database per node)")
    table = Table()
    for col in ("node", "role", "pid", "store"):
        table.add_column(col)
    for node_id, node in info["nodes"].items():
        role = "sequencer" if node_id == info["sequencer_node"] else "follower"
        table.add_row(node_id, role, str(cluster.node_pid(data, node_id) or "-"),
                      f"postgres database {node['database']}" if "database" in node else "sqlite")
    out.print(table)
    out.print(f"Logs: {data / 'network' / 'logs'}; status files: {data / 'network'}/<node>.status.json")
    out.print(f"Next: `clearhouse network run SCENARIO --data {data}`, `clearhouse network status --data {data}`, "
              f"`clearhouse network down --data {data}`.")


@network_app.command()
def down(data: DataOpt = DEFAULT_DATA, as_json: JsonOpt = False) -> None:
    """Stop every node, the NATS cluster and PostgreSQL that `network up` started."""
    stopped = cluster.down(data)
    if as_json:
        _emit(stopped)
    else:
        out.print(f"stopped {stopped['nodes']} node(s), {stopped['nats_servers']} NATS server(s), "
                  f"{stopped['postgres']} PostgreSQL server(s)")


@network_app.command()
def status(data: DataOpt = DEFAULT_DATA, as_json: JsonOpt = False) -> None:
    """Each node's height, head hash, state root and alarms."""
    try:
        body = cluster.status(data)
    except ClearhouseError as exc:
        _fail(str(exc))
    if as_json:
        _emit(body)
    else:
        _status_table(body)
    if body["alarms"] or not body["agree_at_top"]:
        raise typer.Exit(1)


@network_app.command()
def node(
    node_id: Annotated[str, typer.Option("--id", help="Participant id of this node.")],
    nats: Annotated[str, typer.Option("--nats", help="Comma-separated NATS server URLs.")],
    data: DataOpt = DEFAULT_DATA,
    store: Annotated[str, typer.Option(help="postgres or sqlite.")] = "postgres",
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL connection string of this node's database.")] = None,
    sequencer: Annotated[bool, typer.Option("--sequencer", help="Cut and sign blocks (SEQUENCER key).")] = False,
    sequencer_key: Annotated[str | None, typer.Option(help="Sequencer public key, hex.")] = None,
    snapshot: Annotated[Path | None, typer.Option(help="Start from this snapshot file.")] = None,
    seal_every: Annotated[float, typer.Option(help="Sequencer: seal waiting submissions after S s.")] = 0.0,
    replicas: Annotated[int, typer.Option(help="Stream replicas if this node creates them.")] = REPLICAS,
    tls_ca: Annotated[Path | None, typer.Option(help="CA file for NATS TLS.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Client certificate for NATS TLS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Client key for NATS TLS.")] = None,
    creds: Annotated[Path | None, typer.Option(help="NATS credentials file.")] = None,
) -> None:
    """Run one node in the foreground until SIGTERM or Ctrl-C."""
    try:
        key = bytes.fromhex(sequencer_key) if sequencer_key else sequencer_public_key(data)
        tls = TlsFiles(tls_ca, tls_cert, tls_key) if (tls_ca or tls_cert) else None
        config = NodeConfig(node_id, data, [u for u in nats.split(",") if u], store, key, dsn, sequencer,
                            snapshot, seal_every, tls, creds, replicas)
        code = run_node(config)
    except (ClearhouseError, ValueError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@network_app.command()
def run(
    scenario_dir: Annotated[Path, typer.Argument(help="Scenario directory of CSV files.")],
    data: DataOpt = DEFAULT_DATA,
    cycle: Annotated[str, typer.Option("--cycle", help="Settlement cycle: T+0, T+1 or T+2.")] = "T+2",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every node to apply the run.")] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Publish a scenario's plan through the network (each step, then a seal request) and wait
    until every node has applied it; the ledger equals `clearhouse run` of the same scenario."""
    try:
        days = parse_cycle(cycle)
        steps = cluster.plan_steps(data, load_scenario(scenario_dir), days)
        with progress_bars(not as_json) as bar:
            first, last = cluster.with_network(
                data, lambda nc, js: cluster.publish_plan(js, data, steps, lambda d, n: bar("publish", d, n)))
            nodes = [n for n in cluster.load_cluster(data)["nodes"] if cluster.node_pid(data, n) is not None]
            cluster.wait_height(data, nodes, last, timeout,
                                lambda h: bar("applied on every node", min(h.values()) + 1, last + 1))
        body = cluster.status(data)
    except (ClearhouseError, ServerError) as exc:
        _fail(str(exc))
    body["published_from_height"], body["final_height"] = first, last
    if as_json:
        _emit(body)
    else:
        _status_table(body)
    if body["alarms"] or not body["agree_at_top"]:
        raise typer.Exit(1)


@network_app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="Trade file, CSV or Parquet.")],
    as_member: Annotated[str, typer.Option("--as", help="Submitting participant (its key signs).")],
    data: DataOpt = DEFAULT_DATA,
    date: DateOpt = None,
    cycle: Annotated[str, typer.Option("--cycle", help="Default settlement cycle: T+0, T+1 or T+2.")] = "T+2",
    holidays: Annotated[Path | None, typer.Option(help="CSV with a `date` column: non-business weekdays.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a trade file through the network, signed by a member, then ask for a block."""
    try:
        days = parse_cycle(cycle)
        closed = _read_holidays(holidays) if holidays else []
        body = cluster.with_network(
            data, lambda nc, js: cluster.submit_trades(js, data, file, as_member, _date(date), True, days, closed))
    except ClearhouseError as exc:
        _fail(str(exc))
    if as_json:
        _emit(body)
    else:
        sealed = f"sealed for {body['business_date']}" if body["sealed"] else "waiting for the sequencer to seal"
        out.print(f"published {body['trades']:,} trades from {as_member} in {len(body['submissions'])} "
                  f"submission(s): {', '.join(body['submissions'])}; {sealed}")


@network_app.command(name="close-day")
def close_day(
    date: Annotated[str, typer.Argument(help="Business date YYYY-MM-DD.")],
    data: DataOpt = DEFAULT_DATA,
) -> None:
    """The CCP's cut-off (novation, netting) and settlement run for a day, through the log."""
    day = _date(date)
    assert day is not None
    try:
        cluster.with_network(data, lambda nc, js: cluster.close_day(js, data, day))
    except ClearhouseError as exc:
        _fail(str(exc))
    out.print(f"cut-off and settlement for {day} published and sealed")


@network_app.command(name="add-member")
def add_member(
    member: Annotated[str, typer.Argument(help="Participant id of the new member.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    data: DataOpt = DEFAULT_DATA,
    date: DateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Admit a member (CCP-signed, through the log) and start its node, which catches up."""
    try:
        body = cluster.add_member(data, member, name, _date(date))
    except (ClearhouseError, ServerError) as exc:
        _fail(str(exc))
    if as_json:
        _emit(body)
    else:
        out.print(f"{member} admitted on {body['business_date']}; its node (pid {body['pid']}) is catching up — "
                  f"see `clearhouse network status --data {data}`")


@network_app.command(name="start-node")
def start_node(
    node_id: Annotated[str, typer.Argument(help="Participant id.")],
    data: DataOpt = DEFAULT_DATA,
    snapshot: Annotated[Path | None, typer.Option(help="Start from this snapshot file.")] = None,
) -> None:
    """Start (or restart) one node of the network recorded under --data."""
    try:
        pid = cluster.start_node(data, node_id, snapshot)
        cluster.wait_ready(data, [node_id], 120.0)
    except (ClearhouseError, ServerError) as exc:
        _fail(str(exc))
    out.print(f"node {node_id} started (pid {pid})")


@network_app.command(name="stop-node")
def stop_node(node_id: Annotated[str, typer.Argument(help="Participant id.")], data: DataOpt = DEFAULT_DATA) -> None:
    """Stop one node of the network recorded under --data."""
    out.print(f"node {node_id} {'stopped' if cluster.stop_node(data, node_id) else 'was not running'}")


@network_app.command(name="verify")
def verify_node(
    node_id: Annotated[str, typer.Option("--node", help="Node whose store is verified.")] = cluster.SEQUENCER_NODE,
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """`clearhouse verify` on one node's store (PostgreSQL or SQLite): chain, roots, signatures, replay."""
    try:
        store = cluster.open_node_store(data, node_id)
    except ClearhouseError as exc:
        _fail(str(exc))
    try:
        report = verify_store(store)
    finally:
        store.close()
    body = {"node": node_id, "verified": report.verified, "height": report.height,
            "first_bad_height": report.first_bad_height, "reason": report.reason or None,
            "head_hash": report.head_hash, "state_root": report.state_root}
    if as_json:
        _emit(body)
    elif report.verified:
        out.print(f"[green]verified[/] {node_id}: {report.height + 1} blocks, head {_short(report.head_hash)}, "
                  f"state root {_short(report.state_root)}")
    else:
        out.print(f"[bold red]NOT verified[/] {node_id}: first bad block {report.first_bad_height}: {report.reason}")
    if not report.verified:
        raise typer.Exit(1)


@network_app.command()
def snapshot(
    out_file: Annotated[Path, typer.Option("--out", help="Snapshot file to write.")],
    data: DataOpt = DEFAULT_DATA,
    node_id: Annotated[str, typer.Option("--node", help="Node whose store is exported.")] = cluster.SEQUENCER_NODE,
    height: Annotated[int | None, typer.Option(help="Last block (default: the node's head).")] = None,
) -> None:
    """Export every block up to a height, signed by the sequencer key, for a new node to start from."""
    try:
        trailer = cluster.snapshot(data, node_id, out_file, height)
    except ClearhouseError as exc:
        _fail(str(exc))
    out.print(f"snapshot of blocks 0..{trailer['height']} written to {out_file} (state root "
              f"{_short(trailer['state_root'])}, log continues at {trailer['resume']['from']})")


# ----------------------------------------------------------------------------------------------
# proofs


def _source_node(data: Path, participant: str, node_id: str | None) -> tuple[Node, list[Any]]:
    """The node to prove from, and the checkpoints the network's nodes signed at its height."""
    if not cluster.cluster_path(data).exists():
        if not (data / LEDGER_FILE).exists():
            raise InputError(f"no network and no ledger in {data}")
        return open_node(data), []
    nodes = list(cluster.load_cluster(data)["nodes"])
    chosen = node_id or (participant if participant in nodes else cluster.SEQUENCER_NODE)
    store = cluster.open_node_store(data, chosen)
    node = Node.open(store, SEQUENCER, None)
    others = [n for n in nodes if n != chosen]
    checkpoints = cluster.with_network(data, lambda nc, js: cluster.checkpoints_at(js, node.height, others))
    return node, checkpoints


def proof(
    participant: Annotated[str, typer.Argument(help="Participant id.")],
    security: Annotated[str, typer.Argument(help="Security id (or a currency for cash).")],
    data: DataOpt = DEFAULT_DATA,
    node_id: Annotated[str | None, typer.Option("--node", help="Node whose store proves it.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the proof here (default: stdout).")] = None,
) -> None:
    """A Merkle proof of a holding against a state root the nodes signed."""
    try:
        node, checkpoints = _source_node(data, participant, node_id)
        try:
            doc = make_proof(node, participant, security, checkpoints)
        finally:
            node.store.close()
    except (ClearhouseError, ServerError) as exc:
        _fail(str(exc))
    text = json.dumps(doc, indent=2) + "\n"
    if out_file is None:
        sys.stdout.write(text)
        return
    out_file.write_text(text)
    err.print(f"proof of {participant}'s {doc['amount']} {security} at height {doc['height']}, signed by "
              f"{len(doc['checkpoints'])} node(s), written to {out_file}")


def _trusted_keys(directory: Path) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()):
        text = path.read_text().strip()
        if path.suffix == ".pub":
            keys[path.stem] = bytes.fromhex(text)
        elif path.suffix == ".key":
            keys[path.stem] = KeyPair(bytes.fromhex(text)).public_key
    return keys


def verify_proof_cmd(
    file: Annotated[Path, typer.Argument(help="Proof file written by `clearhouse proof`.")],
    trust_keys: Annotated[Path | None, typer.Option(
        "--trust-keys", help="Directory of <id>.pub (hex) or <id>.key files: signers must use these keys.")] = None,
    min_signers: Annotated[int, typer.Option(help="Checkpoints from at least this many nodes.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Check a proof with no access to any database: Merkle path, state root, every signature."""
    try:
        doc = json.loads(file.read_text())
        trusted = _trusted_keys(trust_keys) if trust_keys else None
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {file}: {exc}")
    ok, reason = verify_proof(doc, trusted, min_signers)
    if as_json:
        _emit({"verified": ok, "reason": reason})
    elif ok:
        out.print(f"[green]verified[/]: {reason}")
    else:
        out.print(f"[bold red]NOT verified[/]: {reason}")
    if not ok:
        raise typer.Exit(1)
