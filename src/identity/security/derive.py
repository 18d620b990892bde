"""Everything derived from the one server secret: sub-keys, MACs, opaque tokens, sealed data.

A refresh or one-time token is `base64url(ids ‖ HMAC(subkey, purpose ‖ ids))`. The database
keeps only the ids, so a backup alone cannot produce a usable token, and a token can be
re-derived from its ids whenever it is needed again (the refresh grace, the mail outbox).
Secrets the service must read back (signing keys, TOTP secrets, webhook secrets) are sealed
with AES-GCM under a sub-key.

Rotation: earlier secrets (IDENTITY_SECRET_KEY_FALLBACKS) are kept for checking and opening
only. Everything new is made with the current secret; what an earlier secret made keeps
working until `identity secret reencrypt` and the end of the rotation drop it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAC_SIZE = 32  # 256 bits
DATA_KEY_PURPOSE = "data-key"  # the sealing of data keys (services.datakeys)
_NONCE = 12


class Unsealable(Exception):
    """No secret this process knows opens the data: it was sealed under another secret."""


class ServerSecret:
    def __init__(self, secret: bytes, fallbacks: Sequence[bytes] = ()) -> None:
        self._secrets = (secret, *fallbacks)
        self._subkeys: dict[tuple[int, str], bytes] = {}

    @property
    def generations(self) -> int:
        """How many secrets this process knows: the current one first, then the fallbacks."""
        return len(self._secrets)

    def subkey(self, purpose: str, generation: int = 0) -> bytes:
        key = self._subkeys.get((generation, purpose))
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"identity", info=purpose.encode()
            ).derive(self._secrets[generation])
            self._subkeys[(generation, purpose)] = key
        return key

    def mac(self, purpose: str, data: bytes) -> bytes:
        """A MAC under the current secret."""
        return hmac.new(self.subkey(purpose), data, hashlib.sha256).digest()

    def _macs(self, purpose: str, data: bytes) -> list[bytes]:
        return [
            hmac.new(self.subkey(purpose, generation), data, hashlib.sha256).digest()
            for generation in range(self.generations)
        ]

    def verify_mac(self, purpose: str, data: bytes, mac: bytes) -> bool:
        """`mac` (whole, or a truncation of at least 12 bytes) was made by a known secret."""
        if not 12 <= len(mac) <= MAC_SIZE:
            return False
        found = False
        for candidate in self._macs(purpose, data):  # no early exit: the same work each time
            found |= hmac.compare_digest(mac, candidate[: len(mac)])
        return found

    def token(self, purpose: str, ids: bytes, bound: bytes = b"") -> str:
        """An opaque token carrying `ids`, bound to `purpose` and (not carried) `bound`."""
        return _b64encode(ids + self.mac(purpose, ids + bound))

    def open_token(self, purpose: str, token: str, ids_size: int) -> bytes | None:
        """The ids inside a token made by `token(purpose, ids)`, or None for anything else."""
        parts = read_token(token, ids_size)
        if parts is None or not self.check(purpose, *parts):
            return None
        return parts[0]

    def check(self, purpose: str, ids: bytes, mac: bytes, bound: bytes = b"") -> bool:
        return len(mac) == MAC_SIZE and self.verify_mac(purpose, ids + bound, mac)

    def seal(self, purpose: str, plaintext: bytes, aad: bytes = b"") -> bytes:
        """`nonce ‖ AES-GCM(subkey(purpose), plaintext, aad)` under the current secret."""
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self.subkey(purpose)).encrypt(nonce, plaintext, aad)

    def unseal(self, purpose: str, sealed: bytes, aad: bytes = b"") -> bytes:
        """Open what `seal` made, under the current secret or a fallback; else Unsealable."""
        for generation in range(self.generations):
            opened = self._open(purpose, sealed, aad, generation)
            if opened is not None:
                return opened
        raise Unsealable(purpose)

    def sealed_with(self, purpose: str, sealed: bytes, aad: bytes = b"") -> int | None:
        """Which secret opens `sealed`: 0 the current one, 1… a fallback; None if none does."""
        for generation in range(self.generations):
            if self._open(purpose, sealed, aad, generation) is not None:
                return generation
        return None

    def _open(self, purpose: str, sealed: bytes, aad: bytes, generation: int) -> bytes | None:
        if len(sealed) <= _NONCE:
            return None
        aead = AESGCM(self.subkey(purpose, generation))
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except InvalidTag:
            return None


def read_token(token: str, ids_size: int) -> tuple[bytes, bytes] | None:
    """Split a token into (ids, mac) without checking it, or None if it is malformed."""
    if len(token) > 200:
        return None
    raw = _b64decode(token)
    if raw is None or len(raw) != ids_size + MAC_SIZE:
        return None
    return raw[:ids_size], raw[ids_size:]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    try:
        data = text.encode("ascii")
        # validate=True: no silently skipped characters, so each token has one spelling.
        return base64.b64decode(data + b"=" * (-len(data) % 4), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
