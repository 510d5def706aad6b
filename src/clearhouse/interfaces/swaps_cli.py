"""The ``clearhouse swaps`` and ``clearhouse oracle`` commands: swaps and fixings on a data directory.

``swaps import FILE`` proposes a CDM TradeState as a swap (signed by the proposing counterparty),
has the other counterparty accept it, and with ``--clear`` novates it to the CCP (proposed by a
counterparty, approved by the CCP). ``swaps list`` and ``swaps schedule ID`` show contracts and a
swap's periods. ``swaps lifecycle --until DATE`` runs each business day from where the lifecycle
stopped: the CCP's lifecycle action (resets, payments), then its cut-off and settlement, so the
swap payments settle with the day's cash. ``oracle publish`` and ``oracle correct`` sign and
submit observations as the oracle participant, admitting it (CCP-signed) on first use.

Every command works on a data directory made by ``clearhouse demo`` or ``clearhouse run`` (the
ledger and every participant's key), one block per step, dated on the ledger's business date
(or ``--date``) with timestamps that follow the last block's, so the ledger stays reproducible.
Imports anything (an interface module); nothing imports it but ``interfaces.cli``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clearhouse.contracts.engine import Contract, ContractEngine
from clearhouse.core.errors import ClearhouseError, InvariantViolation
from clearhouse.core.hashing import canonical_json, sha256
from clearhouse.cycle.run import CCP, LEDGER_FILE, Keys, open_node, sign
from clearhouse.interfaces.console import err, out
from clearhouse.node.node import Node
from clearhouse.state.kinds import Kind, encode_json
from clearhouse.state.machine import Receipt

DataOpt = Annotated[Path, typer.Option("--data", help="Data directory (ledger, keys).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DateOpt = Annotated[str | None, typer.Option("--date", help="Business date (default: the last block's).")]
OracleOpt = Annotated[str, typer.Option("--oracle", help="Participant id of the oracle.")]
DEFAULT_DATA = Path("clearhouse-data")
ORACLE = "ORACLE"
FIRST_BLOCK_TIME = "07:00:01"

swaps_app = typer.Typer(no_args_is_help=True, help="Interest rate swaps as ledger contracts (CDM).")
oracle_app = typer.Typer(no_args_is_help=True, help="Signed observations: rate fixings and prices.")


def register(app: typer.Typer) -> None:
    """Add the ``swaps`` and ``oracle`` sub-commands to the ``clearhouse`` app."""
    app.add_typer(swaps_app, name="swaps")
    app.add_typer(oracle_app, name="oracle")


class Fail(Exception):
    """A command cannot go on; the message is for the user (exit status 2)."""


# --------------------------------------------------------------------------- ledger access


class Session:
    """A data directory's node at its head, its keys and its contract engine."""

    def __init__(self, data: Path) -> None:
        if not (data / LEDGER_FILE).exists():
            raise Fail(f"no ledger at {data / LEDGER_FILE}; run `clearhouse demo` or `clearhouse run` first")
        for kind in ("contract", "observation"):
            if kind not in Kind.__members__:
                raise Fail(f"this ledger does not take {kind!r} submissions yet")
        self.keys = Keys(data)
        self.node: Node = open_node(data)
        engines = [value for value in vars(self.node.machine).values() if isinstance(value, ContractEngine)]
        if len(engines) != 1:
            raise Fail("this ledger's state machine holds no contract engine")
        self.engine: ContractEngine = engines[0]

    def close(self) -> None:
        self.node.store.close()

    def last_block(self) -> tuple[dt.date, str]:
        header = self.node.store.block(self.node.height).header
        return dt.date.fromisoformat(header.business_date), header.timestamp

    def day(self, text: str | None) -> dt.date:
        last, _ = self.last_block()
        if text is None:
            return last
        day = _date(text, "--date")
        if day < last:
            raise Fail(f"--date {day} is before the last block's business date {last}")
        return day

    def key(self, participant: str) -> Any:
        if not self.keys.store.has(participant):
            raise Fail(f"no key of {participant!r} in this data directory")
        return self.keys[participant]

    def require(self, participant: str) -> None:
        if self.node.machine.participant(participant) is None:
            raise Fail(f"{participant!r} is not a participant of this ledger")

    def block(self, day: dt.date, steps: list[tuple[str, str, str, Any]]) -> list[Receipt]:
        """Sign and submit ``(submitter, submission id, kind, body)`` steps as one block on ``day``."""
        for submitter, submission_id, kind, body in steps:
            payload = body if isinstance(body, bytes) else encode_json(body)
            self.node.submit(sign(self.key(submitter), submitter, submission_id, Kind(kind), payload))
        self.node.seal(day, self._timestamp(day))
        return list(self.node.last_receipts)

    def step(self, day: dt.date, submitter: str, submission_id: str, kind: str, body: Any) -> Receipt:
        """One submission in its own block; refused unless accepted (or already applied)."""
        (receipt,) = self.block(day, [(submitter, submission_id, kind, body)])
        _check(receipt)
        return receipt

    def admit_oracle(self, oracle: str, day: dt.date) -> None:
        if self.node.machine.participant(oracle) is not None:
            return
        entry = {"id": oracle, "name": oracle.replace("_", " ").title(), "role": "oracle",
                 "public_key": self.keys[oracle].public_hex}
        receipt = self.step(day, CCP, f"admit-{oracle}", "admit", {"participants": [entry]})
        if self.node.machine.participant(oracle) is None:
            raise Fail(f"the CCP could not admit {oracle!r}: {receipt.summary}")

    def _timestamp(self, day: dt.date) -> str:
        last_day, last_time = self.last_block()
        if last_day == day:
            moment = dt.datetime.strptime(last_time, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=1)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{day.isoformat()}T{FIRST_BLOCK_TIME}Z"


def _check(receipt: Receipt) -> None:
    if receipt.status not in ("accepted", "exists"):
        raise Fail(f"submission {receipt.submission_id} {receipt.status}: {receipt.reason}")


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Fail(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None


def _digest(*parts: bytes) -> str:
    return sha256(*parts).hex()[:16]


def _run(data: Path, as_json: bool, body: Any) -> None:
    """Run a command body on a session; print its result; map failures to exit codes."""
    session = None
    try:
        session = Session(data)
        result, show = body(session)
    except Fail as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except InvariantViolation as exc:
        err.print(f"[bold red]error:[/] invariant broken, node halted: {exc}")
        raise typer.Exit(3) from None
    except ClearhouseError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        if session is not None:
            session.close()
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        show(result)


def _new_since(engine: ContractEngine, known: int) -> list[Contract]:
    return engine.contracts()[known:]


# --------------------------------------------------------------------------- swaps


@swaps_app.command("import")
def import_swap(
    file: Annotated[Path, typer.Argument(help="CDM TradeState (or Trade) JSON file.")],
    party1: Annotated[str, typer.Option("--party1", help="Participant id of CDM counterparty Party1.")],
    party2: Annotated[str, typer.Option("--party2", help="Participant id of CDM counterparty Party2.")],
    business_center: Annotated[list[str] | None, typer.Option(
        "--business-center", help="Resolve a CDM business-centres reference: NAME=CODE[,CODE...].")] = None,
    proposer: Annotated[str, typer.Option(help="Which counterparty proposes: party1 or party2.")] = "party1",
    clear: Annotated[bool, typer.Option("--clear", help="Then clear it: novate both sides to the CCP.")] = False,
    ccp: Annotated[str, typer.Option("--ccp", help="Participant id of the CCP.")] = CCP,
    date: DateOpt = None,
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """Import a CDM swap: proposed by one counterparty, accepted by the other, optionally cleared."""
    if proposer not in ("party1", "party2"):
        err.print("[bold red]error:[/] --proposer is party1 or party2")
        raise typer.Exit(2)
    try:
        document = file.read_text()
    except OSError as exc:
        err.print(f"[bold red]error:[/] cannot read {file}: {exc}")
        raise typer.Exit(2) from None
    centers: dict[str, list[str]] = {}
    for item in business_center or []:
        name, _, codes = item.partition("=")
        if not name or not codes:
            err.print(f"[bold red]error:[/] --business-center {item!r} is not NAME=CODE[,CODE...]")
            raise typer.Exit(2)
        centers[name] = [code.strip() for code in codes.split(",") if code.strip()]

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        day = session.day(date)
        for participant in (party1, party2):
            session.require(participant)
        first, second = (party1, party2) if proposer == "party1" else (party2, party1)
        create = {"action": "create", "template": "swap_proposal", "cdm": document,
                  "parties": {"Party1": party1, "Party2": party2}, "business_centers": centers}
        known = len(session.engine.contracts())
        session.step(day, first, f"swap-propose-{_digest(canonical_json(create))}", "contract", create)
        made = _new_since(session.engine, known)
        if not made:
            raise Fail("this swap was proposed before with the same terms and parties")
        proposal_id = made[0].contract_id
        known = len(session.engine.contracts())
        accept = {"action": "exercise", "contract_id": proposal_id, "choice": "accept", "args": {}}
        session.step(day, second, f"swap-accept-{proposal_id}", "contract", accept)
        (swap,) = _new_since(session.engine, known)
        result: dict[str, Any] = {"proposal": proposal_id, "swap": swap.contract_id, "cleared": []}
        if clear:
            session.require(ccp)
            request = {"action": "create", "template": "proposal", "target": swap.contract_id,
                       "choice": "clear", "args": {"ccp": ccp}}
            known = len(session.engine.contracts())
            session.step(day, party1, f"swap-clear-{swap.contract_id}", "contract", request)
            (clearing,) = _new_since(session.engine, known)
            known = len(session.engine.contracts())
            approve = {"action": "exercise", "contract_id": clearing.contract_id, "choice": "approve", "args": {}}
            session.step(day, ccp, f"swap-approve-{clearing.contract_id}", "contract", approve)
            result["cleared"] = [c.contract_id for c in _new_since(session.engine, known)]
        result["height"] = session.node.height
        return result, _show_import

    _run(data, as_json, body)


def _show_import(result: dict[str, Any]) -> None:
    out.print(f"proposal {result['proposal']} accepted: swap [bold]{result['swap']}[/]")
    if result["cleared"]:
        out.print(f"cleared: {result['swap']} closed, facing the CCP: {', '.join(result['cleared'])}")
    out.print(f"ledger height {result['height']}")


@swaps_app.command("list")
def list_contracts(
    template: Annotated[str | None, typer.Option(help="Only this template (swap, proposal, observation...).")] = None,
    party: Annotated[str | None, typer.Option(help="Only contracts this participant signs or observes.")] = None,
    active: Annotated[bool, typer.Option("--active", help="Only active contracts.")] = False,
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """The contracts on the ledger, in creation order."""

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        rows = []
        for record in session.engine.contracts(template=template, party=party, active_only=active):
            row = {"contract_id": record.contract_id, "template": record.template, "active": record.active,
                   "signatories": list(record.signatories), "observers": list(record.observers),
                   "created_on": record.created_on.isoformat(), "detail": _detail(record)}
            rows.append(row)
        return {"height": session.node.height, "contracts": rows}, _show_list

    _run(data, as_json, body)


def _detail(record: Contract) -> str:
    state = record.to_json()["state"]
    if record.template == "swap":
        trade = state["trade"]
        notionals = "/".join(leg["notional"] for leg in trade["terms"]["legs"])
        return f"{trade['terms']['trade_ids'][0]['identifier']} {trade['position_state']} notional {notionals}"
    if record.template == "observation":
        return f"{state['observation_id']}: {state['index']} {state['fixing_date']} = {state['rate']}"
    if record.template == "proposal":
        return f"{state['target_choice']} on {state['target']}, approved by {', '.join(state['approvals'])}"
    if record.template == "swap_proposal":
        return f"proposed by {state['proposer']} to {state['counterparty']}"
    return ""


def _show_list(result: dict[str, Any]) -> None:
    table = Table(title=f"Contracts (height {result['height']})")
    for column in ("contract_id", "template", "active", "signatories", "detail"):
        table.add_column(column)
    for row in result["contracts"]:
        table.add_row(row["contract_id"], row["template"], "yes" if row["active"] else "archived",
                      ", ".join(row["signatories"]), row["detail"])
    out.print(table)


@swaps_app.command("schedule")
def schedule(
    contract_id: Annotated[str, typer.Argument(help="Swap contract id (see `swaps list`).")],
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """Every period of a swap: dates, day-count fraction, notional, fixed amount, floating rate and amount."""

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        record = session.engine.contract(contract_id)
        if record is None or record.template != "swap":
            raise Fail(f"no swap contract {contract_id!r}")
        trade = record.to_json()["state"]["trade"]
        result = {
            "contract_id": contract_id,
            "trade_id": trade["terms"]["trade_ids"][0]["identifier"] if trade["terms"]["trade_ids"] else "",
            "position_state": trade["position_state"],
            "parties": list(record.signatories),
            "periods": session.engine.schedule(contract_id),
            "history": trade["history"],
        }
        return result, _show_schedule

    _run(data, as_json, body)


def _show_schedule(result: dict[str, Any]) -> None:
    table = Table(title=f"Swap {result['contract_id']} ({result['trade_id']}, {result['position_state']})")
    columns = {"leg": "leg", "period": "#", "start": "start", "end": "end", "payment_date": "pays",
               "fixing_date": "fixing", "day_count_fraction": "dcf", "notional": "notional",
               "fixed_amount": "fixed", "floating_rate": "rate", "floating_amount": "floating", "paid": "paid"}
    for heading in columns.values():
        table.add_column(heading, overflow="fold")
    for row in result["periods"]:
        cells = {c: "" if row[c] is None else str(row[c]) for c in columns}
        cells["paid"] = "yes" if row["paid"] else ""
        table.add_row(*cells.values())
    out.print(table)
    for event in result["history"]:
        out.print(f"{event['event_date']} {event['event']}: {event['detail']}")


@swaps_app.command("lifecycle")
def lifecycle(
    until: Annotated[str, typer.Option("--until", help="Last business date to run (YYYY-MM-DD).")],
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """Run each business day up to --until: lifecycle (resets, payments), then cut-off and settlement."""

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        end = _date(until, "--until")
        last_day, _ = session.last_block()
        done = session.engine.last_lifecycle
        start = last_day if done is None or done < last_day else done + dt.timedelta(days=1)
        days = []
        for day in session.node.machine.calendar.business_days(start, end):
            iso = day.isoformat()
            receipts = session.block(day, [
                (CCP, f"lifecycle-{iso}", "contract", {"action": "lifecycle", "date": iso}),
                (CCP, f"swaps-cutoff-{iso}", "cutoff", {"business_date": iso}),
                (CCP, f"swaps-settle-{iso}", "settle", {"settlement_date": iso}),
            ])
            for receipt in receipts:
                _check(receipt)
            refused = [{"item": r.item_id, "reason": r.reason}
                       for r in session.node.store.rejections(submission_id=f"lifecycle-{iso}")]
            days.append({"date": iso, "lifecycle": receipts[0].summary, "settle": receipts[2].summary,
                         "refused": refused})
        return {"from": start.isoformat(), "until": end.isoformat(), "days": days,
                "height": session.node.height}, _show_lifecycle

    _run(data, as_json, body)


def _show_lifecycle(result: dict[str, Any]) -> None:
    if not result["days"]:
        out.print(f"no business day to run from {result['from']} to {result['until']}")
    for day in result["days"]:
        summary = day["lifecycle"]
        out.print(f"{day['date']}: {summary.get('cash_flows', 0)} cash flow(s), "
                  f"{len(summary.get('updated', []))} contract(s) updated, "
                  f"settled {day['settle'].get('settled', 0)} / failed {day['settle'].get('failed', 0)}")
        for item in day["refused"]:
            out.print(f"  [yellow]{item['item']}[/]: {item['reason']}")
    out.print(f"ledger height {result['height']}")


# --------------------------------------------------------------------------- oracle


@oracle_app.command("publish")
def publish(
    index: Annotated[str | None, typer.Argument(help="Index (floating rate option or security id).")] = None,
    fixing_date: Annotated[str | None, typer.Argument(help="Fixing date (YYYY-MM-DD).")] = None,
    rate: Annotated[str | None, typer.Argument(help="Value: a rate as a decimal (0.0125) or a price.")] = None,
    observation_id: Annotated[str | None, typer.Option("--id", help="Observation id (default derived).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="CSV with id,index,fixing_date,rate.")] = None,
    oracle: OracleOpt = ORACLE,
    date: DateOpt = None,
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """Publish signed observations: one from the arguments, or every row of --file."""
    items: list[dict[str, str]] = []
    if file is not None:
        try:
            with file.open(newline="") as handle:
                for row in csv.DictReader(handle):
                    items.append({k: (row.get(k) or "").strip() for k in ("id", "index", "fixing_date", "rate")})
        except OSError as exc:
            err.print(f"[bold red]error:[/] cannot read {file}: {exc}")
            raise typer.Exit(2) from None
    if index is not None:
        if fixing_date is None or rate is None:
            err.print("[bold red]error:[/] give INDEX FIXING_DATE RATE, or --file")
            raise typer.Exit(2)
        items.append({"id": observation_id or f"{index}@{fixing_date}", "index": index,
                      "fixing_date": fixing_date, "rate": rate})
    if not items:
        err.print("[bold red]error:[/] nothing to publish: give INDEX FIXING_DATE RATE, or --file")
        raise typer.Exit(2)

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        day = session.day(date)
        session.admit_oracle(oracle, day)
        payload = {"observations": items}
        submission_id = f"observations-{_digest(canonical_json(payload))}"
        receipt = session.step(day, oracle, submission_id, "observation", payload)
        refused = [{"item": r.item_id, "reason": r.reason}
                   for r in session.node.store.rejections(submission_id=submission_id)]
        return {"submission_id": submission_id, "status": receipt.status, "summary": receipt.summary,
                "refused": refused, "height": session.node.height}, _show_oracle

    _run(data, as_json, body)


@oracle_app.command("correct")
def correct(
    observation_id: Annotated[str, typer.Argument(help="Id of the observation to correct.")],
    rate: Annotated[str, typer.Argument(help="The right value.")],
    oracle: OracleOpt = ORACLE,
    date: DateOpt = None,
    data: DataOpt = DEFAULT_DATA,
    as_json: JsonOpt = False,
) -> None:
    """Correct a published observation: every payment that used it is reversed and paid again."""

    def body(session: Session) -> tuple[dict[str, Any], Any]:
        day = session.day(date)
        payload = {"correct": observation_id, "rate": rate}
        submission_id = f"correct-{_digest(canonical_json(payload))}"
        receipt = session.step(day, oracle, submission_id, "observation", payload)
        return {"submission_id": submission_id, "status": receipt.status, "summary": receipt.summary,
                "refused": [], "height": session.node.height}, _show_oracle

    _run(data, as_json, body)


def _show_oracle(result: dict[str, Any]) -> None:
    summary = result["summary"]
    out.print(f"{result['submission_id']}: {result['status']} "
              f"({summary.get('cash_flows', 0)} cash flow(s), updated {', '.join(summary.get('updated', [])) or '-'})")
    for item in result["refused"]:
        out.print(f"  [yellow]{item['item']}[/]: {item['reason']}")
    out.print(f"ledger height {result['height']}")

