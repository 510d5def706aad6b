"""Benchmark of the DvP settlement optimiser: settled value against the LP bound, and wall time.

Builds a seeded batch of heavy-tailed DvP instructions (1,000,000 across 5,000 accounts by
default), funds every account with a fraction of what it must pay and deliver, runs the
deselection heuristic on the whole batch and the integer program (time-limited) on a 20,000
instruction slice, and reports each answer as a percentage of the LP relaxation bound of the same
batch. The LP on the full batch may not finish in its time limit; the bound is then computed on
the largest prefix of the batch (rebuilt with the same funding rule) that does, and the report
says which size each bound covers.

Run: ``python benchmarks/bench_settlement.py [--quick] [--out FILE]``; prints JSON and writes it
to ``benchmarks/results/bench_settlement.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from clearhouse.settlement.optimize import InstructionSet, settle_max_value

SEED = 20240527
N_FULL = 1_000_000
N_ACCOUNTS = 5_000
N_SECURITIES = 100
N_CURRENCIES = 3
CASH_FRACTION = 0.30
SECURITIES_FRACTION = 0.30
LINKED_SHARE = 0.10
PARTIAL_SHARE = 0.50
MILP_N = 20_000
MILP_TIME_LIMIT_S = 60.0
LP_TIME_LIMIT_S = 60.0


def make_batch(
    n: int, n_accounts: int, seed: int = SEED
) -> tuple[InstructionSet, np.ndarray, np.ndarray]:
    """A heavy-tailed batch and opening balances funding a fraction of each account's needs.

    Account activity and security popularity follow Pareto weights (a few very active accounts
    and popular securities); quantities and prices are log-normal. About ``LINKED_SHARE`` of the
    instructions come in linked pairs, ``PARTIAL_SHARE`` allow partial settlement with lots of
    1, 10 or 100. Each account holds ``SECURITIES_FRACTION`` of the units it must deliver per
    security and ``CASH_FRACTION`` of the cash it must pay per currency (rounded down).
    """
    rng = np.random.default_rng(seed)
    acc_w = rng.pareto(1.2, n_accounts) + 1.0
    acc_w /= acc_w.sum()
    sec_w = rng.pareto(1.0, N_SECURITIES) + 1.0
    sec_w /= sec_w.sum()
    deliverer = rng.choice(n_accounts, size=n, p=acc_w)
    receiver = rng.choice(n_accounts, size=n, p=acc_w)
    clash = receiver == deliverer
    receiver[clash] = (receiver[clash] + 1 + rng.integers(0, n_accounts - 1, int(clash.sum()))) \
        % n_accounts
    security = rng.choice(N_SECURITIES, size=n, p=sec_w)
    sec_ccy = rng.integers(0, N_CURRENCIES, N_SECURITIES)
    price = np.exp(rng.normal(8.0, 1.0, N_SECURITIES))
    quantity = np.minimum(np.ceil(np.exp(rng.normal(4.0, 1.5, n))), 10**7).astype(np.int64)
    cash = np.maximum(np.rint(quantity * price[security] * np.exp(rng.normal(0, 0.02, n))), 1)
    pair = rng.random(n // 2) < LINKED_SHARE
    link = np.full(n, -1, dtype=np.int64)
    pair_idx = np.flatnonzero(pair)
    link[2 * pair_idx] = pair_idx
    link[2 * pair_idx + 1] = pair_idx
    instr = InstructionSet.create(
        deliverer=deliverer,
        receiver=receiver,
        security=security,
        quantity=quantity,
        currency=sec_ccy[security],
        cash=cash.astype(np.int64),
        link=link,
        partial_allowed=rng.random(n) < PARTIAL_SHARE,
        lot_size=rng.choice(np.array([1, 10, 100]), size=n),
    )
    return instr, *fund(instr, n_accounts)


def fund(instr: InstructionSet, n_accounts: int) -> tuple[np.ndarray, np.ndarray]:
    """Opening balances: the configured fraction of each account's gross deliveries and payments."""
    sec = np.zeros((n_accounts, N_SECURITIES), dtype=np.int64)
    cash = np.zeros((n_accounts, N_CURRENCIES), dtype=np.int64)
    np.add.at(sec, (instr.deliverer, instr.security), instr.quantity)
    np.add.at(cash, (instr.receiver, instr.currency), instr.cash)
    return (
        np.floor(sec * SECURITIES_FRACTION).astype(np.int64),
        np.floor(cash * CASH_FRACTION).astype(np.int64),
    )


def prefix(instr: InstructionSet, m: int) -> InstructionSet:
    """The first ``m`` instructions (a link pair is never split: pairs sit at even offsets)."""
    m -= m % 2
    return InstructionSet(
        deliverer=instr.deliverer[:m], receiver=instr.receiver[:m], security=instr.security[:m],
        quantity=instr.quantity[:m], currency=instr.currency[:m], cash=instr.cash[:m],
        link=instr.link[:m], partial_allowed=instr.partial_allowed[:m],
        lot_size=instr.lot_size[:m], min_partial_value=instr.min_partial_value,
    )


def run_case(instr: InstructionSet, n_accounts: int, allow_partial: bool, exact: bool,
             bound: bool, time_limit_s: float) -> dict[str, Any]:
    sec, cash = fund(instr, n_accounts)
    start = time.perf_counter()
    choice = settle_max_value(
        instr, sec, cash, time_limit_s=time_limit_s,
        exact_max_n=instr.n if exact else 0, allow_partial=allow_partial,
        compute_lp_bound=bound,
    )
    wall = time.perf_counter() - start
    total = int(instr.cash.sum())
    out: dict[str, Any] = {
        "n": instr.n,
        "allow_partial": allow_partial,
        "method": str(choice.method),
        "status": str(choice.status),
        "wall_s": round(wall, 3),
        "settled_value": choice.settled_value,
        "settled_count": int(choice.settled.sum()),
        "total_value": total,
        "settled_pct_of_total": round(100.0 * choice.settled_value / total, 3),
    }
    if bound:
        out["lp_bound"] = choice.lp_bound
        out["lp_optimal"] = choice.lp_optimal
        if choice.lp_optimal:
            out["settled_pct_of_lp_bound"] = round(100.0 * choice.settled_value / choice.lp_bound, 3)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark; ``quick`` uses 100,000 instructions and 500 accounts."""
    n_full = 100_000 if quick else N_FULL
    n_accounts = 500 if quick else N_ACCOUNTS
    lp_sizes = [MILP_N, n_full // 10, n_full // 4, n_full // 2, n_full]
    instr, _, _ = make_batch(n_full, n_accounts)
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "seed": SEED,
        "accounts": n_accounts,
        "securities": N_SECURITIES,
        "currencies": N_CURRENCIES,
        "cash_fraction": CASH_FRACTION,
        "securities_fraction": SECURITIES_FRACTION,
        "greedy_full": [],
        "bounded": [],
        "milp_slice": [],
    }
    for allow_partial in (False, True):
        results["greedy_full"].append(
            run_case(instr, n_accounts, allow_partial, exact=False, bound=False,
                     time_limit_s=LP_TIME_LIMIT_S))
        for m in lp_sizes:
            case = run_case(prefix(instr, m), n_accounts, allow_partial, exact=False,
                            bound=True, time_limit_s=LP_TIME_LIMIT_S)
            results["bounded"].append(case)
            if not case["lp_optimal"]:
                break
        results["milp_slice"].append(
            run_case(prefix(instr, MILP_N), n_accounts, allow_partial, exact=True, bound=True,
                     time_limit_s=MILP_TIME_LIMIT_S))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 instructions")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "bench_settlement.json")
    args = parser.parse_args()
    results = run(quick=args.quick)
    text = json.dumps(results, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
