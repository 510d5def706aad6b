"""Participant authentication by Ed25519 challenge, short-lived bearer tokens, and the role policy.

A participant asks for a challenge, signs the UTF-8 bytes of the nonce text with its registered
key (the one the ledger holds: ``StateMachine.participant(id).public_key``) and trades the
signature for a bearer token. Nonces are single-use, expire after two minutes and always start
with ``NONCE_PREFIX``, so a nonce can never be mistaken for a 32-byte submission or block digest
(a client must refuse to sign anything else). No passwords exist. This is the only place in the
API that reads the clock, for expiry, through an injectable ``clock``.
Imports clearhouse.ledger.crypto, clearhouse.state and the API's own errors only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from clearhouse.interfaces.api.errors import ApiError, forbidden, not_authenticated
from clearhouse.ledger.crypto import KeyPair, verify_signature
from clearhouse.state.kinds import Role
from clearhouse.state.machine import Participant

NONCE_PREFIX = "clearhouse-auth-v1:"
CHALLENGE_TTL_S = 120
TOKEN_TTL_S = 900
OUTSTANDING_MAX = 10_000

#: roles that read every participant's data; the CCP operates, the regulator only reads
OVERSIGHT = frozenset({Role.ccp, Role.regulator})
#: roles that report trades (the core re-checks: a member only trades it is party to)
TRADE_SUBMITTERS = frozenset({Role.member, Role.venue})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Attributes: participant_id, role, expires_at (clock seconds)."""

    participant_id: str
    role: Role
    expires_at: float


class Authenticator:
    """Challenges and tokens in memory; a restarted server asks everyone to log in again."""

    def __init__(
        self,
        lookup: Callable[[str], Participant | None],
        clock: Callable[[], float] = time.time,
        token_ttl_s: int = TOKEN_TTL_S,
        challenge_ttl_s: int = CHALLENGE_TTL_S,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self.token_ttl_s = token_ttl_s
        self.challenge_ttl_s = challenge_ttl_s
        self._challenges: dict[str, tuple[str, float]] = {}
        self._tokens: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def _participant(self, participant_id: str) -> Participant:
        p = self._lookup(participant_id)
        if p is None:
            raise not_authenticated(f"no participant {participant_id!r} on the ledger")
        return p

    def _purge(self, now: float) -> None:
        self._challenges = {n: v for n, v in self._challenges.items() if v[1] > now}
        self._tokens = {t: p for t, p in self._tokens.items() if p.expires_at > now}

    def challenge(self, participant_id: str) -> str:
        """A fresh single-use nonce for the participant."""
        self._participant(participant_id)
        now = self._clock()
        nonce = NONCE_PREFIX + secrets.token_hex(32)
        with self._lock:
            self._purge(now)
            if len(self._challenges) >= OUTSTANDING_MAX:
                raise ApiError(503, "busy", "too many outstanding challenges; try again shortly")
            self._challenges[nonce] = (participant_id, now + self.challenge_ttl_s)
        return nonce

    def token(self, participant_id: str, nonce: str, signature_hex: str) -> tuple[str, Principal]:
        """Exchange a signed nonce for a bearer token."""
        p = self._participant(participant_id)
        now = self._clock()
        with self._lock:
            entry = self._challenges.pop(nonce, None)
        if entry is None or entry[1] <= now:
            raise not_authenticated("unknown or expired nonce; ask for a new challenge")
        if entry[0] != participant_id:
            raise not_authenticated("the nonce was issued to another participant")
        if not verify_signature(p.public_key, nonce.encode(), bytes.fromhex(signature_hex)):
            raise not_authenticated(f"the signature does not verify with {participant_id}'s registered key")
        return self._issue(p, now)

    def login_with_seed(self, participant_id: str, seed: bytes) -> tuple[str, Principal]:
        """A token for whoever holds the participant's key seed (the loopback dashboard route)."""
        p = self._participant(participant_id)
        if KeyPair(seed).public_key != p.public_key:
            raise not_authenticated(f"that seed is not {participant_id}'s registered key")
        return self._issue(p, self._clock())

    def _issue(self, p: Participant, now: float) -> tuple[str, Principal]:
        token = secrets.token_urlsafe(32)
        principal = Principal(p.id, p.role, now + self.token_ttl_s)
        with self._lock:
            self._purge(now)
            self._tokens[token] = principal
        return token, principal

    def principal(self, token: str) -> Principal:
        """The caller a token stands for; 401 when unknown or expired."""
        now = self._clock()
        with self._lock:
            p = self._tokens.get(token)
        if p is None or p.expires_at <= now:
            raise not_authenticated("the bearer token is unknown or has expired; log in again")
        return p

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def expires_in(self, p: Principal) -> int:
        return max(0, int(p.expires_at - self._clock()))


def require_role(p: Principal, roles: frozenset[Role], action: str) -> None:
    if p.role not in roles:
        allowed = ", ".join(sorted(str(r) for r in roles))
        raise forbidden(f"a {p.role} may not {action} (allowed: {allowed})")


def require_reader_of(p: Principal, participant_id: str) -> None:
    """A participant reads its own data; the CCP and the regulator read everyone's."""
    if p.participant_id != participant_id and p.role not in OVERSIGHT:
        raise forbidden(f"{p.participant_id} may read only its own data, not {participant_id}'s")
