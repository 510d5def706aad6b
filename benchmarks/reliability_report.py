"""Reliability figures: simulated seeds, real processes killed and restarted, fuzzed inputs.

Runs, from the repository root:

1. ``clearhouse simulate --seeds N --json`` (the deterministic simulation, every fault type) and,
   for every deliberately broken variant, ``clearhouse simulate --mutant M --fail-fast``;
2. a crash campaign: ``clearhouse run`` killed with SIGKILL K times and restarted (the harness of
   tests/reliability/test_crash.py), checked after every kill and against an uninterrupted run;
3. seeded random inputs through the same checkers as tests/reliability/test_fuzz.py: random and
   damaged batch bytes, hostile trade batches against the reference model, damaged scenario files;

and writes the figures into docs/RELIABILITY.md between its ``figures`` markers.

    python benchmarks/reliability_report.py [--seeds 200] [--kills 40] [--fuzz 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import polars as pl  # noqa: E402
from run_all import machine  # noqa: E402
from tests.reliability.test_crash import crash_campaign  # noqa: E402
from tests.reliability.test_fuzz import MEMBERS, POOLS, ledger, mutate, trades  # noqa: E402

from clearhouse.clearing.batch import TRADE_COLUMNS, encode_trades, encode_trades_json  # noqa: E402
from clearhouse.cycle.run import EXCHANGE  # noqa: E402
from clearhouse.cycle.scenario import write_scenario  # noqa: E402
from clearhouse.market.synthetic import MarketSpec, generate_market  # noqa: E402
from clearhouse.sim import MUTANTS  # noqa: E402
from clearhouse.sim.checkers import SimFailure, check_decode_trades, check_scenario_dir  # noqa: E402

MUTANT_SEEDS_MAX = 300
#: characters random fields are drawn from: printable ASCII, whitespace of several kinds, control
#: characters, letters and digits of other scripts
ALPHABET = [chr(c) for c in range(32, 127)] + list("\t\n\r\x0b\x0c\x00\x1c\x7f\x85\xa0\u2003\u3000é߀٣３\U0001f600")


def cli(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "clearhouse.interfaces.cli", *args, "--json"],
                          capture_output=True, text=True, check=False)
    return json.loads(done.stdout)


def simulation(seeds: int) -> dict[str, Any]:
    body = cli("simulate", "--seeds", str(seeds))
    caught = {}
    for name in MUTANTS:
        run = cli("simulate", "--seeds", str(MUTANT_SEEDS_MAX), "--mutant", name, "--fail-fast")
        caught[name] = run["failures"][0]["seed"] if run["failures"] else None
    body["mutants_caught_at_seed"] = caught
    return body


def crashes(kills: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        c = crash_campaign(Path(work), kills, seed=20260302)
    return {
        "kills": c.kills,
        "blocks in the full run": c.reference["ledger"]["height"] + 1,
        "distinct kill points (blocks stored)": len(set(c.blocks_at_kill)),
        "kills before the first block": sum(b == 0 for b in c.blocks_at_kill),
        "kills after the last block": sum(b == c.reference["ledger"]["height"] + 1 for b in c.blocks_at_kill),
        "blocks stored at each kill": ", ".join(str(b) for b in c.blocks_at_kill),
        "verify passed after every kill": c.verified_after_each,
        "resumed report identical to the uninterrupted run": c.resumed == c.reference,
    }


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def random_rows(rng: random.Random) -> list[dict[str, str]]:
    return [{c: rng.choice(POOLS.get(c, [""])) if rng.random() < 0.7 else random_text(rng) for c in TRADE_COLUMNS}
            for _ in range(rng.randint(0, 8))]


def kind_of(problem: str) -> str:
    """A failure's kind: the exception that escaped, or a difference from the reference."""
    if " raised " in problem:
        return problem.split(" raised ", 1)[1].split(":", 1)[0]
    return "differs from the reference"


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """A panic inside a native library prints its backtrace on file descriptor 2; the fuzz counts it."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def fuzz(n: int, seed: int) -> dict[str, dict[str, Any]]:
    rng = random.Random(seed)
    tallies: dict[str, Counter[str]] = {}

    def record(target: str, problems: list[str]) -> None:
        tally = tallies.setdefault(target, Counter())
        tally["inputs"] += 1
        for kind in {kind_of(p) for p in problems}:
            tally[kind] += 1

    def decode(payload: bytes) -> list[str]:
        try:
            check_decode_trades(payload)
        except SimFailure as exc:
            return [str(exc)]
        return []

    for _ in range(n):
        rows = random_rows(rng)
        ipc = encode_trades(pl.DataFrame(rows, schema=dict.fromkeys(TRADE_COLUMNS, pl.String)))
        record("decode: random bytes", decode(rng.randbytes(rng.randint(0, 600))))
        record("decode: damaged Arrow IPC", decode(mutate(ipc, rng, rng.randint(1, 8))))
        record("decode: damaged JSON", decode(mutate(encode_trades_json(rows), rng, rng.randint(1, 8))))
        led = ledger()
        submitter = rng.choice((EXCHANGE, *MEMBERS))
        problems = led.submit(trades(submitter, "b1", rows, rng.random() < 0.5))
        problems += led.submit(trades(EXCHANGE, "b2", rows[: len(rows) // 2] + random_rows(rng), rng.random() < 0.5))
        record("hostile trade batches, ledger against reference", problems)
    with tempfile.TemporaryDirectory() as work:
        base = Path(work) / "base"
        write_scenario(generate_market(MarketSpec(members=3, securities=3, trades=12, days=2, seed=4)), base)
        files = {p.name: p.read_bytes() for p in sorted(base.iterdir())}
        target = Path(work) / "mangled"
        target.mkdir()
        for _ in range(n):
            name = rng.choice(sorted(files))
            for p in target.iterdir():
                p.unlink()
            for other, data in files.items():
                (target / other).write_bytes(mutate(data, rng, rng.randint(1, 10)) if other == name else data)
            try:
                check_scenario_dir(target)
                record("damaged scenario CSV files", [])
            except SimFailure as exc:
                record("damaged scenario CSV files", [str(exc)])
    return {t: dict(c) for t, c in tallies.items()}


def render(figures: dict[str, Any]) -> str:
    sim, crash, fz = figures["simulation"], figures["crashes"], figures["fuzz"]
    t = sim["totals"]
    lines = [
        f"Produced by `python benchmarks/reliability_report.py --seeds {sim['seeds']} --kills {crash['kills']} "
        f"--fuzz {figures['fuzz_inputs']}` in {figures['seconds']:.0f} s on {figures['machine']['cpu']} "
        f"({figures['machine']['cores']} cores, shared), Python {figures['machine']['python']}, "
        f"polars {figures['machine']['polars']}.",
        "",
        "### Deterministic simulation",
        "",
        f"`clearhouse simulate --seeds {sim['seeds']} --json`: **{sim['passed']} of {sim['seeds']} seeds "
        f"passed every check** ({sim['ticks']:,} ticks simulated).",
        "",
        "| fault injected or work done | count |",
        "|---|---:|",
        *(f"| {name.replace('_', ' ')} | {value:,} |" for name, value in t.items()),
        "",
        "| broken variant (`--mutant`) | caught at seed |",
        "|---|---:|",
        *(f"| `{name}` | {seed if seed is not None else 'not caught'} |"
          for name, seed in sim["mutants_caught_at_seed"].items()),
    ]
    if sim["failures"]:
        lines += ["", "Failures:", "", *(f"- {f['failure']}" for f in sim["failures"])]
    lines += [
        "",
        "### Crash campaign with real processes",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in crash.items()),
        "",
        "### Fuzzed inputs",
        "",
        "| target | inputs | failures by kind |",
        "|---|---:|---|",
    ]
    for target, tally in fz.items():
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()) if k != "inputs") or "none"
        lines.append(f"| {target} | {tally['inputs']:,} | {kinds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--fuzz", type=int, default=1000, help="inputs per fuzz target")
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"simulating {args.seeds} seeds and every mutant ...", flush=True)
    figures: dict[str, Any] = {"simulation": simulation(args.seeds)}
    print(f"killing a run {args.kills} times ...", flush=True)
    figures["crashes"] = crashes(args.kills)
    print(f"fuzzing {args.fuzz} inputs per target ...", flush=True)
    with native_stderr_silenced():
        figures["fuzz"] = fuzz(args.fuzz, seed=1)
    figures.update(fuzz_inputs=args.fuzz, seconds=time.perf_counter() - started, machine=machine())
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{render(figures)}\n{END}{tail}")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
