"""The contract framework: templates, choices, authority, and what an exercise may do.

What lives here: the pieces every contract type is written with.

* :class:`Template`: base class of a contract type. A contract's state is an instance of a frozen
  dataclass subclassing it; the class names its ``signatories`` (parties whose authority created
  it and who are bound by it), its ``observers`` (parties who see it), optional unique ``keys``,
  and its choices.
* :func:`choice`: declares a method as a choice, with the parties who must authorise it
  (``controllers``, from the contract alone, and ``consent``, which may depend on the choice's
  arguments). A plain set means all of them; :func:`any_of` means one of them.
* :class:`Effect`: what a choice (or a broadcast handler) returns: the contract's successor state
  (or None to archive it), contracts created, cash flows to settle, nested exercises, broadcasts
  to every other contract, and item-level refusals.
* :class:`Context`: everything contract code may read: the business date, the acting parties,
  the participants' roles, and other contracts by id or key. There is no clock, network or
  randomness in it, and contract code must not reach for them (``tests/contracts`` checks the
  contract modules' imports).
* :class:`Proposal`: the built-in ``proposal`` template, which collects the authority a choice
  needs from several parties (propose, then approve) before exercising it.
* :func:`canonical` / :func:`state_digest`: the canonical JSON form and digest of any state.

Authority follows the propose/accept discipline of ledger contract languages: a top-level action
carries the authority of its submitter only; inside a choice the authority is the contract's
signatories plus the acting controllers; a contract may be created only with the authority of all
its signatories; a nested exercise needs its controllers within the authority of the choice that
requests it. So every signatory of every contract has consented on the ledger.

Imports the standard library and ``clearhouse.core`` only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar

from clearhouse.core.errors import ClearhouseError, invariant
from clearhouse.core.hashing import canonical_json, sha256

#: Arguments of a choice or a create: a JSON object, numbers read as exact decimals.
Args = Mapping[str, Any]
#: Broadcast the engine sends on a lifecycle action; its value is the business date.
LIFECYCLE = "lifecycle"


class ContractError(ClearhouseError):
    """A refusal by contract code: the action is well formed but not allowed or not possible.

    The engine turns it into a rejected outcome (or an item-level rejection) with this text.
    """


# --------------------------------------------------------------------------- authority


@dataclass(frozen=True, slots=True)
class Requirement:
    """Who must authorise an action: every group needs at least one of its parties.

    Attributes:
        groups: sorted tuples of party ids; ``all_of(a, b)`` is ``((a,), (b,))``, ``any_of(a, b)``
            is ``((a, b),)``.
    """

    groups: tuple[tuple[str, ...], ...]

    def __and__(self, other: Requirement) -> Requirement:
        return Requirement(tuple(sorted(set(self.groups) | set(other.groups))))

    @property
    def parties(self) -> tuple[str, ...]:
        """Every party named by the requirement, sorted."""
        return tuple(sorted({party for group in self.groups for party in group}))

    def satisfied_by(self, authority: Iterable[str]) -> bool:
        have = set(authority)
        return all(have.intersection(group) for group in self.groups)

    def missing(self, authority: Iterable[str]) -> tuple[tuple[str, ...], ...]:
        """The groups ``authority`` does not yet satisfy."""
        have = set(authority)
        return tuple(group for group in self.groups if not have.intersection(group))

    def describe(self, authority: Iterable[str] = ()) -> str:
        """Readable text of the unsatisfied part, e.g. ``A and one of B, C``."""
        parts = [g[0] if len(g) == 1 else "one of " + ", ".join(g) for g in self.missing(authority)]
        return " and ".join(parts)


def all_of(*parties: str) -> Requirement:
    """Every one of ``parties`` must authorise."""
    return Requirement(tuple(sorted({(party,) for party in parties})))


def any_of(*parties: str) -> Requirement:
    """At least one of ``parties`` must authorise."""
    if not parties:
        return Requirement(())
    return Requirement((tuple(sorted(set(parties))),))


def as_requirement(value: Requirement | Iterable[str]) -> Requirement:
    """A requirement from a :class:`Requirement` or a collection of parties (all of them)."""
    if isinstance(value, Requirement):
        return value
    return all_of(*value)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class CashFlowInstruction:
    """One payment to settle: ``payer`` pays ``receiver``.

    Attributes:
        payer: ledger participant id paying.
        receiver: ledger participant id receiving.
        currency: ISO 4217 code.
        settlement_date: the business date it settles on.
        amount_minor: positive amount in minor units.
        reference: unique reference: contract id and the payment's own id.
    """

    payer: str
    receiver: str
    currency: str
    settlement_date: dt.date
    amount_minor: int
    reference: str


@dataclass(frozen=True, slots=True)
class Exercise:
    """A nested exercise requested by a choice.

    Attributes:
        contract_id: the contract to exercise.
        choice: the choice's name.
        args: its arguments.
    """

    contract_id: str
    choice: str
    args: Args


@dataclass(frozen=True, slots=True)
class Signal:
    """A broadcast to every other active contract (``Template.receive``).

    Attributes:
        name: what happened, e.g. ``lifecycle`` or ``observation_corrected``.
        value: what it carries (a date, an observation...).
        source_template: template of the contract that sent it ('' when the engine sends it).
        source_id: id of the contract that sent it ('' when the engine sends it).
    """

    name: str
    value: Any
    source_template: str = ""
    source_id: str = ""


@dataclass(frozen=True, slots=True)
class Effect:
    """What a choice or a broadcast handler does.

    Attributes:
        successor: the contract's next state (the same contract id), or None to archive it.
        created: new contracts; each gets an id from the engine.
        cash_flows: payments to settle.
        exercises: nested exercises, run with the authority of this contract's signatories and
            the acting parties.
        signals: broadcasts to every other active contract (choices only).
        refusals: item-level refusals to report while the effect itself applies.
    """

    successor: Template | None
    created: tuple[Template, ...] = ()
    cash_flows: tuple[CashFlowInstruction, ...] = ()
    exercises: tuple[Exercise, ...] = ()
    signals: tuple[Signal, ...] = ()
    refusals: tuple[str, ...] = ()


# --------------------------------------------------------------------------- context


@dataclass(frozen=True, slots=True)
class Context:
    """What contract code may read.

    Attributes:
        business_date: the business date of the block being applied.
        contract_id: the contract acted on ('' for a top-level create).
        actors: the parties whose authority the action carries.
        participants: every ledger participant id to its role (``member``, ``ccp``, ``oracle``...).
        find: engine look-up of an active contract: by id (``find(None, id)``) or by a template
            name and one of its keys (``find(template, key)``).
    """

    business_date: dt.date
    contract_id: str
    actors: frozenset[str]
    participants: Mapping[str, str]
    find: Callable[[str | None, Any], Template | None]

    def contract(self, contract_id: str) -> Template | None:
        """The active contract with this id."""
        return self.find(None, contract_id)

    def lookup(self, template: str, key: tuple[Any, ...]) -> Template | None:
        """The active contract of ``template`` holding ``key``."""
        return self.find(template, key)

    def role(self, party: str) -> str | None:
        return self.participants.get(party)

    def require_role(self, party: Any, *roles: str) -> str:
        """``party`` as a participant id with one of ``roles``; refused otherwise."""
        if not isinstance(party, str) or self.participants.get(party) not in roles:
            raise ContractError(f"{party!r} is not a participant with role {' or '.join(roles)}")
        return party


# --------------------------------------------------------------------------- templates and choices


ChoiceBody = Callable[[Any, Context, Args], Effect]


@dataclass(frozen=True, slots=True)
class ChoiceSpec:
    """A declared choice.

    Attributes:
        name: the choice's name, as submitted.
        controllers: parties of the contract who must authorise it (from the contract alone).
        consent: further parties who must authorise it, from the contract and the arguments.
        body: the pure function run on exercise.
    """

    name: str
    controllers: Callable[[Any], Requirement | Iterable[str]]
    consent: Callable[[Any, Args], Requirement | Iterable[str]] | None
    body: ChoiceBody

    def requirement(self, contract: Template, args: Args) -> Requirement:
        required = as_requirement(self.controllers(contract))
        if self.consent is not None:
            required = required & as_requirement(self.consent(contract, args))
        return required


def choice(
    *,
    controllers: Callable[[Any], Requirement | Iterable[str]],
    consent: Callable[[Any, Args], Requirement | Iterable[str]] | None = None,
    name: str | None = None,
) -> Callable[[ChoiceBody], ChoiceBody]:
    """Declare a method ``(self, ctx, args) -> Effect`` as a choice of its template."""

    def mark(body: ChoiceBody) -> ChoiceBody:
        body.__choice__ = ChoiceSpec(name or body.__name__, controllers, consent, body)  # type: ignore[attr-defined]
        return body

    return mark


class Template:
    """Base class of a contract type; subclasses are frozen dataclasses holding the state.

    Class attributes:
        name: the template's name on the ledger.
        creatable: whether a participant may create it with a top-level ``create`` action
            (through :meth:`create`); other templates are created only by choices or the engine.
        choices: filled in from the ``@choice`` methods.
    """

    __slots__ = ()

    name: ClassVar[str] = ""
    creatable: ClassVar[bool] = False
    choices: ClassVar[dict[str, ChoiceSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, ChoiceSpec] = {}
        for klass in reversed(cls.__mro__):
            for attribute in vars(klass).values():
                spec = getattr(attribute, "__choice__", None)
                if isinstance(spec, ChoiceSpec):
                    found[spec.name] = spec
        cls.choices = found

    def signatories(self) -> frozenset[str]:
        """Parties bound by the contract; all of them must have authorised its creation."""
        raise NotImplementedError

    def observers(self) -> frozenset[str]:
        """Parties who see the contract without being bound by it."""
        return frozenset()

    def keys(self) -> tuple[tuple[Any, ...], ...]:
        """Keys unique among the active contracts of this template (none by default)."""
        return ()

    @classmethod
    def create(cls, ctx: Context, fields: Args) -> Template:
        """The contract a top-level ``create`` action makes (``creatable`` templates only)."""
        raise ContractError(f"template {cls.name!r} cannot be created directly")

    def receive(self, ctx: Context, signal: Signal) -> Effect | None:
        """React to a broadcast; None when it does not concern this contract."""
        return None


# --------------------------------------------------------------------------- canonical form


def canonical(value: Any) -> Any:
    """The JSON-able canonical form of a state value.

    Dataclasses become objects of their fields, decimals their exact text, fractions
    ``"n/d"``, dates ISO text, tuples lists, sets sorted lists. Floats are refused: no state
    may hold one.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return canonical(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [canonical(item) for item in value]
    if isinstance(value, frozenset | set):
        return sorted(canonical(item) for item in value)
    if isinstance(value, Mapping):
        return {str(key): canonical(item) for key, item in value.items()}
    invariant(False, f"contract state holds a {type(value).__name__}, which has no canonical form")
    return None


def state_digest(template: str, state: Any) -> bytes:
    """Digest of a contract's template name and canonical state."""
    return sha256(b"clearhouse/contract-state/v1", canonical_json([template, canonical(state)]))


# --------------------------------------------------------------------------- proposals


@dataclass(frozen=True, slots=True)
class Proposal(Template):
    """A proposed exercise waiting for the authority it needs (the ``proposal`` template).

    Whoever is named by the target choice's requirement may propose it; the proposer's authority
    is recorded, each further party approves in turn, and the approval that completes the
    requirement exercises the choice with every approver's authority. Until then any pending
    party may decline and any approver may withdraw.

    Attributes:
        target: id of the contract whose choice is proposed.
        target_choice: the choice to exercise.
        args_json: its arguments, canonical JSON text.
        required: the requirement when proposed (groups of parties).
        approvals: parties who have authorised it so far, sorted.
    """

    name: ClassVar[str] = "proposal"
    creatable: ClassVar[bool] = True

    target: str
    target_choice: str
    args_json: str
    required: tuple[tuple[str, ...], ...]
    approvals: tuple[str, ...]

    @property
    def pending(self) -> tuple[str, ...]:
        """Parties of the unsatisfied groups, sorted."""
        missing = Requirement(self.required).missing(self.approvals)
        return tuple(sorted({party for group in missing for party in group}))

    def signatories(self) -> frozenset[str]:
        return frozenset(self.approvals)

    def observers(self) -> frozenset[str]:
        return frozenset(self.pending)

    @classmethod
    def create(cls, ctx: Context, fields: Args) -> Template:
        target, target_choice, args = fields.get("target"), fields.get("choice"), fields.get("args", {})
        if not isinstance(target, str) or not isinstance(target_choice, str) or not isinstance(args, Mapping):
            raise ContractError("a proposal needs target (a contract id), choice (a name) and args (an object)")
        contract = ctx.contract(target)
        if contract is None:
            raise ContractError(f"no active contract {target!r}")
        spec = type(contract).choices.get(target_choice)
        if spec is None:
            raise ContractError(f"template {type(contract).name!r} has no choice {target_choice!r}")
        required = spec.requirement(contract, args)
        if not ctx.actors.intersection(required.parties):
            raise ContractError(f"{', '.join(sorted(ctx.actors))} is not named by choice {target_choice!r}")
        if required.satisfied_by(ctx.actors):
            raise ContractError(f"choice {target_choice!r} needs nobody else: exercise it directly")
        return cls(
            target=target,
            target_choice=target_choice,
            args_json=canonical_json(canonical(args)).decode(),
            required=required.groups,
            approvals=tuple(sorted(ctx.actors.intersection(required.parties))),
        )

    @choice(controllers=lambda c: any_of(*c.pending))
    def approve(self, ctx: Context, args: Args) -> Effect:
        approvals = tuple(sorted(set(self.approvals) | (ctx.actors & set(self.pending))))
        if Requirement(self.required).satisfied_by(approvals):
            exercise = Exercise(self.target, self.target_choice, json.loads(self.args_json))
            return Effect(None, exercises=(exercise,))
        return Effect(dataclasses.replace(self, approvals=approvals))

    @choice(controllers=lambda c: any_of(*c.pending))
    def decline(self, ctx: Context, args: Args) -> Effect:
        return Effect(None)

    @choice(controllers=lambda c: any_of(*c.approvals))
    def withdraw(self, ctx: Context, args: Args) -> Effect:
        return Effect(None)
