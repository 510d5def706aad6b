"""NATS JetStream throughput on a 3-server cluster with a 3-replica file stream, on this machine.

Measures asynchronous publishing (many acknowledgements outstanding, each message with its own
``Nats-Msg-Id`` as clearhouse publishes them) of 1 KB and 64 KB messages, publishing that waits for
each acknowledgement (the failover-safe path of ``publish_with_retry``) as a reference, and
in-order consumption through ``iter_stream``. All servers run on loopback, so the figures measure
Raft replication, file storage (JetStream's default: fsync every 2 minutes, not per message) and
the Python client, not a network. The load average at start is recorded: other work on the
machine moves these figures.

Run: ``python benchmarks/bench_nats.py [--quick] [--out FILE]``; prints the figures as JSON.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import standalone  # benchmarks/standalone.py
from nats.js import JetStreamContext
from nats.js.api import PubAck

from clearhouse.network.jetstream import (
    MSG_ID_HEADER,
    ensure_stream,
    iter_stream,
    publish_with_retry,
)
from clearhouse.network.servers import NatsCluster, nats_server_binary

WAIT_S = 300.0
# Messages published to a fresh stream before measuring, so its Raft group is settled.
WARM_UP = 1_000


async def _ignore_error(exc: Exception) -> None:
    """Errors are surfaced through the publish futures and the reader instead."""


async def _publish_async(
    js: JetStreamContext, subject: str, size: int, count: int, id_prefix: str
) -> float:
    payload = os.urandom(size)

    async def publish_all() -> list[asyncio.Future[PubAck]]:
        futures = [
            await js.publish_async(subject, payload, headers={MSG_ID_HEADER: f"{id_prefix}-{i}"})
            for i in range(count)
        ]
        await js.publish_async_completed()
        return futures

    start = time.perf_counter()
    futures = await asyncio.wait_for(publish_all(), timeout=WAIT_S)
    elapsed = time.perf_counter() - start
    failed = [f for f in futures if f.exception() is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} asynchronous publishes failed")
    return elapsed


async def _publish_each(js: JetStreamContext, subject: str, size: int, count: int) -> float:
    payload = os.urandom(size)
    start = time.perf_counter()
    for i in range(count):
        await publish_with_retry(js, subject, payload, f"{subject}-{i}", timeout_s=5.0, attempts=3)
    return time.perf_counter() - start


async def _consume(js: JetStreamContext, stream: str, start_seq: int, expected: int) -> float:
    start = time.perf_counter()
    seen = 0
    last = start_seq - 1
    async for seq, _subject, _data, _headers in iter_stream(
        js, stream, start_seq, idle_timeout_s=30.0
    ):
        if seq != last + 1:
            raise RuntimeError(f"out of order: {seq} after {last}")
        last = seq
        seen += 1
    elapsed = time.perf_counter() - start
    if seen != expected:
        raise RuntimeError(f"read {seen} messages, expected {expected}")
    return elapsed


def _rate(count: int, size: int, seconds: float) -> dict[str, float]:
    return {
        "messages": count,
        "message_bytes": size,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds, 1),
        "mb_per_s": round(count * size / seconds / 1e6, 2),
    }


async def _bench(cluster: NatsCluster, counts: dict[str, int]) -> dict[str, Any]:
    nc = await nats.connect(cluster.urls, error_cb=_ignore_error, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=10, publish_async_max_pending=4000)
        results: dict[str, Any] = {}
        for label, size in (("1kb", 1024), ("64kb", 64 * 1024)):
            stream = f"BENCH_{label.upper()}"
            subject = f"bench.{label}"
            await ensure_stream(js, stream, [subject], replicas=3)
            warm, count = WARM_UP, counts[label]
            await _publish_async(js, subject, size, warm, "warm")
            results[f"publish_async_{label}"] = _rate(
                count, size, await _publish_async(js, subject, size, count, "m")
            )
            results[f"consume_ordered_{label}"] = _rate(
                count, size, await _consume(js, stream, warm + 1, count)
            )
        await ensure_stream(js, "BENCH_EACH", ["bench.each"], replicas=3)
        await _publish_async(js, "bench.each", 1024, WARM_UP, "warm")
        count = counts["each"]
        results["publish_wait_each_ack_1kb"] = _rate(
            count, 1024, await _publish_each(js, "bench.each", 1024, count)
        )
        results["ratio_async_vs_wait_each_1kb"] = round(
            results["publish_async_1kb"]["msgs_per_s"]
            / results["publish_wait_each_ack_1kb"]["msgs_per_s"],
            1,
        )
        return results
    finally:
        await nc.close()


def _machine() -> dict[str, Any]:
    version = subprocess.run(
        [str(nats_server_binary()), "--version"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nats_server": version,
        "nats_py": importlib.metadata.version("nats-py"),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Start a 3-server cluster in a temporary directory, measure, stop it; return the figures."""
    counts = (
        {"1kb": 5_000, "64kb": 500, "each": 500}
        if quick
        else {"1kb": 50_000, "64kb": 3_000, "each": 3_000}
    )
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="clearhouse-bench-nats-") as tmp:
        with NatsCluster(Path(tmp), 3) as cluster:
            results = asyncio.run(asyncio.wait_for(_bench(cluster, counts), timeout=2 * WAIT_S))
    return {
        "benchmark": "nats_jetstream",
        "setup": "3 nats-server processes on 127.0.0.1, file stream with 3 replicas",
        "quick": quick,
        "machine": machine,
        "results": results,
    }


if __name__ == "__main__":
    standalone.main(run, __doc__.splitlines()[0], "fewer messages, for a smoke run")
