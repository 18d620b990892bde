"""Recovery codes: ten per user, about 50 bits each, shown once, kept only as HMACs.

A code is ten characters of Crockford's base32 shown as `xxxxx-xxxxx`; typed back with or
without the dash, in any case, with spaces, and with the letters people confuse (O for 0,
I and L for 1) read as the digits they look like.
"""

from __future__ import annotations

import secrets
import unicodedata

COUNT = 10
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford: no i, l, o, u
_LENGTH = 10  # 50 bits
_CONFUSED = str.maketrans({"o": "0", "i": "1", "l": "1"})


def generate() -> list[str]:
    codes: set[str] = set()
    while len(codes) < COUNT:
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        codes.add(f"{raw[:5]}-{raw[5:]}")
    return sorted(codes)


def normalize(code: str) -> str | None:
    """The canonical ten characters of a code as typed, or None if it cannot be one."""
    if len(code) > 40:
        return None
    text = unicodedata.normalize("NFKC", code).lower().translate(_CONFUSED)
    text = "".join(ch for ch in text if ch not in " -\t")
    if len(text) != _LENGTH or any(ch not in _ALPHABET for ch in text):
        return None
    return text
