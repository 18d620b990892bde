"""Hashes made by other systems: recognised, verified with their own scheme, marked for upgrade."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator

import argon2
import bcrypt
import pytest

from identity.security import foreign
from identity.security.passwords import PasswordHasher, Verification

PASSWORD = "correct horse battery staple"
# From Django's own test suite (tests/auth_tests/test_hashers.py, Django 1.8): an independent
# vector, so a PBKDF2 check that agrees only with itself would fail here.
DJANGO_VECTOR = "pbkdf2_sha256$20000$seasalt$oBSd886ysm3AqYun62DOdin8YcfbU1z9cksZSuLP9r0="


def bcrypt_hash(password: str | bytes, prefix: str = "$2b$", rounds: int = 4) -> str:
    raw = password.encode() if isinstance(password, str) else password
    encoded = bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode()
    return prefix + encoded[4:]


def django_pbkdf2(password: str, salt: str = "seasalt", iterations: int = 1000) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


@pytest.fixture
def hasher() -> Iterator[PasswordHasher]:
    result = PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1, concurrency=1)
    yield result
    result.close()


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_bcrypt_is_verified_and_marked_for_rehash(hasher: PasswordHasher, prefix: str) -> None:
    encoded = bcrypt_hash(PASSWORD, prefix)
    assert foreign.problem(encoded) is None
    good = hasher.verify_sync(encoded, PASSWORD)
    assert good.ok
    assert good.needs_rehash
    bad = hasher.verify_sync(encoded, PASSWORD + "!")
    assert not bad.ok
    assert not bad.needs_rehash


def test_django_pbkdf2_vector(hasher: PasswordHasher) -> None:
    assert foreign.problem(DJANGO_VECTOR) is None
    assert hasher.verify_sync(DJANGO_VECTOR, "lètmein") == Verification(ok=True, needs_rehash=True)
    assert not hasher.verify_sync(DJANGO_VECTOR, "lètmeinz").ok
    ours = django_pbkdf2(PASSWORD)
    assert hasher.verify_sync(ours, PASSWORD).needs_rehash
    assert not hasher.verify_sync(ours, "wrong password").ok


def test_bcrypt_reads_only_the_first_72_bytes(hasher: PasswordHasher) -> None:
    # 70 ASCII bytes then a 4-byte emoji: byte 72 falls inside it, as it did for the old system.
    password = "a" * 70 + "\U0001f600" + "tail after the limit"
    assert len(password.encode()) > 72
    encoded = bcrypt_hash(password.encode()[:72])
    assert hasher.verify_sync(encoded, password).ok  # no ValueError from bcrypt 5
    assert hasher.verify_sync(encoded, password[:71] + "another tail").ok
    assert not hasher.verify_sync(encoded, "a" * 69 + "b" + "\U0001f600").ok


def test_argon2_users_are_not_truncated(hasher: PasswordHasher) -> None:
    password = "p" * 100
    encoded = hasher.hash_sync(password)
    assert hasher.verify_sync(encoded, password).ok
    assert not hasher.verify_sync(encoded, "p" * 72 + "q" * 28).ok


def test_foreign_hash_also_tries_the_password_as_typed(hasher: PasswordHasher) -> None:
    typed = "\ufb01ve \ufb02ying \ufb01sh"  # ligatures: NFKC turns them into ASCII
    normalized = "five flying fish"
    encoded = bcrypt_hash(typed)
    assert not hasher.verify_sync(encoded, normalized).ok
    assert hasher.verify_sync(encoded, normalized, as_typed=typed).ok
    # argon2 hashes are this service's own, always made from the normalized form.
    ours = hasher.hash_sync(typed)
    assert not hasher.verify_sync(ours, normalized, as_typed=typed).ok


def test_imported_argon2_with_other_parameters_is_upgraded(hasher: PasswordHasher) -> None:
    weak = argon2.PasswordHasher(memory_cost=256, time_cost=1, parallelism=1).hash(PASSWORD)
    assert foreign.problem(weak) is None
    result = hasher.verify_sync(weak, PASSWORD)
    assert result.ok
    assert result.needs_rehash
    same = hasher.hash_sync(PASSWORD)
    assert not hasher.verify_sync(same, PASSWORD).needs_rehash


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        ("md5$abc$def", "unknown hash format"),
        ("$2x$04$" + "a" * 53, "unknown hash format"),  # the broken PHP variant
        ("$argon2i$v=19$m=512,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "unknown hash format"),
        ("$2b$04$tooshort", "malformed bcrypt"),
        ("$2b$03$" + "a" * 53, "bcrypt cost"),
        ("$2b$17$" + "a" * 53, "bcrypt cost"),
        ("pbkdf2_sha256$1000$salt$notbase64", "malformed pbkdf2"),
        ("pbkdf2_sha256$0$salt$" + "A" * 43 + "=", "iterations"),
        ("pbkdf2_sha256$99999999$salt$" + "A" * 43 + "=", "iterations"),
        ("$argon2id$v=19$m=1024,t=1,p=1$bad", "malformed argon2id"),
        ("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "too costly"),
    ],
)
def test_malformed_or_costly_hashes_are_refused(
    hasher: PasswordHasher, encoded: str, message: str
) -> None:
    problem = foreign.problem(encoded)
    assert problem is not None
    assert message in problem
    if "too costly" not in message:  # (that one would really allocate 4 GiB)
        assert not hasher.verify_sync(encoded, PASSWORD).ok


async def test_verification_runs_in_the_hasher_pool(hasher: PasswordHasher) -> None:
    seen: list[str] = []
    real = foreign.verify_bcrypt

    def spy(encoded: str, password: str) -> bool:
        seen.append(threading.current_thread().name)
        return real(encoded, password)

    encoded = bcrypt_hash(PASSWORD)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(foreign, "verify_bcrypt", spy)
        assert (await hasher.verify(encoded, PASSWORD)).ok
    assert seen
    assert all(name.startswith("argon2") for name in seen)
