"""Password hashes made by other systems: recognise them, check their shape, verify them.

Imported users keep the hash their old system made until they next sign in; the password is
then checked with that scheme and re-hashed with argon2id (see PasswordHasher.verify_sync).
Costs are bounded so a corrupt or hostile import file cannot make one login take minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

import argon2
import bcrypt
from argon2.exceptions import InvalidHashError

BCRYPT = "bcrypt"
PBKDF2_SHA256 = "pbkdf2_sha256"
ARGON2ID = "argon2id"

# bcrypt only ever read the first 72 bytes of a password; bcrypt 5 raises on longer input.
BCRYPT_MAX_BYTES = 72
BCRYPT_MAX_COST = 16  # 2^16 rounds: about 4 s; 12 is the usual default
PBKDF2_MAX_ITERATIONS = 10_000_000  # Django 6 uses 1.2 million
ARGON2_MAX_MEMORY = 1024 * 1024  # KiB
ARGON2_MAX_TIME = 100
ARGON2_MAX_PARALLELISM = 64

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# Django: pbkdf2_sha256$<iterations>$<salt>$<base64 of the 32-byte digest>
_PBKDF2 = re.compile(r"pbkdf2_sha256\$(\d{1,9})\$([!-#%-~]{1,128})\$([A-Za-z0-9+/]{43}=)")


def scheme(encoded: str) -> str | None:
    """The scheme a stored hash was made with, by its prefix; None when unknown."""
    if encoded.startswith("$argon2id$"):
        return ARGON2ID
    if encoded.startswith(("$2a$", "$2b$", "$2y$")):
        return BCRYPT
    if encoded.startswith("pbkdf2_sha256$"):
        return PBKDF2_SHA256
    return None


def problem(encoded: str) -> str | None:
    """Why a hash cannot be imported (unknown scheme, malformed, too costly), or None."""
    kind = scheme(encoded)
    if kind == BCRYPT:
        match = _BCRYPT.fullmatch(encoded)
        if match is None:
            return "malformed bcrypt hash"
        if not 4 <= int(match[1]) <= BCRYPT_MAX_COST:
            return f"bcrypt cost must be 4 to {BCRYPT_MAX_COST}"
        return None
    if kind == PBKDF2_SHA256:
        match = _PBKDF2.fullmatch(encoded)
        if match is None:
            return "malformed pbkdf2_sha256 hash"
        if not 1 <= int(match[1]) <= PBKDF2_MAX_ITERATIONS:
            return f"pbkdf2_sha256 iterations must be 1 to {PBKDF2_MAX_ITERATIONS}"
        return None
    if kind == ARGON2ID:
        try:
            params = argon2.extract_parameters(encoded)
        except (InvalidHashError, ValueError):
            return "malformed argon2id hash"
        if (
            params.memory_cost > ARGON2_MAX_MEMORY
            or params.time_cost > ARGON2_MAX_TIME
            or params.parallelism > ARGON2_MAX_PARALLELISM
        ):
            return "argon2id parameters too costly"
        return None
    return "unknown hash format (expected bcrypt $2a$/$2b$/$2y$, pbkdf2_sha256$ or $argon2id$)"


def verify_bcrypt(encoded: str, password: str) -> bool:
    # The first 72 bytes, as every bcrypt before version 5 silently did; this may cut a
    # multi-byte character in half, exactly as those did.
    try:
        return bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX_BYTES], encoded.encode("ascii"))
    except ValueError:  # malformed hash
        return False


def verify_pbkdf2_sha256(encoded: str, password: str) -> bool:
    match = _PBKDF2.fullmatch(encoded)
    if match is None or not 1 <= int(match[1]) <= PBKDF2_MAX_ITERATIONS:
        return False
    try:
        expected = base64.b64decode(match[3], validate=True)
    except binascii.Error:
        return False
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), match[2].encode("utf-8"), int(match[1])
    )
    return hmac.compare_digest(digest, expected)


def verify(kind: str, encoded: str, password: str) -> bool:
    """Check a password against a bcrypt or PBKDF2 hash (argon2 is the hasher's own)."""
    if kind == BCRYPT:
        return verify_bcrypt(encoded, password)
    if kind == PBKDF2_SHA256:
        return verify_pbkdf2_sha256(encoded, password)
    return False
