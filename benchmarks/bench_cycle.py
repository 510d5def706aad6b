"""End-to-end cycle benchmark: a day of N trades from a Parquet file through intake, signing,
the ledger (SQLite), netting and T+0 net settlement; and netting against a bare aggregation.

Each size runs in a fresh subprocess so its peak memory (ru_maxrss) is its own; the market is
generated and written beforehand by another subprocess and is not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import standalone  # benchmarks/standalone.py

from clearhouse.clearing.netting import net_trades

PREPARE = """
import sys
from pathlib import Path
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.cycle.scenario import write_scenario
n, out = int(sys.argv[1]), Path(sys.argv[2])
sc = generate_market(MarketSpec(members=100, securities=2000, trades=n, days=1, cycle_days=0, seed=1))
write_scenario(sc.__class__(sc.participants, sc.securities, sc.holdings, sc.cash, sc.trades.head(0)), out)
(out / "trades.csv").unlink()
sc.trades.write_parquet(out / "trades.parquet")
"""

MEASURE = """
import json, resource, sys, time
from pathlib import Path
from clearhouse.cycle.scenario import load_scenario
from clearhouse.cycle.run import run_scenario
from clearhouse.cycle.report import build_report
sc_dir, data = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
sc = load_scenario(sc_dir)
t1 = time.perf_counter()
node = run_scenario(sc, data, 0)
t2 = time.perf_counter()
r = build_report(node, None)
print(json.dumps({
    "intake_s": t1 - t0, "run_s": t2 - t1, "total_s": t2 - t0,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "accepted": r["trades"]["accepted"], "blocks": node.height + 1,
    "reduction_pct": r["netting"]["reduction_pct"],
    "settled": r["settlement"]["settled"], "failed": r["settlement"]["failed"],
    "ledger_mb": (data / "ledger.sqlite").stat().st_size / 2**20,
}))
"""


def cycle(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sc, data = Path(tmp) / "scenario", Path(tmp) / "data"
        subprocess.run([sys.executable, "-c", PREPARE, str(n), str(sc)], check=True)
        out = subprocess.run([sys.executable, "-c", MEASURE, str(sc), str(data)], check=True,
                             capture_output=True, text=True).stdout
    result = json.loads(out)
    result["trades"] = n
    result["trades_per_s"] = n / result["total_s"]
    return result


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def netting_ratio(n: int, members: int = 100, securities: int = 2000) -> dict:
    """Our exact netting against a bare Polars group-by and bare numpy bincounts of the same arrays.

    The numpy baseline computes the same (member, security) keys and float64 sums, but neither
    checks exactness nor extracts the non-zero positions; the Polars one groups the two novated
    sides (already concatenated, not timed) and sums them.
    """
    rng = np.random.default_rng(5)
    buyer = rng.integers(0, members, n)
    seller = (buyer + 1 + rng.integers(0, members - 1, n)) % members
    sec = rng.integers(0, securities, n)
    qty = rng.integers(1, 5000, n)
    value = qty * rng.integers(100, 10_000, n)
    sd = np.zeros(n, dtype=np.int64)
    ccy = np.zeros(securities, dtype=np.int64)

    def ours() -> None:
        net_trades(buyer, seller, sec, qty, value, sd, members, securities, ccy, 1)

    frame = pl.DataFrame({
        "m": np.concatenate([buyer, seller]), "s": np.concatenate([sec, sec]),
        "q": np.concatenate([qty, -qty]), "c": np.concatenate([-value, value]),
    })

    def bare_polars() -> None:
        frame.group_by("m", "s").agg(pl.col("q").sum(), pl.col("c").sum())

    bins = members * securities

    def bare_numpy() -> None:
        # the same keys and sums in float64, without exactness, day codes or sparse extraction
        bk, sk = buyer * securities + sec, seller * securities + sec
        _ = np.bincount(bk, qty, bins) - np.bincount(sk, qty, bins)
        _ = np.bincount(sk, value, bins) - np.bincount(bk, value, bins)

    t_ours, t_pl, t_np = _best(ours), _best(bare_polars), _best(bare_numpy)
    return {
        "trades": n,
        "ours_s": t_ours,
        "bare_polars_s": t_pl,
        "bare_numpy_s": t_np,
        "ratio_vs_polars": t_ours / t_pl,
        "ratio_vs_numpy": t_ours / t_np,
        "ours_trades_per_s": n / t_ours,
    }


def run(quick: bool = False) -> dict:
    sizes = [100_000] if quick else [1_000_000, 10_000_000]
    return {
        "cycle": [cycle(n) for n in sizes],
        "netting": [netting_ratio(n) for n in ([1_000_000] if quick else [1_000_000, 10_000_000])],
    }


if __name__ == "__main__":
    standalone.main(run, __doc__.splitlines()[0])
