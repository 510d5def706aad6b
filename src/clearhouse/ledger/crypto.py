"""Ed25519 keys and signatures (libsodium through PyNaCl), and key files under the data directory.

A key file holds the 32-byte seed in hex, readable by its owner only. Signatures are always over
a 32-byte digest of a whole batch or block, never over a single trade.
Imports clearhouse.core only.
"""

from __future__ import annotations

import os
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from clearhouse.core.errors import InputError


def generate_seed(deterministic_from: bytes | None = None) -> bytes:
    """A new 32-byte seed; ``deterministic_from`` (for seeded simulations only) derives it by hash."""
    if deterministic_from is not None:
        import hashlib

        return hashlib.sha256(b"clearhouse-key" + deterministic_from).digest()
    return os.urandom(32)


class KeyPair:
    """An Ed25519 signing key with its public half."""

    __slots__ = ("_signing",)

    def __init__(self, seed: bytes) -> None:
        self._signing = SigningKey(seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing.verify_key)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    @property
    def seed(self) -> bytes:
        return bytes(self._signing)

    def sign(self, digest: bytes) -> bytes:
        return self._signing.sign(digest).signature


def verify_signature(public_key: bytes, digest: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(digest, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class KeyStore:
    """Key files of the participants this installation holds, one ``<id>.key`` each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, owner: str) -> Path:
        if not owner or "/" in owner or owner.startswith("."):
            raise InputError(f"not a valid key owner name: {owner!r}")
        return self.directory / f"{owner}.key"

    def get_or_create(self, owner: str, deterministic_from: bytes | None = None) -> KeyPair:
        path = self.path(owner)
        if path.exists():
            return self.load(owner)
        self.directory.mkdir(parents=True, exist_ok=True)
        pair = KeyPair(generate_seed(deterministic_from))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(pair.seed.hex() + "\n")
        return pair

    def load(self, owner: str) -> KeyPair:
        path = self.path(owner)
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the key of {owner} at {path}: {exc}") from exc
        if len(seed) != 32:
            raise InputError(f"the key file of {owner} does not hold a 32-byte seed")
        return KeyPair(seed)

    def has(self, owner: str) -> bool:
        return self.path(owner).exists()
