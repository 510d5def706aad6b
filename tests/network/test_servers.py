"""Real NATS JetStream clusters and PostgreSQL servers started on loopback by the tests.

Every fixture stops its servers in a finalizer, also through the PID records in the base
directory, so no process outlives a failing test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from clearhouse.network import servers
from clearhouse.network.jetstream import (
    StreamRecord,
    ensure_stream,
    iter_stream,
    publish_with_retry,
)
from clearhouse.network.servers import NatsCluster, PostgresServer

STREAM = "BLOCKS"
SUBJECTS = ["blocks.>"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(fields[1]) == pid and fields[0] != b"Z":
                children.append(int(entry))
    return children


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    base = tmp_path / "nats"
    c = NatsCluster(base, 3)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        NatsCluster.stop_from_dir(base)


@pytest.fixture
def pg_base(tmp_path: Path) -> Iterator[Path]:
    """A base directory for PostgreSQL outside pytest's temporary root when running as root.

    The server then runs as ``nobody``, which must be able to reach its data directory, and
    every pytest session resets ``/tmp/pytest-of-root`` to mode 0700 when it starts.
    """
    if os.geteuid() != 0:
        yield tmp_path / "pg"
        return
    base = Path(tempfile.mkdtemp(prefix="clearhouse-pg-test-"))
    try:
        yield base
    finally:
        PostgresServer.stop_from_dir(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres(pg_base: Path) -> Iterator[PostgresServer]:
    pg = PostgresServer(pg_base)
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()
        PostgresServer.stop_from_dir(pg_base)


async def _ignore_error(exc: Exception) -> None:
    """Connection errors while a server is down are expected; the client reconnects."""


def _run_js(
    cluster: NatsCluster, body: Callable[[NATS, JetStreamContext], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        nc = await nats.connect(
            cluster.urls,
            error_cb=_ignore_error,
            connect_timeout=2,
            reconnect_time_wait=0.2,
            max_reconnect_attempts=-1,
        )
        try:
            return await asyncio.wait_for(body(nc, nc.jetstream(timeout=5)), timeout=50)
        finally:
            await nc.close()

    return asyncio.run(main())


async def _records(js: JetStreamContext, start: int = 1) -> list[StreamRecord]:
    return [record async for record in iter_stream(js, STREAM, start, idle_timeout_s=20)]


def test_cluster_has_meta_leader_and_pid_record(cluster: NatsCluster) -> None:
    assert cluster.meta_leader() in cluster.server_names
    assert len(cluster.urls) == 3
    assert all(url.startswith("nats://127.0.0.1:") for url in cluster.urls)
    assert (cluster.base_dir / "nats-cluster.json").is_file()
    assert all((cluster.base_dir / f"n{i}.log").stat().st_size > 0 for i in range(3))


def test_thousand_messages_arrive_in_order(cluster: NatsCluster) -> None:
    async def body(nc: NATS, js: JetStreamContext) -> None:
        info = await ensure_stream(js, STREAM, SUBJECTS, replicas=3)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        for i in range(1000):
            ack = await publish_with_retry(js, f"blocks.{i % 7}", b"%d" % i, f"m-{i}")
            assert ack.seq == i + 1 and not ack.duplicate
        records = await _records(js)
        assert [r[0] for r in records] == list(range(1, 1001))
        assert [r[2] for r in records] == [b"%d" % i for i in range(1000)]
        assert [r[3]["Nats-Msg-Id"] for r in records] == [f"m-{i}" for i in range(1000)]
        assert [r[1] for r in records[:8]] == [f"blocks.{i % 7}" for i in range(8)]
        tail = await _records(js, 996)
        assert [r[0] for r in tail] == [996, 997, 998, 999, 1000]
        assert await _records(js, 1001) == []

    _run_js(cluster, body)


def test_same_msg_id_is_stored_once(cluster: NatsCluster) -> None:
    async def body(nc: NATS, js: JetStreamContext) -> None:
        await ensure_stream(js, STREAM, SUBJECTS, replicas=3)
        first = await publish_with_retry(js, "blocks.a", b"body", "same-id")
        second = await publish_with_retry(js, "blocks.a", b"body", "same-id")
        assert not first.duplicate and second.duplicate
        assert first.seq == second.seq == 1
        info = await js.stream_info(STREAM)
        assert info.state.messages == 1

    _run_js(cluster, body)

    # A full cluster restart keeps the stream and its de-duplication record.
    cluster.stop()
    cluster.start()

    async def after_restart(nc: NATS, js: JetStreamContext) -> None:
        again = await publish_with_retry(js, "blocks.a", b"body", "same-id", timeout_s=2.0)
        assert again.duplicate and again.seq == 1
        assert [r[2] for r in await _records(js)] == [b"body"]

    _run_js(cluster, after_restart)


def test_leader_killed_mid_publish_loses_and_duplicates_nothing(cluster: NatsCluster) -> None:
    total = 400
    killed: list[int] = []

    async def body(nc: NATS, js: JetStreamContext) -> None:
        info = await ensure_stream(js, STREAM, SUBJECTS, replicas=3)
        assert info.cluster is not None and info.cluster.leader is not None
        leader = cluster.index_of(info.cluster.leader)
        acked = 0

        async def publisher() -> None:
            nonlocal acked
            for i in range(total):
                await publish_with_retry(
                    js, "blocks.x", b"%d" % i, f"k-{i}", timeout_s=1.0, attempts=60
                )
                acked += 1

        async def killer() -> None:
            while acked < total // 3:
                await asyncio.sleep(0.001)
            # SIGKILL from another thread while the next publish is in flight.
            await asyncio.to_thread(cluster.kill, leader)
            killed.append(leader)

        await asyncio.gather(publisher(), killer())
        after = await js.stream_info(STREAM)
        assert after.cluster is not None and after.cluster.leader != info.cluster.leader
        assert after.state.messages == total and after.state.last_seq == total
        records = await _records(js)
        assert [r[0] for r in records] == list(range(1, total + 1))
        assert [r[2] for r in records] == [b"%d" % i for i in range(total)]

    _run_js(cluster, body)
    assert killed and not cluster.is_running(killed[0])

    cluster.restart(killed[0], timeout_s=30)
    assert cluster.is_running(killed[0])

    async def rejoined(nc: NATS, js: JetStreamContext) -> None:
        for _ in range(100):
            info = await js.stream_info(STREAM)
            replicas = info.cluster.replicas if info.cluster is not None else None
            if replicas and len(replicas) == 2 and all(r.current for r in replicas):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("restarted server did not become a current replica")
        jsz = cluster.monitor(killed[0], "jsz?accounts=true&streams=true")
        streams = [s for acc in jsz["account_details"] for s in acc.get("stream_detail", [])]
        assert [s["state"]["messages"] for s in streams if s["name"] == STREAM] == [total]

    _run_js(cluster, rejoined)


def test_stop_from_dir_in_another_process(tmp_path: Path) -> None:
    base = tmp_path / "nats"
    c = NatsCluster(base, 3)
    try:
        c.start()
        pids = [c.pid(i) for i in range(3)]
        assert all(p is not None and _alive(p) for p in pids)
        code = (
            "import sys; from pathlib import Path; "
            "from clearhouse.network.servers import NatsCluster; "
            "print(NatsCluster.stop_from_dir(Path(sys.argv[1])))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(base)],
            capture_output=True, text=True, timeout=30, check=True,
        )
        assert out.stdout.strip() == "3"
        assert not any(p is not None and _alive(p) for p in pids)
        assert not (base / "nats-cluster.json").exists()
    finally:
        c.stop()
        c.stop()


def test_postgres_database_table_roundtrip_and_clean_stop(postgres: PostgresServer) -> None:
    postgres.create_database("ledger")
    postgres.create_database("ledger")
    with psycopg.connect(postgres.dsn("ledger")) as conn:
        conn.execute("CREATE TABLE blocks (height BIGINT PRIMARY KEY, root BYTEA NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO blocks VALUES (%s, %s)", [(h, bytes([h]) * 32) for h in range(10)]
            )
    with psycopg.connect(postgres.dsn("ledger")) as conn:
        rows = conn.execute("SELECT height, root FROM blocks ORDER BY height").fetchall()
        assert rows == [(h, bytes([h]) * 32) for h in range(10)]
        host = conn.execute("SELECT inet_server_addr()::text").fetchone()
        assert host is not None and host[0].startswith("127.0.0.1")

    pid = postgres.pid
    assert pid is not None
    helpers = _children(pid)
    assert helpers
    postgres.stop()
    assert not _alive(pid)
    assert not any(_alive(p) for p in helpers)
    assert not (postgres.base_dir / "postgres.json").exists()
    postgres.stop()

    postgres.start()
    with psycopg.connect(postgres.dsn("ledger")) as conn:
        count = conn.execute("SELECT count(*) FROM blocks").fetchone()
        assert count == (10,)


def test_postgres_stop_from_dir(postgres: PostgresServer) -> None:
    pid = postgres.pid
    assert pid is not None
    helpers = _children(pid)
    assert PostgresServer.stop_from_dir(postgres.base_dir) is True
    assert not _alive(pid)
    assert not any(_alive(p) for p in helpers)
    assert PostgresServer.stop_from_dir(postgres.base_dir) is False


def _occupy_first_draw(monkeypatch: pytest.MonkeyPatch, holder: socket.socket) -> None:
    """Make the first port choice return a port ``holder`` is listening on."""
    real = servers.free_ports
    draws: list[int] = []

    def patched(count: int) -> list[int]:
        ports = real(count)
        if not draws:
            ports[-1] = holder.getsockname()[1]
        draws.append(count)
        return ports

    monkeypatch.setattr(servers, "free_ports", patched)


def test_cluster_start_retries_after_losing_a_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        _occupy_first_draw(monkeypatch, holder)
        with NatsCluster(tmp_path / "nats", 3) as c:
            assert c.meta_leader() in c.server_names
            assert holder.getsockname()[1] not in [int(u.rsplit(":", 1)[1]) for u in c.urls]


def test_postgres_start_retries_after_losing_its_port(
    pg_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        _occupy_first_draw(monkeypatch, holder)
        with PostgresServer(pg_base) as pg:
            assert pg.port != holder.getsockname()[1]
            with psycopg.connect(pg.dsn()) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
