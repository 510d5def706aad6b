"""Coverage-guided fuzzing of the trade batch decoder with atheris (libFuzzer for Python).

Every input must decode to the documented string columns or raise ``InputError``; anything else
(another exception, a panic inside a native reader) is a crash, and libFuzzer stops there and
writes the input to ``crash-*``. Run from the repository root, with libFuzzer's options:

    python benchmarks/fuzz_decode.py -runs=100000 -max_len=4096 -artifact_prefix=/tmp/ [corpus_dir ...]

Needs ``pip install atheris``. Without a corpus directory, one is made in the temporary directory
from a valid Arrow IPC batch and a valid JSON batch.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import polars as pl

    from clearhouse.clearing.batch import TRADE_COLUMNS, encode_trades, encode_trades_json
    from clearhouse.sim.checkers import check_decode_trades


def seeds() -> list[bytes]:
    row = {"trade_id": "T1", "trade_date": "2026-03-03", "buyer": "M1", "seller": "M2", "security_id": "SEC1",
           "quantity": "100", "price": "2.50", "settlement_date": "2026-03-05"}
    rows = [{c: row.get(c, "") for c in TRADE_COLUMNS}]
    return [encode_trades(pl.DataFrame(rows, schema=dict.fromkeys(TRADE_COLUMNS, pl.String))),
            encode_trades_json(rows)]


def test_one_input(data: bytes) -> None:
    check_decode_trades(data)


def main() -> None:
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="clearhouse-fuzz-"))
        for n, seed in enumerate(seeds()):
            (corpus / f"seed-{n}").write_bytes(seed)
        argv.append(str(corpus))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
