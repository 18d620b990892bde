"""Everything derived from the one server secret: sub-keys, MACs and opaque tokens.

A refresh or one-time token is `base64url(ids ‖ HMAC(subkey, purpose ‖ ids))`. The database
keeps only the ids, so a backup alone cannot produce a usable token, and a token can be
re-derived from its ids whenever it is needed again (the refresh grace, the mail outbox).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAC_SIZE = 32  # 256 bits


class ServerSecret:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._subkeys: dict[str, bytes] = {}

    def subkey(self, purpose: str) -> bytes:
        key = self._subkeys.get(purpose)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"identity", info=purpose.encode()
            ).derive(self._secret)
            self._subkeys[purpose] = key
        return key

    def mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self.subkey(purpose), data, hashlib.sha256).digest()

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
        return hmac.compare_digest(mac, self.mac(purpose, ids + bound))


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
