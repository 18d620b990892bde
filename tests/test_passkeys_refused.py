"""Every wrong passkey answer is refused cleanly and writes nothing but its audit event:
other relying-party ids and origins, other challenges, no user verification, replays,
unknown and re-registered credentials, malformed or oversized JSON, a counter going back.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update

from identity.container import Container
from identity.db import models
from tests.conftest import GraphQLClient, SignedIn, login, register, row_counts, scalar
from tests.mfa_helpers import mfa_login, set_verified, verified_user
from tests.passkey_helpers import (
    add_passkey,
    finish_login,
    finish_registration,
    passkey_login,
    password_step,
    start_login,
    start_registration,
)
from tests.webauthn_authenticator import Passkey, SoftAuthenticator, b64, unb64

# What a refusal may change: its audit event, and the challenge it used up.
_BOOKKEEPING = ("audit_events", "challenges")


async def _registration_refused(
    gql: GraphQLClient, container: Container, user: SignedIn, credential: Any
) -> dict[str, Any]:
    started = await start_registration(gql, user.access_token)
    before = await row_counts(container, ignore=_BOOKKEEPING)
    done = await finish_registration(
        gql, user.access_token, started["registrationToken"], credential(started["options"])
    )
    assert await row_counts(container, ignore=_BOOKKEEPING) == before
    return done


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"origin": "https://evil.example"}, "invalid_credential"),
        ({"rp_id": "evil.example"}, "invalid_credential"),
        ({"challenge": b64(b"x" * 32)}, "invalid_credential"),
        ({"uv": False}, "invalid_credential"),
    ],
    ids=["origin", "rp-id", "challenge", "no-user-verification"],
)
async def test_a_registration_for_another_site_or_challenge_or_without_uv_is_refused(
    gql: GraphQLClient, container: Container, answer: dict[str, Any], code: str
) -> None:
    user = await verified_user(gql, container)
    authenticator = SoftAuthenticator()
    done = await _registration_refused(
        gql, container, user, lambda options: authenticator.create(options, **answer)
    )
    assert done["__typename"] == "ValidationError", done
    assert done["fields"] == [{"field": "credential", "code": code}]
    assert await scalar(container, "SELECT count(*) FROM factors") == 0
    assert (
        await scalar(
            container,
            "SELECT count(*) FROM audit_events WHERE action = 'mfa.passkey_registration_failed'",
        )
        == 1
    )


@pytest.mark.parametrize(
    ("credential", "code"),
    [
        ("not json", "invalid_credential"),
        ({"id": "abc", "rawId": "abc", "response": {}}, "invalid_credential"),
        ([1, 2, 3], "invalid_credential"),
        ({"id": "a" * 20000}, "too_long"),
    ],
    ids=["text", "incomplete", "array", "oversized"],
)
async def test_a_malformed_or_oversized_registration_is_a_validation_error(
    gql: GraphQLClient, container: Container, credential: Any, code: str
) -> None:
    user = await verified_user(gql, container)
    done = await _registration_refused(gql, container, user, lambda _: credential)
    assert done["__typename"] == "ValidationError", done
    assert done["fields"] == [{"field": "credential", "code": code}]


async def test_a_registration_token_serves_once_and_only_its_user(
    gql: GraphQLClient, container: Container
) -> None:
    ann = await verified_user(gql, container)
    bob = await verified_user(gql, container, "bob@example.com")
    authenticator = SoftAuthenticator()
    started = await start_registration(gql, ann.access_token)
    credential = authenticator.create(started["options"])
    token = started["registrationToken"]
    stolen = await finish_registration(gql, bob.access_token, token, credential)
    assert stolen["__typename"] == "InvalidToken"
    done = await finish_registration(gql, ann.access_token, token, credential)
    assert done["__typename"] == "FinishPasskeyRegistrationSuccess"
    again = await finish_registration(gql, ann.access_token, token, credential)
    assert again["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT count(*) FROM factors") == 1


async def test_an_already_registered_credential_is_refused(
    gql: GraphQLClient, container: Container
) -> None:
    ann = await verified_user(gql, container)
    bob = await verified_user(gql, container, "bob@example.com")
    authenticator = SoftAuthenticator()
    await add_passkey(gql, ann.access_token, authenticator)
    taken = authenticator.passkeys[0].credential_id
    done = await _registration_refused(
        gql, container, bob, lambda options: authenticator.create(options, credential_id=taken)
    )
    assert done["__typename"] == "ValidationError"
    assert done["fields"] == [{"field": "credential", "code": "already_registered"}]
    owner = await scalar(container, "SELECT count(DISTINCT user_id) FROM factors")
    assert owner == 1


# Signing in -----------------------------------------------------------------------------


async def _with_passkey(
    gql: GraphQLClient, container: Container, counting: bool = False
) -> tuple[SignedIn, SoftAuthenticator]:
    user = await verified_user(gql, container)
    authenticator = SoftAuthenticator(counting=counting)
    await add_passkey(gql, user.access_token, authenticator)
    return user, authenticator


async def _sign_in_refused(
    gql: GraphQLClient, container: Container, authenticator: SoftAuthenticator, **answer: Any
) -> dict[str, Any]:
    before = await row_counts(container, ignore=_BOOKKEEPING)
    sign_counts = await scalar(container, "SELECT sum(sign_count) FROM factors")
    done = await passkey_login(gql, authenticator, **answer)
    assert await row_counts(container, ignore=_BOOKKEEPING) == before
    assert await scalar(container, "SELECT sum(sign_count) FROM factors") == sign_counts
    return done


@pytest.mark.parametrize(
    "answer",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"challenge": b64(b"y" * 32)},
        {"uv": False},
        {"user_handle": uuid.uuid4().bytes},
    ],
    ids=["origin", "rp-id", "challenge", "no-user-verification", "user-handle"],
)
async def test_a_sign_in_for_another_site_or_challenge_or_without_uv_is_refused(
    gql: GraphQLClient, container: Container, answer: dict[str, Any]
) -> None:
    _, authenticator = await _with_passkey(gql, container)
    done = await _sign_in_refused(gql, container, authenticator, **answer)
    assert done["__typename"] == "InvalidCredentials", done
    failed = await scalar(
        container,
        "SELECT count(*) FROM audit_events WHERE action = 'auth.login_failed'",
    )
    assert failed == 1


async def test_an_unknown_credential_is_refused(gql: GraphQLClient, container: Container) -> None:
    await _with_passkey(gql, container)
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": "testserver"}, "user": {"id": b64(b"u")}, "challenge": "x"})
    done = await _sign_in_refused(gql, container, stranger)
    assert done["__typename"] == "InvalidCredentials"


async def test_an_assertion_serves_once(gql: GraphQLClient, container: Container) -> None:
    _, authenticator = await _with_passkey(gql, container)
    started = await start_login(gql)
    credential = authenticator.get(started["options"])
    first = await finish_login(gql, started["challengeToken"], credential)
    assert first["__typename"] == "AuthPayload"
    replayed = await finish_login(gql, started["challengeToken"], credential)
    assert replayed["__typename"] == "InvalidToken"
    # With a fresh challenge token the old assertion signs the wrong challenge.
    fresh = await start_login(gql)
    again = await finish_login(gql, fresh["challengeToken"], credential)
    assert again["__typename"] == "InvalidCredentials"
    # And a wrong answer uses the challenge up as well.
    retry = await finish_login(gql, fresh["challengeToken"], authenticator.get(fresh["options"]))
    assert retry["__typename"] == "InvalidToken"


async def test_a_counter_going_backwards_is_refused_and_audited(
    gql: GraphQLClient, container: Container
) -> None:
    _, authenticator = await _with_passkey(gql, container, counting=True)
    assert (await passkey_login(gql, authenticator, counter=7))["__typename"] == "AuthPayload"
    assert await scalar(container, "SELECT sign_count FROM factors") == 7
    done = await _sign_in_refused(gql, container, authenticator, counter=5)
    assert done["__typename"] == "InvalidCredentials"
    same = await _sign_in_refused(gql, container, authenticator, counter=7)
    assert same["__typename"] == "InvalidCredentials"
    audited = await scalar(
        container,
        "SELECT count(*) FROM audit_events WHERE action = 'auth.passkey_counter_regressed'",
    )
    assert audited == 2
    assert (await passkey_login(gql, authenticator, counter=8))["__typename"] == "AuthPayload"


async def test_a_deactivated_account_is_refused(gql: GraphQLClient, container: Container) -> None:
    user, authenticator = await _with_passkey(gql, container)
    async with container.writes() as db:
        await db.execute(
            update(models.User)
            .where(models.User.id == uuid.UUID(user.user_id))
            .values(is_active=False)
        )
        await db.commit()
    done = await _sign_in_refused(gql, container, authenticator)
    assert done["__typename"] == "AccountDisabled"


@pytest.mark.parametrize("settings_overrides", [{"require_verified_email": True}])
async def test_an_unverified_address_is_refused_when_verification_is_required(
    gql: GraphQLClient, container: Container
) -> None:
    await register(gql)
    await set_verified(container, "ann@example.com")
    user = await login(gql)
    authenticator = SoftAuthenticator()
    await add_passkey(gql, user.access_token, authenticator)
    async with container.writes() as db:
        await db.execute(
            update(models.User)
            .where(models.User.id == uuid.UUID(user.user_id))
            .values(is_verified=False)
        )
        await db.commit()
    done = await _sign_in_refused(gql, container, authenticator)
    assert done["__typename"] == "EmailNotVerified"


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_login_account": "3/hour"}])
async def test_the_password_lock_out_neither_blocks_nor_counts_passkeys(
    gql: GraphQLClient, container: Container
) -> None:
    _, authenticator = await _with_passkey(gql, container)
    for _ in range(3):
        wrong = await mfa_login(gql, password="wrong password!")
        assert wrong["__typename"] == "InvalidCredentials"
    locked = await password_step(gql)
    assert locked["__typename"] == "RateLimited"
    # Locked for passwords; the passkey still signs in, and its sign-ins clear nothing.
    assert (await passkey_login(gql, authenticator))["__typename"] == "AuthPayload"
    assert (await password_step(gql))["__typename"] == "RateLimited"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_passkey_address": "3/hour", "rate_limit_passkey_credential": "10000/hour"}],
)
async def test_passkey_sign_ins_are_limited_per_client_address(
    gql: GraphQLClient, container: Container
) -> None:
    _, authenticator = await _with_passkey(gql, container)
    # The challenges count (each takes one answer), not the answers again.
    assert (await passkey_login(gql, authenticator))["__typename"] == "AuthPayload"  # 1
    assert (await start_login(gql))["__typename"] == "StartPasskeyLoginSuccess"  # 2
    kept = await start_login(gql)  # 3
    assert kept["__typename"] == "StartPasskeyLoginSuccess"
    before = await row_counts(container, ignore=_BOOKKEEPING)
    limited = await start_login(gql)
    assert limited["__typename"] == "RateLimited"
    assert limited["retryAfter"] > 0
    assert await row_counts(container, ignore=_BOOKKEEPING) == before
    answer = authenticator.get(kept["options"])
    finished = await finish_login(gql, kept["challengeToken"], answer)
    assert finished["__typename"] == "AuthPayload"


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_passkey_address": "10000/hour", "rate_limit_passkey_credential": "2/hour"}],
)
async def test_passkey_sign_ins_are_limited_per_credential(
    gql: GraphQLClient, container: Container
) -> None:
    _, authenticator = await _with_passkey(gql, container)
    for _ in range(2):
        assert (await passkey_login(gql, authenticator))["__typename"] == "AuthPayload"
    before = await row_counts(container, ignore=_BOOKKEEPING)
    limited = await passkey_login(gql, authenticator)
    assert limited["__typename"] == "RateLimited"
    assert limited["retryAfter"] > 0
    assert await row_counts(container, ignore=_BOOKKEEPING) == before


# Racing answers -------------------------------------------------------------------------


async def test_one_answer_raced_against_itself_signs_in_once(
    gql: GraphQLClient, container: Container
) -> None:
    _, authenticator = await _with_passkey(gql, container)
    started = await start_login(gql)
    credential = authenticator.get(started["options"])
    answers = await asyncio.gather(
        *(finish_login(gql, started["challengeToken"], credential) for _ in range(4))
    )
    kinds = sorted(a["__typename"] for a in answers)
    assert kinds == ["AuthPayload", "InvalidToken", "InvalidToken", "InvalidToken"]
    assert await scalar(container, "SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == 2


async def test_one_credential_registered_by_two_accounts_at_once_goes_to_one(
    gql: GraphQLClient, container: Container
) -> None:
    ann = await verified_user(gql, container)
    bob = await verified_user(gql, container, "bob@example.com")
    authenticator = SoftAuthenticator()
    shared = b"one credential id"
    finishes = []
    for user in (ann, bob):
        started = await start_registration(gql, user.access_token)
        credential = authenticator.create(started["options"], credential_id=shared)
        finishes.append(
            finish_registration(gql, user.access_token, started["registrationToken"], credential)
        )
    answers = await asyncio.gather(*finishes)
    kinds = sorted(a["__typename"] for a in answers)
    assert kinds == ["FinishPasskeyRegistrationSuccess", "ValidationError"], answers
    assert await scalar(container, "SELECT count(*) FROM factors") == 1


@pytest.mark.parametrize(
    "settings_overrides",
    [{"rate_limit_passkey_address": "10000/hour", "rate_limit_passkey_credential": "10/minute"}],
)
async def test_made_up_answers_naming_a_passkey_do_not_lock_its_owner_out(
    gql: GraphQLClient, container: Container
) -> None:
    victim = await verified_user(gql, container)
    authenticator = SoftAuthenticator()
    await add_passkey(gql, victim.access_token, authenticator)
    # Whoever knows the password sees the credential id in MfaRequired's options.
    step = await password_step(gql)
    credential_id = unb64(step["passkeyOptions"]["allowCredentials"][0]["id"])
    forged = Passkey(
        credential_id=credential_id,
        key=ec.generate_private_key(ec.SECP256R1()),  # not the owner's key
        rp_id="testserver",
        user_handle=authenticator.passkeys[0].user_handle,
    )
    attacker = SoftAuthenticator()
    for _ in range(12):
        started = await start_login(gql)
        made_up = attacker.get(started["options"], passkey=forged)
        refused = await finish_login(gql, started["challengeToken"], made_up)
        assert refused["__typename"] == "InvalidCredentials", refused
    assert (await passkey_login(gql, authenticator))["__typename"] == "AuthPayload"


async def test_a_credential_id_longer_than_webauthn_allows_is_refused(
    gql: GraphQLClient, container: Container
) -> None:
    user = await verified_user(gql, container)
    started = await start_registration(gql, user.access_token)
    credential = SoftAuthenticator().create(started["options"], credential_id=os.urandom(1024))
    before = await scalar(container, "SELECT count(*) FROM factors")
    done = await finish_registration(
        gql, user.access_token, started["registrationToken"], credential
    )
    assert done["__typename"] == "ValidationError", done
    assert await scalar(container, "SELECT count(*) FROM factors") == before


@pytest.mark.parametrize("which", ["login", "registration"])
async def test_a_deeply_nested_credential_is_a_validation_error(
    gql: GraphQLClient, container: Container, which: str
) -> None:
    nested = "[" * 8000 + "]" * 8000
    if which == "login":
        started = await start_login(gql)
        done = await finish_login(gql, started["challengeToken"], nested)
    else:
        user = await verified_user(gql, container)
        started = await start_registration(gql, user.access_token)
        done = await finish_registration(
            gql, user.access_token, started["registrationToken"], nested
        )
    assert done["__typename"] == "ValidationError", done
