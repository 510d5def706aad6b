"""Replicated ledger throughput: trades per second from submission until every node has applied
them, through a 3-server NATS JetStream cluster (3 replicas) and 4 node processes (the CCP as
sequencer, the CSD, a member and the regulator), each with its own PostgreSQL database, all on
this machine. Each node's peak memory (VmHWM) is read from /proc.

A seeded synthetic day (T+0) is planned as the embedded run plans it; genesis and set-up go
through first. The trade batches (50,000 trades each, signed beforehand: client work, timed
apart) are then published, each followed by a seal request, and then the day's cut-off and
settlement; the clock stops when every node's status reports the last block. Every node must
end at the same head hash and state root as the embedded run of the same trades.

Run: ``python benchmarks/bench_network.py [--quick]``; prints the figures as JSON.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import standalone  # benchmarks/standalone.py

from clearhouse.cycle.run import CCP, CSD, REGULATOR, SEQUENCER, Keys, Step, run_scenario
from clearhouse.ledger.records import Submission
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.network import cluster
from clearhouse.network.node import publish_seal, publish_submission

NODES = [CCP, CSD, "M000", REGULATOR]
WAIT_S = 900.0


def _peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _measure(data: Path, trades: int, members: int) -> dict[str, Any]:
    spec = MarketSpec(members=members, securities=200, trades=trades, days=1, cycle_days=0, seed=3)
    scenario = generate_market(spec)
    steps = cluster.plan_steps(data, scenario, 0)
    head, body = steps[:2], steps[2:]
    cluster.with_network(data, lambda nc, js: cluster.publish_plan(js, data, head))
    cluster.wait_height(data, NODES, 1, WAIT_S)

    started = time.perf_counter()
    built: list[tuple[Step, list[Submission]]] = [(step, step.build()) for step in body]
    build_s = time.perf_counter() - started
    payload_bytes = sum(len(s.payload) for _, subs in built for s in subs)
    sequencer = Keys(data)[SEQUENCER]
    last = len(steps) - 1
    trade_heights = [2 + i for i, (step, _) in enumerate(built) if step.ids[0].startswith("trades-")]

    async def publish(nc: Any, js: Any) -> float:
        per_day: dict[Any, int] = {head[0].day: 2}
        for step, subs in built:
            for sub in subs:
                await publish_submission(js, sub)
            per_day[step.day] = per_day.get(step.day, 0) + 1
            await publish_seal(js, sequencer, step.day, cluster.block_timestamp(step.day, per_day[step.day]))
        return time.perf_counter()

    t0 = time.perf_counter()
    published = cluster.with_network(data, publish)
    cluster.wait_height(data, NODES, trade_heights[-1], WAIT_S)
    trades_applied = time.perf_counter()
    statuses = cluster.wait_height(data, NODES, last, WAIT_S)
    done = time.perf_counter()

    reference = run_scenario(scenario, _embedded_dir(data), 0)
    expected = (reference.head_hash.hex(), reference.machine.state_root().hex())
    reference.store.close()
    agree = all((s["head_hash"], s["state_root"]) == expected and s["height"] == last for s in statuses.values())
    pids = {n: cluster.node_pid(data, n) for n in NODES}
    return {
        "trades": trades,
        "members": members,
        "trade_blocks": len(trade_heights),
        "payload_mb": round(payload_bytes / 1e6, 1),
        "client_build_and_sign_s": round(build_s, 2),
        "publish_s": round(published - t0, 2),
        "trades_on_every_node_s": round(trades_applied - t0, 2),
        "trades_per_s_trades_applied": round(trades / (trades_applied - t0)),
        "with_cutoff_and_settlement_s": round(done - t0, 2),
        "trades_per_s_through_settlement": round(trades / (done - t0)),
        "every_node_equals_embedded_run": "yes" if agree else "NO",
        **{f"peak_rss_mb_{n}": _peak_rss_mb(pid) for n, pid in pids.items()},
    }


def _embedded_dir(data: Path) -> Path:
    ref = data / "embedded"
    if ref.exists():
        shutil.rmtree(ref)
    shutil.copytree(data / "keys", ref / "keys")
    return ref


def run(quick: bool = False) -> dict[str, Any]:
    sizes = [20_000] if quick else [200_000, 500_000]
    results = []
    for trades in sizes:
        data = Path(tempfile.mkdtemp(prefix="clearhouse-bench-net-"))
        try:
            cluster.up(data, nodes=NODES)
            results.append(_measure(data, trades, members=20))
        finally:
            cluster.down(data)
            shutil.rmtree(data, ignore_errors=True)
    return {
        "setup": "3 nats-server (JetStream, 3 replicas), 4 node processes (CCP sequencer, CSD, M000, REGULATOR), "
                 "one PostgreSQL server with a database per node, all on 127.0.0.1; T+0, one business day",
        "target_trades_per_s": 20_000,
        "runs": results,
    }


if __name__ == "__main__":
    standalone.main(run, __doc__.splitlines()[0])
