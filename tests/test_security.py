"""Unit tests of the security primitives: passwords, derived tokens, JWT keys."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.config import Settings
from identity.security.derive import ServerSecret, Unsealable
from identity.security.jwt import (
    AccessClaims,
    InvalidAccessToken,
    KeyRing,
    StoredKey,
    generate_key,
    jwk_thumbprint,
)
from identity.security.passwords import PasswordHasher, common_passwords, password_problem

SECRET = ServerSecret(b"s" * 48)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# Passwords -------------------------------------------------------------------------------


def test_default_hash_parameters_are_owasp() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (
        settings.argon2_memory_cost,
        settings.argon2_time_cost,
        settings.argon2_parallelism,
    ) == (
        19456,
        2,
        1,
    )
    hasher = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1)
    encoded = hasher.hash_sync("correct horse battery")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify_sync(encoded, "correct horse battery").ok
    hasher.close()


async def test_verify_reports_rehash_for_other_parameters() -> None:
    weak = PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1)
    strong = PasswordHasher(memory_cost=2048, time_cost=2, parallelism=1)
    encoded = await weak.hash("correct horse battery")
    result = await strong.verify(encoded, "correct horse battery")
    assert result.ok
    assert result.needs_rehash
    assert not (await weak.verify(encoded, "correct horse battery")).needs_rehash
    assert not (await strong.verify(encoded, "wrong")).ok
    assert not (await strong.verify("not a hash", "correct horse battery")).ok
    assert not (await strong.verify(None, "correct horse battery")).ok
    weak.close()
    strong.close()


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("1234567", "too_short"),
        ("12345678", "too_common"),
        ("Password", "too_common"),
        ("a" * 129, "too_long"),
        ("a" * 128, None),
        ("tr0ub4dor&3 staple", None),
        ("ëëëëëëëë", None),  # no composition rules
    ],
)
def test_password_policy(password: str, code: str | None) -> None:
    problem = password_problem(password)
    assert (problem[0] if problem else None) == code


def test_common_password_list_is_loaded() -> None:
    assert len(common_passwords()) > 10_000
    assert "password" in common_passwords()


# Derived tokens --------------------------------------------------------------------------


def test_opaque_token_round_trip_and_binding() -> None:
    ids = uuid.uuid4().bytes
    token = SECRET.token("reset", ids)
    assert len(base64.urlsafe_b64decode(token + "==")) == 16 + 32
    assert SECRET.open_token("reset", token, 16) == ids
    assert SECRET.open_token("verify", token, 16) is None  # bound to its purpose
    assert ServerSecret(b"t" * 48).open_token("reset", token, 16) is None  # and to the secret
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert SECRET.open_token("reset", tampered, 16) is None
    assert SECRET.open_token("reset", token + "!", 16) is None
    assert SECRET.open_token("reset", "", 16) is None


# JWT -------------------------------------------------------------------------------------


def stored(
    alg: str = "RS256", *, activates_at: datetime = NOW, revoked_at: datetime | None = None
) -> StoredKey:
    key = generate_key(alg, SECRET)
    return StoredKey(
        kid=key.kid,
        algorithm=key.algorithm,
        public_jwk=key.public_jwk,
        private_key=key.encrypted_private_key,
        created_at=activates_at,
        activates_at=activates_at,
        revoked_at=revoked_at,
    )


def ring(*keys: StoredKey) -> KeyRing:
    result = KeyRing(
        SECRET, issuer="https://id.example", audience="api", access_token_ttl=900, leeway=30
    )
    result.load(keys)
    return result


def sign(keyring: KeyRing, now: datetime = NOW) -> str:
    return keyring.sign(sub=uuid.uuid4(), sid=uuid.uuid4(), roles=["user"], now=now)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_sign_and_verify_each_algorithm(alg: str) -> None:
    keyring = ring(stored(alg))
    token = sign(keyring)
    claims = keyring.verify(token, NOW)
    assert isinstance(claims, AccessClaims)
    assert jwt.get_unverified_header(token)["alg"] == alg


def test_private_key_is_encrypted_at_rest() -> None:
    from identity.security.derive import Unsealable

    key = stored()
    assert b"PRIVATE KEY" not in key.private_key
    assert ring(key).has_signer(NOW)  # the right secret opens it
    other = KeyRing(
        ServerSecret(b"other" * 10), issuer="i", audience="a", access_token_ttl=900, leeway=0
    )
    with pytest.raises(Unsealable):  # a database backup without the secret is useless
        other.load([key])


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # The example of RFC 7638, section 3.1.
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_verification_pins_algorithm_type_issuer_audience() -> None:
    key = stored()
    keyring = ring(key)
    good = sign(keyring)
    payload = jwt.decode(good, options={"verify_signature": False})
    header = jwt.get_unverified_header(good)

    # alg=none
    unsigned = jwt.encode(
        payload,
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    # HS256 keyed with the public key (the classic confusion attack)
    confused = _hs256({**header, "alg": "HS256"}, payload, json.dumps(key.public_jwk).encode())
    # wrong typ, issuer, audience
    private = keyring._keys[key.kid].private_key
    wrong_typ = jwt.encode(
        payload, private, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"}
    )
    wrong_iss = jwt.encode(
        {**payload, "iss": "https://evil"}, private, algorithm="RS256", headers=header
    )
    wrong_aud = jwt.encode({**payload, "aud": "other"}, private, algorithm="RS256", headers=header)
    no_sid = jwt.encode({k: v for k, v in payload.items() if k != "sid"}, private, "RS256", header)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(payload, other_key, algorithm="RS256", headers=header)
    unknown_kid = jwt.encode(payload, private, algorithm="RS256", headers={**header, "kid": "nope"})
    for token in (unsigned, confused, wrong_typ, wrong_iss, wrong_aud, no_sid, forged, unknown_kid):
        with pytest.raises(InvalidAccessToken):
            keyring.verify(token, NOW)
    keyring.verify(good, NOW)


def _hs256(header: dict[str, object], payload: dict[str, object], secret: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_expiry_with_leeway() -> None:
    keyring = ring(stored())
    token = sign(keyring)
    keyring.verify(token, NOW + timedelta(seconds=900 + 29))
    with pytest.raises(InvalidAccessToken):
        keyring.verify(token, NOW + timedelta(seconds=900 + 30))
    with pytest.raises(InvalidAccessToken):  # issued in the future
        keyring.verify(token, NOW - timedelta(seconds=31))


def test_two_phase_rotation() -> None:
    old = stored(activates_at=NOW - timedelta(days=1))
    new = stored(activates_at=NOW + timedelta(seconds=300))
    keyring = ring(old, new)
    # Phase 1: the new key is published but the old one still signs.
    assert {k["kid"] for k in keyring.jwks(NOW)["keys"]} == {old.kid, new.kid}
    before = sign(keyring, NOW)
    assert jwt.get_unverified_header(before)["kid"] == old.kid
    # Phase 2: the new key signs; the old one stays published until its tokens expired.
    later = NOW + timedelta(seconds=300)
    after = sign(keyring, later)
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    keyring.verify(before, later)
    states = {s.kid: s.state for s in keyring.states(later)}
    assert states == {old.kid: "retired", new.kid: "active"}
    # Once every token it signed has expired, the old key leaves the JWKS.
    gone = later + timedelta(seconds=900 + 30)
    assert {k["kid"] for k in keyring.jwks(gone)["keys"]} == {new.kid}
    assert {s.kid: s.state for s in keyring.states(gone)}[old.kid] == "expired"


def test_revoked_key_is_dropped_at_once() -> None:
    key = stored()
    keyring = ring(key)
    token = sign(keyring)
    keyring.load([dataclasses.replace(key, revoked_at=NOW)])
    with pytest.raises(InvalidAccessToken):
        keyring.verify(token, NOW)
    assert keyring.jwks(NOW) == {"keys": []}
    assert not keyring.has_signer(NOW)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_a_revoked_key_is_not_decrypted(alg: str) -> None:
    """It signs nothing again, so its private half stays sealed (read from the database as
    it is, even unreadable); its tokens are refused as a known revoked key's."""
    good = stored(alg)
    token = sign(ring(good))
    revoked = dataclasses.replace(good, revoked_at=NOW, private_key=b"not a sealed key")
    keyring = ring(revoked)
    with pytest.raises(InvalidAccessToken):
        keyring.verify(token, NOW)
    assert not keyring.has_signer(NOW)
    with pytest.raises(Unsealable):  # the same row, not revoked: it must be decrypted
        ring(dataclasses.replace(revoked, revoked_at=None))


# Secret rotation: fallbacks verify and open, only the current secret makes -----------------


def test_a_fallback_secret_checks_and_opens_what_it_made_but_makes_nothing_new() -> None:
    old, new = b"o" * 48, b"n" * 48
    before = ServerSecret(old)
    during = ServerSecret(new, [old])
    token = before.token("reset", b"i" * 16, b"bound")
    sealed = before.seal("totp-secret", b"JBSWY3DPEHPK3PXP", b"factor-1")
    cursor_mac = before.mac("cursor:users", b"payload")[:12]

    assert during.check("reset", *_split(token), b"bound")
    assert during.unseal("totp-secret", sealed, b"factor-1") == b"JBSWY3DPEHPK3PXP"
    assert during.sealed_with("totp-secret", sealed, b"factor-1") == 1
    assert during.verify_mac("cursor:users", b"payload", cursor_mac)
    # New things are made with the current secret only: the old secret alone cannot read them.
    fresh = during.seal("totp-secret", b"secret", b"factor-2")
    assert during.sealed_with("totp-secret", fresh, b"factor-2") == 0
    assert before.sealed_with("totp-secret", fresh, b"factor-2") is None
    assert not before.check("reset", *_split(during.token("reset", b"i" * 16)))


def test_sealed_data_is_bound_to_its_purpose_and_additional_data() -> None:
    from identity.security.derive import Unsealable

    sealed = SECRET.seal("totp-secret", b"value", b"factor-1")
    assert SECRET.unseal("totp-secret", sealed, b"factor-1") == b"value"
    for purpose, aad in (("webhook-secret", b"factor-1"), ("totp-secret", b"factor-2")):
        with pytest.raises(Unsealable):
            SECRET.unseal(purpose, sealed, aad)
    with pytest.raises(Unsealable):
        ServerSecret(b"t" * 48).unseal("totp-secret", sealed, b"factor-1")


def test_fallback_secrets_come_from_settings_and_must_be_long() -> None:
    from pydantic import ValidationError

    current, old = "c" * 40, "o" * 40
    values: dict[str, Any] = {"secret_key": current, "secret_key_fallbacks": f"{old}, {current}"}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    assert settings.secret_fallbacks() == [old.encode()]  # the current one is not a fallback
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(_env_file=None, **{**values, "secret_key_fallbacks": "short"})  # type: ignore[call-arg]


def _split(token: str) -> tuple[bytes, bytes]:
    from identity.security.derive import read_token

    parts = read_token(token, 16)
    assert parts is not None
    return parts
