"""The deterministic simulation: the whole system in one process, driven by one seed.

The seed chooses a small market (``generate_market`` plus a second currency, cash shortages, a
holiday, member-reported trades and bad rows), the fault rates and every fault. One sequencer
node cuts blocks; replica nodes (CCP, CSD, central bank, regulator, members) receive them over
a simulated bus that loses, duplicates, delays and so reorders messages; replicas ask for what
they miss, ignore duplicates and apply strictly in height order. Nodes crash and restart by
replaying their store, a ``FaultyStore`` that loses or tears unsynced writes. Clients retry
submissions with the same ids until they hear an answer, and a hostile client sends forged,
reused, unauthorised and malformed submissions. Time is a tick counter: nothing here reads the
OS clock or OS randomness.

A run has a fault phase (until the workload is done or ``fault_ticks`` have passed) and then a
convergence phase (no faults; every node restarted) that must bring every replica to the
sequencer's head. Checkers run throughout: the state machine's invariants at every commit; every
block a replica applies must give the state root and results the sequencer signed; the sequencer
never announces two blocks at one height; every node's balances and open positions, every
submission's answer and every settlement outcome must equal the reference model's at that
height; every acknowledged submission is in the durable ledger at the end, which verifies.
A failure names the seed that replays it.
Imports anything of the core (and clearhouse.sim); never an interface.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import cast

import polars as pl

from clearhouse.clearing.batch import TRADE_COLUMNS, encode_trades
from clearhouse.core.calendar import BusinessCalendar
from clearhouse.core.errors import InvariantViolation
from clearhouse.core.money import format_minor, minor_digits, to_minor
from clearhouse.cycle.run import SEQUENCER, Keys, Step, plan, sign
from clearhouse.cycle.scenario import Scenario
from clearhouse.ledger.crypto import KeyPair, KeyStore, generate_seed, verify_signature
from clearhouse.ledger.faulty_store import CrashPoint, FaultyStore
from clearhouse.ledger.memory_store import MemoryStore
from clearhouse.ledger.records import Block, Submission, receipts_root, submissions_root
from clearhouse.ledger.store import Rejection
from clearhouse.ledger.verify import verify_store
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.node.node import Node
from clearhouse.node.rows import state_rows
from clearhouse.sim.checkers import SimFailure, cycle_diff, decode_receipt, observe, outcome_diff, snapshot_diff
from clearhouse.sim.mutants import MUTANTS, Mutant
from clearhouse.sim.reference import Reference, Snapshot
from clearhouse.state.kinds import Kind, encode_json
from clearhouse.state.machine import StateMachine

TICKS_MAX = 20_000
FETCH_BLOCKS_MAX = 16
BUFFERED_BLOCKS_MAX = 256
SYSTEM_REPLICAS = ("CCP", "CSD", "CENTRAL_BANK", "REGULATOR")
HOSTILE = "MALLORY"
DONE_STATUSES = ("accepted", "exists")


# ---------------------------------------------------------------- what a seed chooses


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything one seed chooses.

    Attributes:
        market: the synthetic market's spec (its seed is the simulation's).
        second_currency: a currency some securities are moved into ('' for one currency).
        squeezed: members left with a thousandth of their cash (insufficient_cash fails).
        holiday: a trading weekday made a holiday, or None.
        member_report_share: share of trades a member reports itself instead of the exchange.
        bad_rows: invalid trade rows mixed into the trades.
        replicas: names of the replica nodes.
        loss_rate, duplicate_rate: per message; delay_max_ticks: extra latency, drawn uniformly.
        crash_rate: per up replica per tick; sequencer_crash_rate: the sequencer's;
            restart_ticks_max: downtime, drawn uniformly from 1.
        torn_rate: per append, a crash in the middle of it.
        replica_sync_every: replicas sync their store after every this many blocks.
        fault_ticks: the fault phase's length at most.
        seal_rate: per tick, the chance the sequencer cuts a block from a non-empty queue.
        retry_ticks: a client resends an unanswered submission after this long.
        poll_ticks: a replica asks the sequencer for blocks after its head this often.
        hostile_rate: per tick in the fault phase, the chance of one hostile submission.
    """

    market: MarketSpec
    second_currency: str
    squeezed: tuple[str, ...]
    holiday: dt.date | None
    member_report_share: float
    bad_rows: int
    replicas: tuple[str, ...]
    loss_rate: float
    duplicate_rate: float
    delay_max_ticks: int
    crash_rate: float
    sequencer_crash_rate: float
    restart_ticks_max: int
    torn_rate: float
    replica_sync_every: int
    fault_ticks: int
    seal_rate: float
    retry_ticks: int
    poll_ticks: int
    hostile_rate: float


def choose_config(seed: int) -> SimConfig:
    rng = random.Random(f"clearhouse-sim/{seed}/config")
    members = rng.randint(3, 6)
    start = dt.date(2026, 3, 2) + dt.timedelta(days=rng.randint(0, 6))
    market = MarketSpec(
        members=members, securities=rng.randint(2, 5), trades=rng.randint(20, 120),
        days=rng.randint(1, 3), start=start, cycle_days=rng.choice((0, 1, 2)),
        fail_rate=rng.choice((0.0, 0.2, 0.5)), ccp_liquidity_pct=rng.choice((0.0, 0.01, 0.05)),
        currency="AUD", seed=seed,
    )
    names = [f"M{i:03d}" for i in range(members)]
    calendar = BusinessCalendar.of()
    weekdays = [calendar.add_business_days(start, k) for k in range(market.days + market.cycle_days)]
    delay = rng.choice((0, 2, 6))
    quiet = rng.random() < 0.1
    return SimConfig(
        market=market,
        second_currency=rng.choice(("", "", "JPY", "USD")),
        squeezed=tuple(m for m in names if rng.random() < 0.2),
        holiday=rng.choice(weekdays[1:]) if len(weekdays) > 1 and rng.random() < 0.3 else None,
        member_report_share=rng.choice((0.0, 0.3)),
        bad_rows=rng.randint(0, 5),
        replicas=tuple(rng.sample(SYSTEM_REPLICAS, rng.randint(2, 4))) + tuple(rng.sample(names, rng.randint(0, 1))),
        loss_rate=0.0 if quiet else rng.choice((0.0, 0.05, 0.15, 0.3)),
        duplicate_rate=0.0 if quiet else rng.choice((0.0, 0.05, 0.2)),
        delay_max_ticks=delay,
        crash_rate=0.0 if quiet else rng.choice((0.0, 0.004, 0.01)),
        sequencer_crash_rate=0.0 if quiet else rng.choice((0.0, 0.01, 0.02)),
        restart_ticks_max=rng.choice((3, 15, 40)),
        torn_rate=0.0 if quiet else rng.choice((0.0, 0.01, 0.03)),
        replica_sync_every=rng.choice((1, 3, 8)),
        fault_ticks=rng.randint(100, 600),
        seal_rate=rng.choice((0.3, 0.7, 1.0)),
        retry_ticks=2 * delay + rng.randint(3, 8),
        poll_ticks=rng.randint(5, 20),
        hostile_rate=0.0 if quiet else rng.choice((0.0, 0.01, 0.03)),
    )


# ---------------------------------------------------------------- the market


def _with_second_currency(sc: Scenario, ccy: str, rng: random.Random) -> Scenario:
    """Move about half the securities into ``ccy`` and give every member (and the CCP) cash in it."""
    ids = sc.securities["security_id"].to_list()
    moved = {s for s in ids if rng.random() < 0.5} or {ids[0]}
    securities = sc.securities.with_columns(
        currency=pl.when(pl.col("security_id").is_in(sorted(moved))).then(pl.lit(ccy))
        .otherwise(pl.col("currency"))
    )
    need: dict[str, Decimal] = {}
    for t in sc.trades.iter_rows(named=True):
        if t["security_id"] in moved:
            need[t["buyer"]] = need.get(t["buyer"], Decimal(0)) + Decimal(t["quantity"]) * Decimal(t["price"])
    digits = minor_digits(ccy)
    rows = []
    for pid in [*sc.participants["participant_id"].to_list(), "CCP"]:
        amount = need.get(pid, Decimal(0)) * Decimal(rng.choice(("0.3", "1.2", "2"))) + 1000
        rows.append({"participant_id": pid, "currency": ccy,
                     "amount": format_minor(int(amount.scaleb(digits)), ccy)})
    return replace(sc, securities=securities, cash=pl.concat([sc.cash, pl.DataFrame(rows)]))


def _squeeze(sc: Scenario, members: tuple[str, ...]) -> Scenario:
    amounts = []
    for r in sc.cash.iter_rows(named=True):
        amount = r["amount"]
        if r["participant_id"] in members:
            amount = format_minor(to_minor(amount, r["currency"]) // 1000, r["currency"])
        amounts.append(amount)
    return replace(sc, cash=sc.cash.with_columns(amount=pl.Series(amounts, dtype=pl.String)))


def _bad_rows(trades: list[dict[str, str]], count: int, rng: random.Random) -> list[dict[str, str]]:
    """Invalid copies of real trades, each breaking one documented rule."""
    breakers = [
        ("unknown security", lambda t: {**t, "security_id": "XX0000000000"}),
        ("buyer is seller", lambda t: {**t, "seller": t["buyer"]}),
        ("bad trade date", lambda t: {**t, "trade_date": t["trade_date"][:5] + "13-45"}),
        ("bad quantity", lambda t: {**t, "quantity": "12x"}),
        ("negative price", lambda t: {**t, "price": "-" + t["price"]}),
        ("CCP as buyer", lambda t: {**t, "buyer": "CCP"}),
        ("reused id", lambda t: {**t, "quantity": str(int(t["quantity"]) + 1)}),
        ("settles before trade", lambda t: {**t, "settlement_date": "2026-01-02"}),
    ]
    out = []
    for n in range(count):
        source = rng.choice(trades)
        label, breaker = rng.choice(breakers)
        row = breaker(source)
        if label != "reused id":
            row["trade_id"] = f"BAD{n:04d}"
        out.append(row)
    return out


def build_scenario(cfg: SimConfig, rng: random.Random) -> Scenario:
    sc = generate_market(cfg.market)
    if cfg.second_currency:
        sc = _with_second_currency(sc, cfg.second_currency, rng)
    if cfg.squeezed:
        sc = _squeeze(sc, cfg.squeezed)
    trades = sc.trades.to_dicts()
    for t in trades:
        own = rng.random() < cfg.member_report_share
        t["submitter"] = rng.choice((t["buyer"], t["seller"])) if own else ""
    trades += [{**row, "submitter": ""} for row in _bad_rows(trades, cfg.bad_rows, rng)]
    frame = pl.DataFrame(trades, schema=dict.fromkeys((*TRADE_COLUMNS, "submitter"), pl.String))
    return replace(sc, trades=frame, holidays=(cfg.holiday,) if cfg.holiday else ())


class _SeededKeyStore(KeyStore):
    """Every participant's key derived from the seed; nothing is read from or written to disk."""

    def __init__(self, seed: int) -> None:
        super().__init__(Path("/nonexistent"))
        self.seed = seed

    def get_or_create(self, owner: str, deterministic_from: bytes | None = None) -> KeyPair:
        return KeyPair(generate_seed(f"clearhouse-sim/{self.seed}/{owner}".encode()))

    def load(self, owner: str) -> KeyPair:
        return self.get_or_create(owner)

    def has(self, owner: str) -> bool:
        return True


class SeededKeys(Keys):
    """The run's keys, derived from the seed (the simulation signs exactly as a real run does)."""

    def __init__(self, seed: int) -> None:
        self.store = _SeededKeyStore(seed)
        self._cache: dict[str, KeyPair] = {}


@dataclass(frozen=True, slots=True)
class Phase:
    """Submissions released together: chains run side by side, each one submission at a time."""

    day: dt.date
    chains: tuple[tuple[Submission, ...], ...]


def phases_of(steps: list[Step]) -> list[Phase]:
    """Set-up as one chain; each day's trade batches side by side; then its cut-off and settlement."""
    phases = [Phase(steps[1].day, (tuple(steps[1].build()),))]
    batches: list[tuple[Submission, ...]] = []
    for step in steps[2:]:
        subs = tuple(step.build())
        if subs[0].kind == Kind.cutoff:
            if batches:
                phases.append(Phase(step.day, tuple(batches)))
                batches = []
            phases.append(Phase(step.day, (subs,)))
        else:
            batches.append(subs)
    return phases


# ---------------------------------------------------------------- messages and the bus


@dataclass(frozen=True, slots=True)
class SubmitMsg:
    """A client's submission to the sequencer."""

    submission: Submission


@dataclass(frozen=True, slots=True)
class AckMsg:
    """The sequencer's answer to a client, sent once the block is durable."""

    submission_id: str
    status: str
    height: int


@dataclass(frozen=True, slots=True)
class BlockMsg:
    """A block, announced or fetched."""

    block: Block


@dataclass(frozen=True, slots=True)
class FetchMsg:
    """A replica asking for blocks from a height on."""

    replica: str
    from_height: int


Message = SubmitMsg | AckMsg | BlockMsg | FetchMsg


class Bus:
    """Point-to-point messages that may be lost, duplicated and delayed (hence reordered)."""

    def __init__(self, cfg: SimConfig, rng: random.Random, counts: dict[str, int]) -> None:
        self.cfg = cfg
        self.rng = rng
        self.counts = counts
        self.faulty = True
        self._queue: list[tuple[int, int, str, Message]] = []
        self._seq = 0
        self._last_delivered: dict[str, int] = {}

    def send(self, now: int, dst: str, msg: Message) -> None:
        self.counts["messages"] += 1
        if self.faulty and self.rng.random() < self.cfg.loss_rate:
            self.counts["messages_lost"] += 1
            return
        copies = 2 if self.faulty and self.rng.random() < self.cfg.duplicate_rate else 1
        self.counts["messages_duplicated"] += copies - 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.cfg.delay_max_ticks) if self.faulty else 0
            self.counts["messages_delayed"] += delay > 0
            heapq.heappush(self._queue, (now + 1 + delay, self._seq, dst, msg))
            self._seq += 1

    def due(self, now: int) -> list[tuple[str, Message]]:
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, seq, dst, msg = heapq.heappop(self._queue)
            if seq < self._last_delivered.get(dst, -1):
                self.counts["messages_reordered"] += 1
            self._last_delivered[dst] = max(seq, self._last_delivered.get(dst, -1))
            out.append((dst, msg))
        return out


# ---------------------------------------------------------------- nodes


class SimNode(Node):
    """A node running the (possibly mutated) state machine, with the replica's way in for blocks."""

    machine_class: type[StateMachine] = StateMachine

    def __init__(self, store: FaultyStore, sequencer_id: str, sequencer_key: KeyPair | None) -> None:
        super().__init__(store, sequencer_id, sequencer_key)
        self.machine = self.machine_class()

    @classmethod
    def replay(cls, store: FaultyStore, sequencer_key: KeyPair | None) -> SimNode:
        """A node of this class at the store's head: every stored block replayed, roots checked."""
        return cast(SimNode, cls.open(store, SEQUENCER, sequencer_key))

    def apply(self, block: Block, sequencer_key: bytes) -> None:
        """Check a block against the sequencer's signature and this node's head, apply and store it."""
        h = block.header
        if h.prev_hash != self.head_hash:
            raise SimFailure(f"block {h.height} does not extend the replica's head (a fork)")
        if not verify_signature(sequencer_key, h.hash(), block.signature):
            raise SimFailure(f"block {h.height} is not signed by the sequencer")
        if submissions_root(block.submissions) != h.merkle_root:
            raise SimFailure(f"block {h.height}'s Merkle root does not match its submissions")
        receipts, rejected = self.machine.apply_block(h.height, dt.date.fromisoformat(h.business_date),
                                                      block.submissions)
        if self.machine.state_root() != h.state_root:
            raise SimFailure(f"replaying block {h.height} gives another state root than the sequencer's")
        encoded = [r.encode() for r in receipts]
        if receipts_root(encoded) != h.results_root:
            raise SimFailure(f"replaying block {h.height} gives other results than the sequencer's")
        changes_state = any(s.kind != Kind.trades for s in block.submissions)
        self.store.append(
            block, encoded, [Rejection(h.height, r.submission_id, r.item_id, r.reason) for r in rejected],
            state_rows(self.machine) if changes_state else None, h.height,
        )
        self.head_hash = h.hash()
        self.last_receipts = receipts


def node_class(machine: type[StateMachine]) -> type[SimNode]:
    """The node class whose nodes (opened or replayed) run ``machine``."""

    class RunningNode(SimNode):
        machine_class = machine

    return RunningNode


@dataclass
class Host:
    """One node's process: its durable store survives a crash, everything else is lost with it."""

    name: str
    store: FaultyStore
    node: SimNode | None = None
    down_until: int = 0
    buffer: dict[int, Block] = field(default_factory=dict)
    applied_since_sync: int = 0
    last_fetch: int = -(10**9)

    @property
    def up(self) -> bool:
        return self.node is not None


class Client:
    """A participant's submitting client: resends unanswered submissions with the same id."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.outstanding: dict[str, tuple[Submission, int]] = {}


# ---------------------------------------------------------------- the world


@dataclass(frozen=True, slots=True)
class SimResult:
    """What one seed's run did and whether every check held.

    Attributes:
        seed, mutant: what ran.
        passed: every check held; failure: what broke, with the seed (else '').
        height: the sequencer's head at the end; ticks: simulated time taken.
        head_hash: hex hash of the sequencer's last block (the same seed always ends on it).
        counts: faults injected and work done, by name (messages_lost, crashes, writes_torn, ...).
    """

    seed: int
    mutant: str | None
    passed: bool
    failure: str
    height: int
    ticks: int
    head_hash: str
    counts: dict[str, int]

    @property
    def replay(self) -> str:
        return replay_command(self.seed, self.mutant)


def replay_command(seed: int, mutant: str | None) -> str:
    return f"clearhouse simulate --seeds 1 --start {seed}" + (f" --mutant {mutant}" if mutant else "")


COUNTS = (
    "messages", "messages_lost", "messages_duplicated", "messages_delayed", "messages_reordered",
    "messages_to_down_nodes", "crashes_sequencer", "crashes_replica", "crashes_mid_append",
    "restarts", "writes_lost", "writes_torn", "writes_survived", "retries", "duplicate_blocks_ignored",
    "fetch_requests", "blocks_fetched", "hostile_submissions", "blocks", "submissions",
    "trades_submitted", "trades_accepted", "instructions_settled", "instructions_failed",
)


class World:
    """One seed's system: the sequencer, replicas, clients, the bus, the reference and the checks."""

    def __init__(self, seed: int, mutant: Mutant | None) -> None:
        self.seed = seed
        self.cfg = choose_config(seed)
        self.mutant = mutant
        self.rng = random.Random(f"clearhouse-sim/{seed}/faults")
        self.counts = dict.fromkeys(COUNTS, 0)
        self.bus = Bus(self.cfg, random.Random(f"clearhouse-sim/{seed}/bus"), self.counts)
        self.keys = SeededKeys(seed)
        scenario = build_scenario(self.cfg, random.Random(f"clearhouse-sim/{seed}/market"))
        self.security_ids = scenario.securities["security_id"].to_list()
        steps = list(plan(scenario, self.keys, self.cfg.market.cycle_days))
        self.genesis = steps[0].build()[0]
        self.phases = phases_of(steps)
        self.phase = -1
        self.chain_at: list[int] = []
        self.day = steps[0].day
        self.day_start = 0
        self.now = 0
        self.faulty = True
        self.node_class = node_class(mutant.machine if mutant else StateMachine)
        self.sync_every = mutant.sequencer_sync_every if mutant else 1
        self.sequencer_key = self.keys[SEQUENCER]
        self.sequencer = self._host(SEQUENCER)
        self.replicas = [self._host(name) for name in self.cfg.replicas]
        self.clients: dict[str, Client] = {}
        self.reference = Reference()
        self.snapshots: dict[int, Snapshot] = {}
        self.published: list[bytes] = []
        self.acknowledged: dict[str, str] = {}
        self.hostile = 0

    def _host(self, name: str) -> Host:
        rng = random.Random(f"clearhouse-sim/{self.seed}/store/{name}")
        return Host(name, FaultyStore(MemoryStore(), rng, self.cfg.torn_rate))

    # ---------------------------------------------------------------- the run

    def run(self) -> SimResult:
        try:
            self._start()
            while not self._finished():
                if self.now >= TICKS_MAX:
                    raise SimFailure(f"no convergence after {TICKS_MAX} ticks (workload phase "
                                     f"{self.phase + 1} of {len(self.phases)})")
                if self.faulty and (self.now >= self.cfg.fault_ticks or self.phase >= len(self.phases)):
                    self._end_faults()
                self._tick()
                self.now += 1
            self._final_checks()
        except SimFailure as exc:
            return self._result(str(exc))
        except Exception as exc:  # a fault of the core (or of the simulation) still names its seed
            return self._result(f"{type(exc).__name__}: {exc}")
        return self._result("")

    def _result(self, failure: str) -> SimResult:
        for host in (self.sequencer, *self.replicas):
            c = host.store.counts
            self.counts["writes_lost"] += c.lost
            self.counts["writes_torn"] += c.torn
            self.counts["writes_survived"] += c.survived
            self.counts["crashes_mid_append"] += c.mid_append
        ref = self.reference
        self.counts["blocks"] = len(self.published)
        self.counts["trades_submitted"] = ref.trades_submitted
        self.counts["trades_accepted"] = ref.trades_accepted
        self.counts["instructions_settled"] = sum(i.settled for _, cyc in ref.cycles for i in cyc)
        self.counts["instructions_failed"] = sum(not i.settled for _, cyc in ref.cycles for i in cyc)
        name = self.mutant.name if self.mutant else None
        if failure:
            failure = f"seed {self.seed}, tick {self.now}: {failure} (replay: {replay_command(self.seed, name)})"
        head = self.published[-1].hex() if self.published else ""
        return SimResult(self.seed, name, not failure, failure, len(self.published) - 1, self.now, head,
                         dict(self.counts))

    def _start(self) -> None:
        """Genesis is cut before any fault; then the first phase of the workload is released."""
        node = self.node_class.replay(self.sequencer.store, self.sequencer_key)
        self.sequencer.node = node
        node.submit(self.genesis)
        torn_rate, self.sequencer.store.torn_rate = self.sequencer.store.torn_rate, 0.0
        self._seal(self.sequencer, node)
        self.sequencer.store.torn_rate = torn_rate
        for host in self.replicas:
            host.node = self.node_class.replay(host.store, None)
        self._next_phase()

    def _finished(self) -> bool:
        if self.faulty or self.phase < len(self.phases) or self.sequencer.node is None:
            return False
        head = self.sequencer.node.height
        return all(h.node is not None and h.node.height == head for h in self.replicas)

    def _end_faults(self) -> None:
        self.faulty = False
        self.bus.faulty = False
        for host in (self.sequencer, *self.replicas):
            host.store.torn_rate = 0.0
            if not host.up:
                self._restart(host)

    def _tick(self) -> None:
        for dst, msg in self.bus.due(self.now):
            self._deliver(dst, msg)
        seq = self.sequencer.node
        if seq is not None and seq.queued() and self.rng.random() < self.cfg.seal_rate:
            self._seal(self.sequencer, seq)
        for host in self.replicas:
            if host.node is not None and self.now - host.last_fetch >= self.cfg.poll_ticks:
                self._fetch(host, host.node)
        for client in self.clients.values():
            for sub, sent in list(client.outstanding.values()):
                if self.now - sent >= self.cfg.retry_ticks:
                    self.counts["retries"] += 1
                    self._send(client, sub)
        if self.faulty:
            self._faults()

    def _faults(self) -> None:
        for host in (self.sequencer, *self.replicas):
            rate = self.cfg.sequencer_crash_rate if host is self.sequencer else self.cfg.crash_rate
            if host.up and self.rng.random() < rate:
                host.store.crash()
                self._down(host)
            elif not host.up and self.now >= host.down_until:
                self._restart(host)
        if self.rng.random() < self.cfg.hostile_rate:
            self.counts["hostile_submissions"] += 1
            self.bus.send(self.now, SEQUENCER, SubmitMsg(self._hostile_submission()))

    # ---------------------------------------------------------------- crashes

    def _down(self, host: Host) -> None:
        host.node = None
        host.buffer.clear()
        host.applied_since_sync = 0
        host.down_until = self.now + self.rng.randint(1, self.cfg.restart_ticks_max)
        self.counts["crashes_sequencer" if host is self.sequencer else "crashes_replica"] += 1

    def _restart(self, host: Host) -> None:
        """Recover the store, replay it from genesis (state roots checked), compare with the reference."""
        durable = host.store.durable
        mark = durable.head_height()
        mark_hash = durable.block(mark).header.hash() if mark >= 0 else b""
        host.store.recover()
        if durable.head_height() < mark or (mark >= 0 and durable.block(mark).header.hash() != mark_hash):
            raise SimFailure(f"{host.name}: recovery lost or changed durable block {mark}")
        key = self.sequencer_key if host is self.sequencer else None
        try:
            node = self.node_class.replay(host.store, key)
        except InvariantViolation as exc:
            raise SimFailure(f"{host.name}: invariant broke replaying its store: {exc}") from exc
        host.node = node
        self.counts["restarts"] += 1
        if host is self.sequencer:
            # an append cut short by a crash may have landed whole: announce what was never announced
            for height in range(len(self.published), node.height + 1):
                self._publish(host.store.block(height), host.store.receipts(height))
        if node.height >= len(self.published):
            raise SimFailure(f"{host.name} holds block {node.height}, which was never announced")
        if node.height >= 0:
            self._compare(host.name, node)
            if host is not self.sequencer and node.head_hash != self.published[node.height]:
                raise SimFailure(f"{host.name} replayed to another block {node.height} than announced")

    # ---------------------------------------------------------------- the sequencer

    def _seal(self, host: Host, node: SimNode) -> None:
        seconds = 7 * 3600 + self.now - self.day_start
        stamp = f"{self.day.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
        try:
            block = node.seal(self.day, stamp)
        except CrashPoint:
            self._down(host)
            return
        except InvariantViolation as exc:
            raise SimFailure(f"invariant broke on {host.name} at height {node.height + 1}: {exc}") from exc
        if (block.height + 1) % self.sync_every == 0:
            host.store.sync()
        self._publish(block, host.store.receipts(block.height))
        for replica in self.replicas:
            self.bus.send(self.now, replica.name, BlockMsg(block))
        for sub, raw in zip(block.submissions, host.store.receipts(block.height), strict=True):
            if sub.submitter in self.clients:
                _, status, _ = decode_receipt(raw)
                self.bus.send(self.now, f"client:{sub.submitter}", AckMsg(sub.submission_id, status, block.height))

    def _publish(self, block: Block, receipts: list[bytes]) -> None:
        """A block is announced: check it is the only one at its height, run the reference, compare."""
        h = block.height
        if h < len(self.published):
            if self.published[h] != block.header.hash():
                raise SimFailure(f"fork: the sequencer announced two different blocks at height {h}")
            return
        self.published.append(block.header.hash())
        self.counts["submissions"] += len(block.submissions)
        expected = self.reference.apply_block(h, dt.date.fromisoformat(block.header.business_date),
                                              block.submissions)
        problems = outcome_diff(expected, receipts) + self.reference.invariant_problems()
        if problems:
            raise SimFailure(f"block {h}: " + "; ".join(problems))
        self.snapshots[h] = self.reference.snapshot()
        node = self.sequencer.node
        if node is not None and node.height == h:
            self._compare(SEQUENCER, node)
            if any(s.kind == Kind.settle for s in block.submissions):
                diff = cycle_diff(self.reference, node.machine)
                if diff:
                    raise SimFailure(f"block {h}: " + "; ".join(diff))

    def _compare(self, name: str, node: Node) -> None:
        diff = snapshot_diff(self.snapshots[node.height], observe(node.machine))
        if diff:
            raise SimFailure(f"{name} at height {node.height} differs from the reference: " + "; ".join(diff))

    # ---------------------------------------------------------------- delivery

    def _send(self, client: Client, sub: Submission) -> None:
        client.outstanding[sub.submission_id] = (sub, self.now)
        self.bus.send(self.now, SEQUENCER, SubmitMsg(sub))

    def _deliver(self, dst: str, msg: Message) -> None:
        if dst.startswith("client:"):
            if isinstance(msg, AckMsg):
                self._acknowledged(self.clients[dst.removeprefix("client:")], msg)
            return
        host = self.sequencer if dst == SEQUENCER else next(h for h in self.replicas if h.name == dst)
        if host.node is None:
            self.counts["messages_to_down_nodes"] += 1
            return
        if isinstance(msg, SubmitMsg):
            host.node.submit(msg.submission)
        elif isinstance(msg, FetchMsg):
            last = min(host.node.height, msg.from_height + FETCH_BLOCKS_MAX - 1)
            for height in range(msg.from_height, last + 1):
                self.counts["blocks_fetched"] += 1
                self.bus.send(self.now, msg.replica, BlockMsg(host.store.block(height)))
        elif isinstance(msg, BlockMsg):
            self._receive_block(host, host.node, msg.block)

    def _fetch(self, host: Host, node: SimNode) -> None:
        host.last_fetch = self.now
        self.counts["fetch_requests"] += 1
        self.bus.send(self.now, SEQUENCER, FetchMsg(host.name, node.height + 1))

    def _receive_block(self, host: Host, node: SimNode, block: Block) -> None:
        """Ignore what is held, keep what is ahead, apply strictly in height order, ask for gaps."""
        if block.height <= node.height:
            self.counts["duplicate_blocks_ignored"] += 1
            if host.store.block(block.height).header.hash() != block.header.hash():
                raise SimFailure(f"{host.name} received another block {block.height} than it holds (a fork)")
            return
        if len(host.buffer) < BUFFERED_BLOCKS_MAX:
            host.buffer[block.height] = block
        while node.height + 1 in host.buffer:
            nxt = host.buffer.pop(node.height + 1)
            try:
                node.apply(nxt, self.sequencer_key.public_key)
            except CrashPoint:
                self._down(host)
                return
            except InvariantViolation as exc:
                raise SimFailure(f"invariant broke on {host.name} at height {nxt.height}: {exc}") from exc
            except SimFailure as exc:
                raise SimFailure(f"{host.name}: {exc}") from exc
            self._compare(host.name, node)
            host.applied_since_sync += 1
            if host.applied_since_sync >= self.cfg.replica_sync_every:
                host.store.sync()
                host.applied_since_sync = 0
        if host.buffer and self.now - host.last_fetch >= 2:
            self._fetch(host, node)

    # ---------------------------------------------------------------- the workload

    def _client(self, name: str) -> Client:
        if name not in self.clients:
            self.clients[name] = Client(name)
        return self.clients[name]

    def _next_phase(self) -> None:
        self.phase += 1
        if self.phase >= len(self.phases):
            return
        phase = self.phases[self.phase]
        if phase.day != self.day:
            self.day, self.day_start = phase.day, self.now
        self.chain_at = [0] * len(phase.chains)
        for chain in phase.chains:
            self._send(self._client(chain[0].submitter), chain[0])

    def _acknowledged(self, client: Client, ack: AckMsg) -> None:
        if ack.submission_id not in client.outstanding:
            return
        del client.outstanding[ack.submission_id]
        if ack.status not in DONE_STATUSES:
            raise SimFailure(f"{client.name}'s submission {ack.submission_id} was answered {ack.status}")
        self.acknowledged[ack.submission_id] = client.name
        if self.phase >= len(self.phases):
            return
        chains = self.phases[self.phase].chains
        for i, chain in enumerate(chains):
            at = self.chain_at[i]
            if at < len(chain) and chain[at].submission_id == ack.submission_id:
                self.chain_at[i] = at + 1
                if at + 1 < len(chain):
                    self._send(self._client(chain[at + 1].submitter), chain[at + 1])
        if all(at == len(chain) for at, chain in zip(self.chain_at, chains, strict=True)):
            self._next_phase()

    def _hostile_submission(self) -> Submission:
        """Forged, reused, unauthorised, unknown or malformed: the ledger must refuse each, harmlessly."""
        self.hostile += 1
        sid = f"hostile-{self.hostile}"
        members = [f"M{i:03d}" for i in range(self.cfg.market.members)]
        m = self.rng.choice(members)
        others = [x for x in members if x != m]
        row = {"trade_id": sid, "trade_date": self.day.isoformat(), "buyer": others[0],
               "seller": others[-1], "security_id": self.security_ids[0], "quantity": "100", "price": "1",
               "settlement_date": self.day.isoformat()}
        batch = encode_trades(pl.DataFrame([row], schema=dict.fromkeys(TRADE_COLUMNS, pl.String)))
        how = self.rng.choice(("forged", "reused_id", "not_party", "unknown", "unauthorised", "malformed"))
        if how == "forged":
            return sign(self.keys[HOSTILE], m, sid, Kind.trades, batch)
        if how == "reused_id" and self.acknowledged:
            old = self.rng.choice(sorted(self.acknowledged))
            owner = self.acknowledged[old]
            return sign(self.keys[owner], owner, old, Kind.trades, batch)
        if how == "unknown":
            return sign(self.keys[HOSTILE], HOSTILE, sid, Kind.trades, batch)
        if how == "unauthorised":
            return sign(self.keys[m], m, sid, Kind.settle, encode_json({"settlement_date": self.day.isoformat()}))
        if how == "malformed":
            return sign(self.keys[m], m, sid, Kind.trades, b"\x00not a batch")
        return sign(self.keys[m], m, sid, Kind.trades, batch)

    # ---------------------------------------------------------------- the end

    def _final_checks(self) -> None:
        """After convergence (every node up, every replica at the sequencer's height)."""
        seq = self.sequencer.node
        if seq is None:
            raise SimFailure("the sequencer is down at the end")
        self.sequencer.store.sync()
        for host in self.replicas:
            if host.node is None or (host.node.head_hash, host.node.machine.state_root()) != (
                seq.head_hash, seq.machine.state_root()
            ):
                raise SimFailure(f"{host.name} ends on another head than the sequencer")
        durable = self.sequencer.store.durable
        for sid in self.acknowledged:
            if durable.submission_height(sid) is None:
                raise SimFailure(f"acknowledged submission {sid} is not in the sequencer's durable ledger")
        report = verify_store(durable)
        if not report.verified:
            raise SimFailure(f"the sequencer's ledger does not verify at block {report.first_bad_height}: "
                             f"{report.reason}")
        if seq.machine.history.submitted != self.reference.trades_submitted:
            raise SimFailure(f"{seq.machine.history.submitted} trades submitted on the ledger, "
                             f"{self.reference.trades_submitted} in the reference")


def run_simulation(seed: int, *, mutant: str | None = None) -> SimResult:
    """Run one seed's world to the end; the result says whether every check held."""
    if mutant is not None and mutant not in MUTANTS:
        raise ValueError(f"unknown mutant {mutant!r}; known: {', '.join(MUTANTS)}")
    return World(seed, MUTANTS[mutant] if mutant else None).run()


def run_seeds(
    start: int,
    count: int,
    *,
    mutant: str | None = None,
    fail_fast: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list[SimResult]:
    """Seeds ``start`` to ``start + count - 1`` in order; with ``fail_fast``, up to the first failure."""
    results: list[SimResult] = []
    for n, seed in enumerate(range(start, start + count)):
        results.append(run_simulation(seed, mutant=mutant))
        if progress:
            progress(n + 1, count)
        if fail_fast and not results[-1].passed:
            break
    return results


def totals(results: list[SimResult]) -> dict[str, int]:
    """Every count summed over the results, in the documented order."""
    return {name: sum(r.counts[name] for r in results) for name in COUNTS}
