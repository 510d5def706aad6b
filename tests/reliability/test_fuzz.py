"""Hostile and malformed input: fuzzed decoders, fuzzed trade batches through the state machine,
mangled scenario files, and submissions that forge, replay, overstep or overflow.

Every trade batch is applied to the state machine and to the reference model side by side: the
ledger must never raise, must give every row a documented result (submitted = accepted +
rejected) and must give exactly the reference's result, so nothing is accepted that breaks a
rule. ``CLEARHOUSE_FUZZ_EXAMPLES`` sets the examples per property (150 by default). Regression
tests pin down the faults of the core found this way (a reader panic, deep JSON nesting, Unicode
digits in prices, non-text Parquet columns, blank holidays), each fixed since.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearhouse.clearing.batch import TRADE_COLUMNS, encode_trades, encode_trades_json
from clearhouse.cycle.run import CCP, EXCHANGE, plan, sign
from clearhouse.cycle.scenario import Scenario, write_scenario
from clearhouse.ledger.records import Submission
from clearhouse.market.synthetic import MarketSpec, generate_market
from clearhouse.sim.checkers import check_decode_trades, check_scenario_dir, check_submission, observe
from clearhouse.sim.reference import Reference
from clearhouse.sim.world import SeededKeys
from clearhouse.state import machine as machine_module
from clearhouse.state.kinds import Kind, encode_json
from clearhouse.state.machine import StateMachine

TODAY = dt.date(2026, 3, 3)
HOLIDAY = dt.date(2026, 3, 4)
MEMBERS = ("M1", "M2", "M3")
KEYS = SeededKeys(7)
EXAMPLES = int(os.environ.get("CLEARHOUSE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(rows: dict[str, list[str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(rows, pl.String))


SCENARIO = Scenario(
    participants=frame({"participant_id": list(MEMBERS), "name": list(MEMBERS)}),
    securities=frame({"security_id": ["SEC1", "SEC2", "SEC3"], "currency": ["AUD", "AUD", "JPY"],
                      "lot_size": ["1", "100", "1"]}),
    holdings=frame({"participant_id": list(MEMBERS) * 3, "security_id": ["SEC1"] * 3 + ["SEC2"] * 3 + ["SEC3"] * 3,
                    "quantity": ["100000"] * 9}),
    cash=frame({"participant_id": [*MEMBERS, *MEMBERS], "currency": ["AUD"] * 3 + ["JPY"] * 3,
                "amount": ["1000000.00"] * 3 + ["100000000"] * 3}),
    trades=frame({"trade_id": ["T0"], "trade_date": [TODAY.isoformat()], "buyer": ["M1"], "seller": ["M2"],
                  "security_id": ["SEC1"], "quantity": ["10"], "price": ["1.00"], "settlement_date": [""]}),
    holidays=(HOLIDAY,),
)
GENESIS, SETUP, *_ = (step.build() for step in plan(SCENARIO, KEYS, 1))


@dataclass
class Ledger:
    """A state machine and the reference, both past genesis and set-up, fed the same blocks."""

    machine: StateMachine
    reference: Reference

    def submit(self, sub: Submission) -> list[str]:
        """Apply one submission as the next block to both; every difference described."""
        return check_submission(self.machine, self.reference, TODAY, sub)

    def status(self) -> str:
        return self.machine.history.refused[-1].status if self.machine.history.refused else "accepted"


def ledger() -> Ledger:
    machine, reference = StateMachine(), Reference()
    for height, subs in enumerate((GENESIS, SETUP)):
        machine.apply_block(height, TODAY, tuple(subs))
        reference.apply_block(height, TODAY, tuple(subs))
    return Ledger(machine, reference)


def trades(submitter: str, sid: str, rows: list[dict[str, str]], as_json: bool = False, **kw: Any) -> Submission:
    payload = encode_trades_json(rows) if as_json else encode_trades(
        pl.DataFrame(rows, schema=dict.fromkeys(TRADE_COLUMNS, pl.String)))
    return sign(KEYS[kw.get("key", submitter)], submitter, sid, Kind.trades, payload)


def row(trade_id: str, buyer: str = "M1", seller: str = "M2", quantity: str = "10", **kw: str) -> dict[str, str]:
    base = {"trade_id": trade_id, "trade_date": TODAY.isoformat(), "buyer": buyer, "seller": seller,
            "security_id": "SEC1", "quantity": quantity, "price": "2.50", "settlement_date": TODAY.isoformat()}
    return {c: {**base, **kw}.get(c, "") for c in TRADE_COLUMNS}


# ---------------------------------------------------------------- decoders


def mutate(data: bytes, rng: random.Random, edits: int) -> bytes:
    """Bytes flipped, cut, inserted, repeated or spliced: what a damaged or hostile payload looks like."""
    buf = bytearray(data)
    for _ in range(edits):
        how = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if how == 0 and buf:
            buf[min(at, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif how == 1:
            del buf[at : at + rng.randint(1, 16)]
        elif how == 2:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif how == 3:
            buf[at:at] = buf[max(0, at - 8) : at] * rng.randint(1, 4)
        elif buf:
            buf[at:] = buf[rng.randrange(len(buf)) :]
    return bytes(buf)


text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=14)
rows_of_text = st.lists(st.fixed_dictionaries({c: text for c in TRADE_COLUMNS}), max_size=6)


@FUZZ
@given(payload=st.binary(max_size=3000))
def test_random_bytes_decode_to_a_batch_or_an_input_error(payload: bytes) -> None:
    check_decode_trades(payload)


@FUZZ
@given(rows=rows_of_text, seed=st.integers(0, 2**32), edits=st.integers(1, 8), as_json=st.booleans())
def test_mutated_batches_decode_to_a_batch_or_an_input_error(
    rows: list[dict[str, str]], seed: int, edits: int, as_json: bool
) -> None:
    valid = encode_trades_json(rows) if as_json else encode_trades(
        pl.DataFrame(rows, schema=dict.fromkeys(TRADE_COLUMNS, pl.String)))
    check_decode_trades(mutate(valid, random.Random(seed), edits))


# an Arrow IPC stream, damaged so that polars' reader panics instead of reporting an error
PANIC_STREAM = bytes.fromhex(
    "7000000004000000f2ffffff140000000400010000000a000b0008000a000400f8ffffff0c0000000800080000000400"
    "0100000004000000ecffffff2c00000020000000180000000118000010001200040010001100080000000c0000000000"
    "fcffffff040004000100000000000000ffffffff9800000004000000ecffffff40000000000000001400000004000300"
    "0c001300100012000c000400e6ffffff010000000000000054000000280000001400000000000e00180004200c001000"
    "000014000100000000000000000000000000000002000000000000000000000000000000000000000000000000000000"
    "0000000000000000010000000100000000000000000000000000000000000000"
)


def test_a_stream_that_panics_the_reader_is_an_input_error() -> None:
    check_decode_trades(PANIC_STREAM)


def test_a_member_cannot_halt_the_ledger_with_a_damaged_stream() -> None:
    led = ledger()
    assert led.submit(sign(KEYS["M1"], "M1", "p1", Kind.trades, PANIC_STREAM)) == []
    assert led.status() == "malformed_payload"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(body=st.dictionaries(st.sampled_from(("trades", "x")), json_values, max_size=2)
       | st.fixed_dictionaries({"trades": st.lists(st.dictionaries(st.sampled_from(TRADE_COLUMNS), json_values))}))
def test_any_json_body_decodes_to_a_batch_or_an_input_error(body: dict[str, Any]) -> None:
    import json

    check_decode_trades(json.dumps(body).encode())


def test_deeply_nested_json_is_an_input_error() -> None:
    check_decode_trades(b'{"trades":' + b"[" * 100_000)


# ---------------------------------------------------------------- trade batches through the state machine

DATES = [(TODAY + dt.timedelta(days=d)).isoformat() for d in range(-3, 7)]
POOLS = {
    "trade_id": ["T1", "T2", "T3", "T1 ", "x" * 64, "x" * 65, "", "a\x00b", "é"],
    "trade_date": [*DATES, "2026-02-30", "2026-3-3", "0000-01-01", "1969-12-31", " 2026-03-03 ", ""],
    "buyer": [*MEMBERS, " M1", "CCP", "EXCHANGE", "NOBODY", ""],
    "seller": [*MEMBERS, "M2\t", "CSD", "NOBODY", ""],
    "security_id": ["SEC1", "SEC2", "SEC3", " SEC1 ", "XX", ""],
    "quantity": ["1", "10", "100", "150", "0", "-5", "1e3", "1.0", "007", "999999999999", "1000000000001",
                 "99999999999999999999", " 10 ", "٣", ""],
    "price": ["1", "2.50", "0.000001", "0.0000001", "1.1000000", "-1", "-", "abc", "1000000000",
              "1000000001", "0", "0.0", ".5", "5.", "1,5", "9999999.999999", ""],
    "settlement_date": [*DATES, "2026-03-07", "2099-01-01", "9999-12-31", ""],
    "partial_allowed": ["", "yes", "no", "TRUE"],
}
# Unicode digits in a price were once read as zero by the intake (see the regression test below); they are
# left out of the random text of that column so the property keeps checking everything else.
price_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Nd")) | st.sampled_from("0123456789"), max_size=14
)


def column(name: str) -> st.SearchStrategy[str]:
    free = price_text if name == "price" else text
    return st.sampled_from(POOLS.get(name, [""])) | free


hostile_rows = st.lists(st.fixed_dictionaries({c: column(c) for c in TRADE_COLUMNS}), max_size=8)


@FUZZ
@given(rows=hostile_rows, again=hostile_rows, submitter=st.sampled_from((EXCHANGE, *MEMBERS)),
       as_json=st.booleans())
def test_any_batch_gets_the_reference_result_for_every_row(
    rows: list[dict[str, str]], again: list[dict[str, str]], submitter: str, as_json: bool
) -> None:
    led = ledger()
    assert led.submit(trades(submitter, "b1", rows, as_json)) == []
    # a second batch reuses ids of the first, with the same or other bodies
    assert led.submit(trades(EXCHANGE, "b2", rows[: len(rows) // 2] + again, not as_json)) == []
    assert led.machine.history.submitted == led.machine.history.accepted + len(led.machine.history.rejected)


def test_a_price_in_unicode_digits_is_not_accepted() -> None:
    led = ledger()
    assert led.submit(trades(EXCHANGE, "b1", [row("U1", price="1.\u0663")])) == []


# ---------------------------------------------------------------- submissions that overstep


def test_a_forged_signature_is_refused_and_changes_nothing() -> None:
    led = ledger()
    before = observe(led.machine)
    assert led.submit(trades("M1", "f1", [row("F1")], key="M2")) == []
    assert led.status() == "bad_signature"
    assert observe(led.machine) == before and led.machine.history.submitted == 0


def test_a_member_reports_only_its_own_trades() -> None:
    led = ledger()
    assert led.submit(trades("M3", "p1", [row("P1", "M1", "M2"), row("P2", "M3", "M1")])) == []
    assert [r.reason for r in led.machine.history.rejected] == ["not_party_to_trade"]
    assert led.machine.history.accepted == 1


@pytest.mark.parametrize(("who", "kind", "body"), [
    ("M1", Kind.settle, {"settlement_date": TODAY.isoformat()}),
    ("M1", Kind.issue, {"holdings": [{"participant": "M1", "security": "SEC1", "quantity": 10**9}]}),
    ("M1", Kind.deposit, {"deposits": [{"participant": "M1", "currency": "AUD", "amount_minor": 10**9}]}),
    (CCP, Kind.trades, None),
    ("REGULATOR", Kind.cutoff, {"business_date": TODAY.isoformat()}),
])
def test_a_kind_the_role_may_not_submit_is_not_authorised(who: str, kind: Kind, body: Any) -> None:
    led = ledger()
    payload = encode_json(body) if body is not None else encode_trades(
        pl.DataFrame([row("A1")], schema=dict.fromkeys(TRADE_COLUMNS, pl.String)))
    before = observe(led.machine)
    assert led.submit(sign(KEYS[who], who, "a1", kind, payload)) == []
    assert led.status() == "not_authorised"
    assert observe(led.machine) == before


def test_an_unknown_submitter_is_refused() -> None:
    led = ledger()
    assert led.submit(trades("MALLORY", "u1", [row("U1")])) == []
    assert led.status() == "unknown_submitter"


def test_a_replayed_submission_answers_exists_and_applies_once() -> None:
    led = ledger()
    sub = trades(EXCHANGE, "r1", [row("R1"), row("R2", "M2", "M3")])
    assert led.submit(sub) == []
    after_first = observe(led.machine), led.machine.pending_trades()
    for _ in range(3):
        assert led.submit(sub) == []
        assert led.status() == "exists"
    assert (observe(led.machine), led.machine.pending_trades()) == after_first
    assert led.machine.history.accepted == 2


def test_another_body_under_a_used_id_is_refused() -> None:
    led = ledger()
    assert led.submit(trades(EXCHANGE, "d1", [row("D1")])) == []
    assert led.submit(trades(EXCHANGE, "d1", [row("D1", quantity="11")])) == []
    assert led.status() == "exists_with_different_body"
    assert led.machine.pending_trades() == 1


def test_an_oversized_batch_is_refused_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_module, "TRADES_PER_SUBMISSION_MAX", 3)
    led = ledger()
    assert led.submit(trades(EXCHANGE, "o1", [row(f"O{i}") for i in range(4)])) == []
    assert led.status() == "batch_too_large"
    assert led.machine.pending_trades() == 0
    assert led.submit(trades(EXCHANGE, "o2", [row(f"O{i}") for i in range(3)])) == []
    assert led.machine.pending_trades() == 3


def test_a_member_cannot_halt_the_ledger_with_nested_json() -> None:
    led = ledger()
    nested = b'{"trades":' + b"[" * 100_000
    assert led.submit(sign(KEYS["M1"], "M1", "n1", Kind.trades, nested)) == []


# ---------------------------------------------------------------- scenario files


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    directory = tmp_path_factory.mktemp("scenario")
    write_scenario(generate_market(MarketSpec(members=3, securities=3, trades=12, days=2, seed=4)), directory)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def write_files(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for p in directory.iterdir():
        p.unlink()
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


@FUZZ
@given(target=st.sampled_from(("participants.csv", "securities.csv", "holdings.csv", "cash.csv", "trades.csv")),
       seed=st.integers(0, 2**32), edits=st.integers(1, 10), drop=st.booleans())
def test_mangled_csv_files_load_or_raise_input_error(
    scenario_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, target: str, seed: int, edits: int,
    drop: bool,
) -> None:
    files = dict(scenario_files)
    if drop:
        del files[target]
    else:
        files[target] = mutate(files[target], random.Random(seed), edits)
    check_scenario_dir(write_files(tmp_path_factory.mktemp("m"), files))


# binary (and list) columns are left out here: the regression test below covers them
parquet_columns = st.dictionaries(
    st.sampled_from((*TRADE_COLUMNS, "submitter", "extra")),
    st.sampled_from((pl.String, pl.Int64, pl.Float64, pl.Boolean, pl.Date, pl.Null, pl.Categorical)),
    min_size=1,
)


@FUZZ
@given(columns=parquet_columns, n=st.integers(0, 4), seed=st.integers(0, 2**32), edits=st.integers(0, 6))
def test_any_parquet_trades_file_loads_or_raises_input_error(
    scenario_files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, columns: dict[str, Any], n: int,
    seed: int, edits: int,
) -> None:
    rng = random.Random(seed)
    make = {pl.Int64: lambda: rng.randint(-9, 10**12), pl.Float64: lambda: rng.uniform(-1, 1e6),
            pl.Boolean: lambda: rng.random() < 0.5, pl.Date: lambda: TODAY + dt.timedelta(days=rng.randint(-9, 9))}
    data = {name: pl.Series(name, [make.get(dtype, lambda: str(rng.randint(0, 9)))() for _ in range(n)],
                            dtype=dtype if dtype != pl.Null else None)
            if dtype != pl.Null else pl.Series(name, [None] * n) for name, dtype in columns.items()}
    buf = io.BytesIO()
    pl.DataFrame(data).write_parquet(buf)
    files = {k: v for k, v in scenario_files.items() if k != "trades.csv"}
    files["trades.parquet"] = mutate(buf.getvalue(), rng, edits)
    check_scenario_dir(write_files(tmp_path_factory.mktemp("p"), files))


@pytest.mark.parametrize("value", [[1, 2], b"\xff\xfe"])
def test_a_parquet_column_that_is_not_text_is_an_input_error(
    scenario_files: dict[str, bytes], tmp_path: Path, value: object
) -> None:
    files = {k: v for k, v in scenario_files.items() if k != "trades.csv"}
    buf = io.BytesIO()
    pl.DataFrame({c: [value] for c in TRADE_COLUMNS}).write_parquet(buf)
    files["trades.parquet"] = buf.getvalue()
    check_scenario_dir(write_files(tmp_path, files))


def test_a_blank_holiday_is_an_input_error(scenario_files: dict[str, bytes], tmp_path: Path) -> None:
    files = {**scenario_files, "holidays.csv": b"date,note\n,closed\n"}
    check_scenario_dir(write_files(tmp_path, files))
