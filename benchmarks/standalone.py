"""Running one benchmark on its own: `python benchmarks/bench_X.py [--quick] [--out FILE]` prints
its figures as JSON (and writes them to FILE). `make bench` runs them all through run_all.py."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main(
    run: Callable[..., dict[str, Any]], description: str, quick_help: str = "smaller sizes, for a smoke run"
) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, help="also write the JSON figures to this file")
    args = parser.parse_args()
    figures = json.dumps(run(quick=args.quick), indent=2, default=str)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(figures + "\n")
    print(figures)
