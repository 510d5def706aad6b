"""Benchmark of the DvP settlement optimiser: settled value against the LP bound, and wall time.

Builds a seeded batch of heavy-tailed DvP instructions (1,000,000 across 5,000 accounts by
default) and funds every account with a fraction of its gross needs: per security, a share of
the units it must deliver; per currency, a share of the cash it must pay. Then, per scenario:

* ``greedy_full``: the deselection heuristic alone on the whole batch (wall time, value);
* ``bounded``: on prefixes of growing size (each funded by the same rule), the heuristic alone
  and the full pipeline with the LP relaxation (heuristic, LP rounding, bound), as a percentage
  of the LP bound of the same prefix; sizes stop at the first whose LP does not finish within
  ``LP_TIME_LIMIT_S``, so the largest size listed with ``lp_optimal`` is the largest the bound
  covers;
* ``milp_slice``: the integer program with a time limit on the first 20,000 instructions, whose
  proven upper bound shows how far the LP bound itself is from the best achievable value.

Scenarios: ``mixed`` (10% of instructions in linked pairs, half allowed to settle in part in
lots of 1, 10 or 100), run without and with partial settlement; ``divisible`` (every
instruction may settle in part, lot 1, no links), where the LP relaxation is nearly exact.

Run: ``python benchmarks/bench_settlement.py [--quick] [--out FILE]`` prints the figures as JSON
(and writes them to FILE); ``benchmarks/run_all.py`` calls :func:`run` and renders them into
docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from typing import Any

import numpy as np
import standalone  # benchmarks/standalone.py

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
PREFIX_SIZES = (20_000, 100_000, 250_000, 500_000, 1_000_000)


def make_batch(n: int, n_accounts: int, seed: int = SEED) -> InstructionSet:
    """A heavy-tailed batch of ``n`` instructions (the ``mixed`` scenario).

    Account activity and security popularity follow Pareto weights (a few very active accounts
    and popular securities); quantities and prices are log-normal. About ``LINKED_SHARE`` of
    the instructions come in linked pairs at even offsets, so a prefix of even length never
    splits a pair; ``PARTIAL_SHARE`` allow partial settlement with lots of 1, 10 or 100.
    """
    rng = np.random.default_rng(seed)
    acc_w = rng.pareto(1.2, n_accounts) + 1.0
    sec_w = rng.pareto(1.0, N_SECURITIES) + 1.0
    deliverer = rng.choice(n_accounts, size=n, p=acc_w / acc_w.sum())
    receiver = rng.choice(n_accounts, size=n, p=acc_w / acc_w.sum())
    clash = receiver == deliverer
    receiver[clash] = (
        receiver[clash] + 1 + rng.integers(0, n_accounts - 1, int(clash.sum()))
    ) % n_accounts
    security = rng.choice(N_SECURITIES, size=n, p=sec_w / sec_w.sum())
    sec_ccy = rng.integers(0, N_CURRENCIES, N_SECURITIES)
    price = np.exp(rng.normal(8.0, 1.0, N_SECURITIES))
    quantity = np.minimum(np.ceil(np.exp(rng.normal(4.0, 1.5, n))), 10**7).astype(np.int64)
    cash = np.maximum(np.rint(quantity * price[security] * np.exp(rng.normal(0, 0.02, n))), 1)
    pair_idx = np.flatnonzero(rng.random(n // 2) < LINKED_SHARE)
    link = np.full(n, -1, dtype=np.int64)
    link[2 * pair_idx] = pair_idx
    link[2 * pair_idx + 1] = pair_idx
    return InstructionSet.create(
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


def divisible(instr: InstructionSet) -> InstructionSet:
    """The same instructions, each allowed to settle in part in lots of 1, none linked."""
    n = instr.n
    return replace(instr, link=np.full(n, -1, dtype=np.int64),
                   partial_allowed=np.ones(n, dtype=bool), lot_size=np.ones(n, dtype=np.int64))


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
    """The first ``m`` instructions (``m`` even, so no linked pair is split)."""
    m -= m % 2
    return replace(
        instr, deliverer=instr.deliverer[:m], receiver=instr.receiver[:m],
        security=instr.security[:m], quantity=instr.quantity[:m], currency=instr.currency[:m],
        cash=instr.cash[:m], link=instr.link[:m], partial_allowed=instr.partial_allowed[:m],
        lot_size=instr.lot_size[:m],
    )


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 3) if whole else 100.0


def _timed(instr: InstructionSet, n_accounts: int, **kwargs: Any) -> tuple[Any, float]:
    sec, cash = fund(instr, n_accounts)
    start = time.perf_counter()
    choice = settle_max_value(instr, sec, cash, **kwargs)
    return choice, round(time.perf_counter() - start, 3)


def greedy_case(instr: InstructionSet, n_accounts: int, allow_partial: bool) -> dict[str, Any]:
    choice, wall = _timed(instr, n_accounts, exact_max_n=0, compute_lp_bound=False,
                          allow_partial=allow_partial)
    total = int(instr.cash.sum())
    return {
        "n": instr.n, "allow_partial": allow_partial, "wall_s": wall, "settled_value": choice.settled_value,
        "settled_count": int(choice.settled.sum()), "total_value": total,
        "settled_pct_of_total": _pct(choice.settled_value, total),
    }


def bounded_case(instr: InstructionSet, n_accounts: int, allow_partial: bool) -> dict[str, Any]:
    greedy = greedy_case(instr, n_accounts, allow_partial)
    choice, wall = _timed(instr, n_accounts, exact_max_n=0, allow_partial=allow_partial,
                          time_limit_s=LP_TIME_LIMIT_S)
    return {
        "n": instr.n,
        "lp_optimal": choice.lp_optimal,
        "lp_bound": choice.lp_bound,
        "lp_bound_pct_of_total": _pct(choice.lp_bound, greedy["total_value"]),
        "greedy_wall_s": greedy["wall_s"],
        "greedy_pct_of_lp_bound": _pct(greedy["settled_value"], choice.lp_bound),
        "with_lp_wall_s": wall,
        "with_lp_method": str(choice.method),
        "with_lp_pct_of_lp_bound": _pct(choice.settled_value, choice.lp_bound),
    }


def milp_case(instr: InstructionSet, n_accounts: int, allow_partial: bool,
              time_limit_s: float) -> dict[str, Any]:
    greedy = greedy_case(instr, n_accounts, allow_partial)
    choice, wall = _timed(instr, n_accounts, exact_max_n=instr.n, allow_partial=allow_partial,
                          time_limit_s=time_limit_s)
    return {
        "n": instr.n,
        "time_limit_s": time_limit_s,
        "wall_s": wall,
        "status": str(choice.status),
        "method": str(choice.method),
        "settled_value": choice.settled_value,
        "upper_bound": choice.upper_bound,
        "lp_bound": choice.lp_bound,
        "gap_pct": round(choice.gap_pct, 4),
        "best_pct_of_lp_bound": _pct(choice.settled_value, choice.lp_bound),
        "upper_bound_pct_of_lp_bound": _pct(choice.upper_bound, choice.lp_bound),
        "greedy_pct_of_best": _pct(greedy["settled_value"], choice.settled_value),
    }


def scenario(instr: InstructionSet, n_accounts: int, allow_partial: bool,
             milp_time_limit_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "greedy_full": greedy_case(instr, n_accounts, allow_partial),
        "bounded": [],
    }
    for m in (size for size in PREFIX_SIZES if size <= instr.n):
        case = bounded_case(prefix(instr, m), n_accounts, allow_partial)
        out["bounded"].append(case)
        if not case["lp_optimal"]:
            break
    out["milp_slice"] = milp_case(prefix(instr, MILP_N), n_accounts, allow_partial,
                                  milp_time_limit_s)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    """Run every scenario; ``quick`` uses 100,000 instructions, 500 accounts, 20 s MILP."""
    n_full = 100_000 if quick else N_FULL
    n_accounts = 500 if quick else N_ACCOUNTS
    milp_limit = 20.0 if quick else MILP_TIME_LIMIT_S
    mixed = make_batch(n_full, n_accounts)
    return {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "config": {
            "seed": SEED, "n": n_full, "accounts": n_accounts, "securities": N_SECURITIES,
            "currencies": N_CURRENCIES, "cash_fraction": CASH_FRACTION,
            "securities_fraction": SECURITIES_FRACTION, "linked_share": LINKED_SHARE,
            "partial_share": PARTIAL_SHARE, "lp_time_limit_s": LP_TIME_LIMIT_S,
        },
        "mixed_all_or_none": scenario(mixed, n_accounts, False, milp_limit),
        "mixed_partial": scenario(mixed, n_accounts, True, milp_limit),
        "divisible": scenario(divisible(mixed), n_accounts, True, milp_limit),
    }


if __name__ == "__main__":
    standalone.main(run, __doc__.splitlines()[0], "100,000 instructions")
