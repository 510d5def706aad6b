"""Run every benchmark and write docs/PERFORMANCE.md with the machine they ran on.

`make bench` runs this; `--quick` runs small sizes (a smoke run, still written out, marked quick).
Each benchmark module has `run(quick) -> dict`; what it returns is rendered as tables.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "docs" / "PERFORMANCE.md"
RESULTS = HERE.parent / "docs" / "performance.json"  # each benchmark's last result, so parts can be rerun
sys.path.insert(0, str(HERE))

# module, section title, what it measures
BENCHES = [
    ("bench_cycle", "Clearing and settlement cycle (embedded ledger)",
     "A day of N trades read from Parquet, each batch of 50,000 signed (Ed25519), validated, stored "
     "in SQLite blocks, novated, netted and settled T+0 (net DvP) on one process; generation not "
     "timed; each size in a fresh process so peak RSS is its own. Netting: our exact netting "
     "against bare numpy bincounts and a bare Polars group-by of the same arrays."),
    ("bench_settlement", "Settlement optimisation when resources are short",
     "Instructions across accounts with cash at a fraction of gross needs: settled value against "
     "the LP upper bound, and the time taken."),
    ("bench_nats", "NATS JetStream (3 servers, 3 replicas, loopback)",
     "Raw publish and ordered-consume throughput of the ordering layer."),
    ("bench_network", "Replicated ledger through NATS JetStream",
     "Trades per second from submission until every node has applied them."),
]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import numpy
    import polars

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "polars": polars.__version__,
    }


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def render(value: Any) -> list[str]:
    lines: list[str] = []
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {fmt(v)} |" for k, v in value.items()]
    elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        cols = list(dict.fromkeys(k for r in value for k in r))
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in value]
    elif isinstance(value, dict):
        for k, v in value.items():
            lines += ["", f"**{k}**", ""] + render(v)
    else:
        lines += ["```", json.dumps(value, indent=2, default=str), "```"]
    return lines


def main() -> None:
    quick = "--quick" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if only and RESULTS.exists() else {}
    for module, title, what in BENCHES:
        if only and module not in only:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        print(f"running {module} ...", flush=True)
        started = time.perf_counter()
        try:
            results[module] = {"title": title, "what": what, "data": mod.run(quick=quick)}
        except Exception as exc:  # a benchmark that cannot run is reported, not hidden
            results[module] = {"title": title, "what": what, "error": f"{type(exc).__name__}: {exc}"}
        results[module]["seconds"] = time.perf_counter() - started
        results[module]["when"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results[module]["quick"] = quick
    results = {m: results[m] for m, _, _ in BENCHES if m in results}
    lines = [
        "# clearhouse performance",
        "",
        "Written by `make bench` (benchmarks/run_all.py; `benchmarks/run_all.py NAME` reruns one "
        "benchmark and keeps the others' last figures). Each section says when it ran. Figures come "
        "from a shared machine: read ratios within a run rather than absolute times.",
        "",
        "## Machine",
        "",
        *render(machine()),
    ]
    for res in results.values():
        lines += ["", f"## {res['title']}", "", res["what"], "",
                  f"Ran {res.get('when', '?')}{' (quick sizes)' if res.get('quick') else ''}.", ""]
        if "error" in res:
            lines += [f"Could not run: `{res['error']}`"]
        else:
            lines += render(res["data"])
        lines += ["", f"(took {res['seconds']:.0f} s)"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
