"""The contract engine: the one interface the state machine calls for contracts and observations.

What lives here: :class:`ContractEngine`, which holds every contract (active and archived) and
applies the two submission kinds:

* ``contract``: ``{"action": "create", "template": T, ...fields}``,
  ``{"action": "exercise", "contract_id": C, "choice": X, "args": {...}}`` and, from the CCP,
  ``{"action": "lifecycle", "date": D}`` (D must be the block's business date): a ``lifecycle``
  broadcast to every active contract, on which swaps reset from published observations and pay
  what is due.
* ``observation``, from an oracle only: ``{"observations": [{"id", "index", "fixing_date",
  "rate"}, ...]}`` publishes (item-level refusals: ``exists``, ``exists_with_different_body``,
  ``fixing_already_published``, ``invalid_observation: ...``), and ``{"correct": id, "rate": r}``
  exercises the observation's ``correct`` choice, whose ``observation_corrected`` broadcast makes
  every swap that used the old value reverse and redo its payments.

Each submission is one transaction: it applies in full or, rejected, changes nothing. Within a
broadcast or a batch of observations, one contract's or item's refusal is reported and the rest
applies. The cash flows of an accepted outcome that involve a CCP must net to zero for it per
(currency, settlement date); otherwise the outcome is rejected.

Contract ids are ``S{n}:{k}``: n counts the accepted submissions the engine has applied, k the
contracts created within one, so every node derives the same ids. The engine reads no clock,
network or randomness and iterates only ordered containers; :meth:`ContractEngine.digest` commits
to its whole state.

Imports the standard library and ``clearhouse.core`` and ``clearhouse.contracts`` only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clearhouse.contracts.framework import (
    LIFECYCLE,
    CashFlowInstruction,
    Context,
    ContractError,
    Effect,
    Proposal,
    Signal,
    Template,
    canonical,
    state_digest,
)
from clearhouse.contracts.oracle import OracleObservation, observation_from_item
from clearhouse.contracts.swap_templates import TEMPLATES, Swap, schedule_rows
from clearhouse.core.errors import InputError, invariant
from clearhouse.core.hashing import canonical_json, sha256

__all__ = ["CashFlowInstruction", "Contract", "ContractEngine", "ContractOutcome", "DEFAULT_TEMPLATES"]

#: Every template the ledger knows by default.
DEFAULT_TEMPLATES: tuple[type[Template], ...] = (Proposal, *TEMPLATES)
OBSERVATIONS_MAX = 100_000
NESTING_MAX = 16
ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass(frozen=True, slots=True)
class ContractOutcome:
    """What the engine answers to one submission.

    Attributes:
        status: ``accepted`` or ``rejected``.
        reason: why it was rejected ('' when accepted).
        summary: what it did, JSON-able and deterministic.
        rejections: (item id, reason) of item-level refusals inside an accepted submission.
        cash_flows: the payments to settle.
    """

    status: str
    reason: str
    summary: dict[str, Any]
    rejections: list[tuple[str, str]]
    cash_flows: list[CashFlowInstruction]


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract on the ledger (also the read view given to the CLI and API).

    Attributes:
        contract_id: ``S{n}:{k}``.
        template: the template's name.
        state: the contract's state (an instance of the template).
        active: False once archived.
        created_on: business date it was created.
        updated_on: business date its state last changed.
        archived_on: business date it was archived, else None.
        digest: digest of the template name and canonical state.
    """

    contract_id: str
    template: str
    state: Template
    active: bool
    created_on: dt.date
    updated_on: dt.date
    archived_on: dt.date | None
    digest: bytes

    @property
    def signatories(self) -> tuple[str, ...]:
        return tuple(sorted(self.state.signatories()))

    @property
    def observers(self) -> tuple[str, ...]:
        return tuple(sorted(self.state.observers()))

    def header(self) -> list[Any]:
        """What the engine digest commits to besides the state."""
        archived = self.archived_on.isoformat() if self.archived_on else None
        return [self.contract_id, self.template, self.active, self.created_on.isoformat(),
                self.updated_on.isoformat(), archived]

    def to_json(self) -> dict[str, Any]:
        return {
            "contract_id": self.contract_id,
            "template": self.template,
            "active": self.active,
            "signatories": list(self.signatories),
            "observers": list(self.observers),
            "created_on": self.created_on.isoformat(),
            "updated_on": self.updated_on.isoformat(),
            "archived_on": self.archived_on.isoformat() if self.archived_on else None,
            "state": canonical(self.state),
        }


class _Refused(Exception):
    """The whole submission is refused; carries the reason."""


class _Layer:
    """Uncommitted changes over a parent (the engine, or another layer)."""

    def __init__(self, parent: _Layer | ContractEngine) -> None:
        self.parent = parent
        self.contracts: dict[str, Contract] = {}
        self.keys: dict[tuple[Any, ...], str | None] = {}
        self.created: list[str] = []
        self.cash_flows: list[CashFlowInstruction] = []
        self.rejections: list[tuple[str, str]] = []
        self.signals: list[Signal] = []
        self.count: int = parent.count if isinstance(parent, _Layer) else 0

    def get(self, contract_id: str) -> Contract | None:
        found = self.contracts.get(contract_id)
        return found if found is not None else self.parent.get(contract_id)

    def key_holder(self, key: tuple[Any, ...]) -> str | None:
        if key in self.keys:
            return self.keys[key]
        return self.parent.key_holder(key)

    def order(self) -> list[str]:
        return [*self.parent.order(), *self.created]

    def commit(self) -> None:
        """Merge into the parent layer (the engine commits a top layer itself)."""
        parent = self.parent
        if not isinstance(parent, _Layer):
            invariant(False, "a top layer is committed by the engine")
            return
        parent.contracts.update(self.contracts)
        parent.keys.update(self.keys)
        parent.created.extend(self.created)
        parent.cash_flows.extend(self.cash_flows)
        parent.rejections.extend(self.rejections)
        parent.signals.extend(self.signals)
        parent.count = self.count


class ContractEngine:
    """Every contract and observation of the ledger, and the rules that change them."""

    def __init__(self, templates: Iterable[type[Template]] = DEFAULT_TEMPLATES) -> None:
        self.templates: dict[str, type[Template]] = {}
        for template in templates:
            invariant(bool(template.name) and template.name not in self.templates,
                      f"template name {template.name!r} is empty or repeated")
            self.templates[template.name] = template
        self._contracts: dict[str, Contract] = {}
        self._keys: dict[tuple[Any, ...], str] = {}
        self._applied = 0
        self._last_lifecycle: dt.date | None = None
        self._digest: bytes | None = None

    # ----------------------------------------------------------------- layer protocol (committed state)

    def get(self, contract_id: str) -> Contract | None:
        return self._contracts.get(contract_id)

    def key_holder(self, key: tuple[Any, ...]) -> str | None:
        return self._keys.get(key)

    def order(self) -> list[str]:
        return list(self._contracts)

    # ----------------------------------------------------------------- the interface

    def apply(
        self,
        kind: str,
        submitter: str,
        submitter_role: str,
        payload: bytes,
        business_date: dt.date,
        participants: Mapping[str, str],
    ) -> ContractOutcome:
        """Apply one ``contract`` or ``observation`` submission (see the module docstring).

        A pure function of the engine's state and the arguments. Raises InputError for a
        malformed payload; refusals are outcomes with status ``rejected``.
        """
        body = _decode(payload)
        layer = _Layer(self)
        run = _Run(self, layer, business_date, participants, f"S{self._applied + 1}")
        try:
            if kind == "contract":
                summary = run.contract_action(body, submitter, submitter_role)
            elif kind == "observation":
                summary = run.observation_action(body, submitter, submitter_role)
            else:
                raise InputError(f"the contract engine does not apply kind {kind!r}")
            run.broadcast()
            problem = _ccp_imbalance(layer.cash_flows, participants)
            if problem:
                raise _Refused(problem)
        except _Refused as exc:
            return ContractOutcome(REJECTED, str(exc), {}, [], [])
        self._commit(layer)
        if summary.get("action") == LIFECYCLE:
            self._last_lifecycle = business_date
        summary.update(_changes(self, layer))
        return ContractOutcome(ACCEPTED, "", summary, list(layer.rejections), list(layer.cash_flows))

    def digest(self) -> bytes:
        """sha256 over the canonical state of every contract and observation."""
        if self._digest is None:
            parts = [
                b"clearhouse/contracts/v1",
                canonical_json([self._applied, self._last_lifecycle.isoformat() if self._last_lifecycle else None]),
            ]
            for record in self._contracts.values():
                parts.append(sha256(canonical_json(record.header()), record.digest))
            self._digest = sha256(*parts)
        return self._digest

    def contracts(self, template: str | None = None, party: str | None = None,
                  active_only: bool = False) -> list[Contract]:
        """Contracts in creation order, optionally of one template, visible to one party, or active."""
        result = []
        for record in self._contracts.values():
            if template is not None and record.template != template:
                continue
            if active_only and not record.active:
                continue
            if party is not None and party not in record.state.signatories() | record.state.observers():
                continue
            result.append(record)
        return result

    # ----------------------------------------------------------------- read views

    def contract(self, contract_id: str) -> Contract | None:
        return self._contracts.get(contract_id)

    def observation(self, observation_id: str) -> Contract | None:
        """The observation contract with the oracle's id ``observation_id``."""
        holder = self._keys.get((OracleObservation.name, "id", observation_id))
        return self._contracts.get(holder) if holder is not None else None

    @property
    def last_lifecycle(self) -> dt.date | None:
        """Business date of the last accepted lifecycle action."""
        return self._last_lifecycle

    @property
    def applied(self) -> int:
        """Accepted submissions applied so far."""
        return self._applied

    def schedule(self, contract_id: str) -> list[dict[str, Any]]:
        """Every period of a swap contract (see ``swap_templates.schedule_rows``)."""
        record = self._contracts.get(contract_id)
        if record is None or not isinstance(record.state, Swap):
            raise InputError(f"no swap contract {contract_id!r}")

        def observation_id(index: str, fixing_date: dt.date) -> str | None:
            holder = self._keys.get((OracleObservation.name, "fixing", index, fixing_date))
            if holder is None:
                return None
            state = self._contracts[holder].state
            return state.observation_id if isinstance(state, OracleObservation) else None

        return schedule_rows(record.state, observation_id)

    # ----------------------------------------------------------------- commit

    def _commit(self, layer: _Layer) -> None:
        self._applied += 1
        self._contracts.update(layer.contracts)
        for key, holder in layer.keys.items():
            if holder is None:
                self._keys.pop(key, None)
            else:
                self._keys[key] = holder
        self._digest = None


class _Run:
    """One submission being applied: the rules of creation, exercise and broadcast."""

    def __init__(self, engine: ContractEngine, layer: _Layer, business_date: dt.date,
                 participants: Mapping[str, str], prefix: str) -> None:
        self.engine = engine
        self.layer = layer
        self.day = business_date
        self.participants = participants
        self.prefix = prefix

    # ----------------------------------------------------------------- actions

    def contract_action(self, body: dict[str, Any], submitter: str, role: str) -> dict[str, Any]:
        action = body.get("action")
        authority = frozenset({submitter})
        if action == "create":
            name = body.get("template")
            if not isinstance(name, str):
                raise InputError("create needs template (a name)")
            template = self.engine.templates.get(name)
            if template is None or not template.creatable:
                raise _Refused(f"template {name!r} cannot be created by a participant")
            fields = {k: v for k, v in body.items() if k not in ("action", "template")}
            ctx = self.context("", authority)
            state = self.guarded(lambda: template.create(ctx, fields))
            contract_id = self.guarded(lambda: self.create(self.layer, state, authority))
            return {"action": "create", "template": name, "contract_id": contract_id}
        if action == "exercise":
            contract_id, choice, args = body.get("contract_id"), body.get("choice"), body.get("args", {})
            if not isinstance(contract_id, str) or not isinstance(choice, str) or not isinstance(args, dict):
                raise InputError("exercise needs contract_id, choice (strings) and args (an object)")
            self.guarded(lambda: self.exercise(self.layer, contract_id, choice, args, authority, 0))
            return {"action": "exercise", "contract_id": contract_id, "choice": choice}
        if action == LIFECYCLE:
            if role != "ccp":
                raise _Refused("only the CCP runs the lifecycle")
            if body.get("date") != self.day.isoformat():
                raise _Refused(f"lifecycle date {body.get('date')!r} is not the business date {self.day}")
            self.layer.signals.append(Signal(LIFECYCLE, self.day))
            return {"action": LIFECYCLE, "date": self.day.isoformat()}
        raise InputError(f"unknown contract action {action!r}: create, exercise or lifecycle")

    def observation_action(self, body: dict[str, Any], submitter: str, role: str) -> dict[str, Any]:
        if "correct" in body:
            observation_id = body["correct"]
            if not isinstance(observation_id, str) or set(body) != {"correct", "rate"}:
                raise InputError('a correction is {"correct": observation id, "rate": value}')
            if role != "oracle":
                raise _Refused("only an oracle corrects observations")
            holder = self.layer.key_holder((OracleObservation.name, "id", observation_id))
            if holder is None:
                raise _Refused(f"no observation {observation_id!r}")
            args = {"rate": body["rate"]}
            self.guarded(lambda: self.exercise(self.layer, holder, "correct", args, frozenset({submitter}), 0))
            return {"action": "correct", "observation": observation_id, "contract_id": holder}
        items = body.get("observations")
        if not isinstance(items, list) or set(body) != {"observations"}:
            raise InputError('observations are {"observations": [...]} or a correction {"correct": id, "rate": r}')
        if len(items) > OBSERVATIONS_MAX:
            raise InputError(f"more than {OBSERVATIONS_MAX} observations")
        if role != "oracle":
            raise _Refused("only an oracle publishes observations")
        published = 0
        for n, item in enumerate(items):
            named = item.get("id") if isinstance(item, dict) else None
            item_id = named if isinstance(named, str) else f"#{n}"
            reason = self.publish(item, submitter)
            if reason:
                self.layer.rejections.append((item_id, reason))
            else:
                published += 1
        return {"action": "publish", "published": published, "rejected": len(items) - published}

    def publish(self, item: Any, publisher: str) -> str:
        """Publish one observation; '' or the reason it is refused."""
        try:
            state = observation_from_item(item, publisher, self.day)
        except ContractError as exc:
            return f"invalid_observation: {exc}"
        holder = self.layer.key_holder((OracleObservation.name, "id", state.observation_id))
        if holder is not None:
            existing = self.layer.get(holder)
            old = existing.state if existing is not None else None
            same = isinstance(old, OracleObservation) and (old.index, old.fixing_date, old.rate, old.publisher) == (
                state.index, state.fixing_date, state.rate, state.publisher)
            return "exists" if same else "exists_with_different_body"
        if self.layer.key_holder((OracleObservation.name, "fixing", state.index, state.fixing_date)) is not None:
            return "fixing_already_published"
        self.create(self.layer, state, frozenset({publisher}))
        return ""

    # ----------------------------------------------------------------- rules

    def context(self, contract_id: str, actors: frozenset[str], layer: _Layer | None = None) -> Context:
        view = layer or self.layer

        def find(template: str | None, key: Any) -> Template | None:
            if template is None:
                record = view.get(key)
            else:
                holder = view.key_holder((template, *key))
                record = view.get(holder) if holder is not None else None
            return record.state if record is not None and record.active else None

        return Context(self.day, contract_id, actors, self.participants, find)

    def guarded(self, step: Any) -> Any:
        """Run contract code; its refusals refuse the submission."""
        try:
            return step()
        except (ContractError, InputError) as exc:
            raise _Refused(str(exc)) from exc

    def create(self, layer: _Layer, state: Template, authority: frozenset[str]) -> str:
        name = type(state).name
        invariant(self.engine.templates.get(name) is type(state), f"template {name!r} is not registered")
        signatories = state.signatories()
        if not signatories:
            raise ContractError(f"a {name} contract needs at least one signatory")
        missing = sorted(signatories - authority)
        if missing:
            raise ContractError(f"creating a {name} contract needs the authority of {', '.join(missing)}")
        layer.count += 1
        contract_id = f"{self.prefix}:{layer.count}"
        self.claim_keys(layer, name, state, contract_id)
        layer.contracts[contract_id] = Contract(
            contract_id, name, state, True, self.day, self.day, None, state_digest(name, state)
        )
        layer.created.append(contract_id)
        return contract_id

    def claim_keys(self, layer: _Layer, name: str, state: Template, contract_id: str) -> None:
        for key in state.keys():
            full = (name, *key)
            holder = layer.key_holder(full)
            if holder is not None and holder != contract_id:
                raise ContractError(f"a {name} contract with key {canonical(list(key))} exists ({holder})")
            layer.keys[full] = contract_id

    def exercise(self, layer: _Layer, contract_id: str, choice: str, args: Mapping[str, Any],
                 authority: frozenset[str], depth: int) -> None:
        if depth > NESTING_MAX:
            raise ContractError(f"exercises nested deeper than {NESTING_MAX}")
        record = layer.get(contract_id)
        if record is None or not record.active:
            raise ContractError(f"no active contract {contract_id!r}")
        spec = type(record.state).choices.get(choice)
        if spec is None:
            raise ContractError(f"template {record.template!r} has no choice {choice!r}")
        required = spec.requirement(record.state, args)
        if not required.satisfied_by(authority):
            raise ContractError(
                f"choice {choice!r} of {contract_id} needs the authority of {required.describe(authority)}"
            )
        actors = authority.intersection(required.parties)
        effect = spec.body(record.state, self.context(contract_id, actors, layer), args)
        self.apply_effect(layer, record, effect, record.state.signatories() | actors, depth, signals=True)

    def apply_effect(self, layer: _Layer, record: Contract, effect: Effect, authority: frozenset[str],
                     depth: int, signals: bool) -> None:
        name = record.template
        old_keys = [(name, *key) for key in record.state.keys()]
        successor = effect.successor
        if successor is None:
            for key in old_keys:
                layer.keys[key] = None
            layer.contracts[record.contract_id] = dataclasses.replace(record, active=False, archived_on=self.day)
        elif successor != record.state:
            if type(successor) is not type(record.state):
                raise ContractError(f"a choice of {name!r} may not turn the contract into another template")
            missing = sorted(successor.signatories() - authority)
            if missing:
                raise ContractError(f"{name} contract {record.contract_id} cannot bind {', '.join(missing)}")
            for key in old_keys:
                layer.keys[key] = None
            self.claim_keys(layer, name, successor, record.contract_id)
            layer.contracts[record.contract_id] = dataclasses.replace(
                record, state=successor, updated_on=self.day, digest=state_digest(name, successor)
            )
        for created in effect.created:
            self.create(layer, created, authority)
        layer.cash_flows.extend(effect.cash_flows)
        layer.rejections.extend((record.contract_id, reason) for reason in effect.refusals)
        for nested in effect.exercises:
            self.exercise(layer, nested.contract_id, nested.choice, nested.args, authority, depth + 1)
        if effect.signals:
            if not signals:
                raise ContractError(f"a {name} contract may not broadcast while handling a broadcast")
            layer.signals.extend(effect.signals)

    def broadcast(self) -> None:
        """Deliver every signal to every other active contract, in creation order.

        One contract's refusal is reported as an item-level rejection and leaves it unchanged.
        """
        delivered = 0
        while delivered < len(self.layer.signals):
            signal = self.layer.signals[delivered]
            delivered += 1
            for contract_id in self.layer.order():
                record = self.layer.get(contract_id)
                if record is None or not record.active or contract_id == signal.source_id:
                    continue
                step = _Layer(self.layer)
                signatories = record.state.signatories()
                try:
                    effect = record.state.receive(self.context(contract_id, signatories, step), signal)
                    if effect is not None:
                        self.apply_effect(step, record, effect, signatories, 0, signals=False)
                except (ContractError, InputError) as exc:
                    self.layer.rejections.append((contract_id, str(exc)))
                    continue
                step.commit()


# --------------------------------------------------------------------------- helpers


def _reject_constant(name: str) -> Any:
    raise InputError(f"payload holds {name}, which is not a number")


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"payload is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InputError("a contract or observation payload is a JSON object")
    return body


def _ccp_imbalance(flows: list[CashFlowInstruction], participants: Mapping[str, str]) -> str:
    """'' when every CCP's flows net to zero per (currency, settlement date), else why not."""
    nets: dict[tuple[str, str, dt.date], int] = {}
    for flow in flows:
        for party, sign in ((flow.payer, -1), (flow.receiver, 1)):
            if participants.get(party) == "ccp":
                key = (party, flow.currency, flow.settlement_date)
                nets[key] = nets.get(key, 0) + sign * flow.amount_minor
    for (party, currency, day), net in sorted(nets.items()):
        if net:
            return f"the cash flows of {party} do not net to zero: {net} minor units of {currency} on {day}"
    return ""


def _changes(engine: ContractEngine, layer: _Layer) -> dict[str, Any]:
    created = set(layer.created)
    archived = [cid for cid, record in layer.contracts.items() if not record.active and cid not in created]
    updated = [cid for cid, record in layer.contracts.items() if record.active and cid not in created]
    by_currency: dict[str, int] = {}
    for flow in layer.cash_flows:
        by_currency[flow.currency] = by_currency.get(flow.currency, 0) + flow.amount_minor
    return {
        "created": list(layer.created),
        "archived": archived,
        "updated": updated,
        "cash_flows": len(layer.cash_flows),
        "cash_flow_gross_minor": dict(sorted(by_currency.items())),
        "refused": len(layer.rejections),
    }

