"""A passkey as the second step after a password, and managing passkeys like other factors:
rename, remove (the other sessions end), an admin's reset.
"""

from __future__ import annotations

from typing import Any

import pytest

from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import GraphQLClient, login, row_counts, scalar
from tests.mfa_helpers import MY_FACTORS, claims, enroll, live_sessions, verified_user, verify
from tests.passkey_helpers import add_passkey, passkey_login, password_step
from tests.test_mfa_manage import REMOVE, RENAME, RESET_MFA
from tests.webauthn_authenticator import SoftAuthenticator, b64, unb64

_BOOKKEEPING = ("audit_events", "challenges")


async def _ann_with_passkey(
    gql: GraphQLClient, container: Container, counting: bool = False
) -> SoftAuthenticator:
    user = await verified_user(gql, container)
    authenticator = SoftAuthenticator(counting=counting)
    await add_passkey(gql, user.access_token, authenticator)
    return authenticator


async def test_password_then_passkey(gql: GraphQLClient, container: Container) -> None:
    authenticator = await _ann_with_passkey(gql, container)
    step = await password_step(gql)
    assert step["__typename"] == "MfaRequired", step
    assert step["methods"] == ["PASSKEY", "RECOVERY_CODE"]
    options = step["passkeyOptions"]
    assert options["rpId"] == "testserver"
    assert options["userVerification"] == "required"
    # Restricted to this account's passkeys.
    assert [unb64(c["id"]) for c in options["allowCredentials"]] == [
        authenticator.passkeys[0].credential_id
    ]
    done = await verify(gql, step["mfaToken"], passkey=authenticator.get(options))
    assert done["__typename"] == "AuthPayload", done
    token_claims = claims(done["accessToken"])
    assert token_claims["aal"] == 2
    assert token_claims["amr"] == ["pwd", "hwk", "user", "mfa"]
    assert await scalar(container, "SELECT last_used_at IS NOT NULL FROM factors")


async def test_a_user_with_an_app_and_a_passkey_is_offered_both(
    gql: GraphQLClient, container: Container, clock: Any
) -> None:
    user = await verified_user(gql, container)
    await enroll(gql, user, clock)
    await add_passkey(gql, user.access_token, SoftAuthenticator())
    step = await password_step(gql)
    assert step["methods"] == ["TOTP", "PASSKEY", "RECOVERY_CODE"]
    assert len(step["passkeyOptions"]["allowCredentials"]) == 1


async def test_an_app_only_account_gets_no_passkey_options(
    gql: GraphQLClient, container: Container, clock: Any
) -> None:
    user = await verified_user(gql, container)
    await enroll(gql, user, clock)
    step = await password_step(gql)
    assert step["methods"] == ["TOTP", "RECOVERY_CODE"]
    assert step["passkeyOptions"] is None


async def test_another_users_passkey_is_no_second_factor(
    gql: GraphQLClient, container: Container
) -> None:
    await _ann_with_passkey(gql, container)
    bob = await verified_user(gql, container, "bob@example.com")
    bobs = SoftAuthenticator()
    await add_passkey(gql, bob.access_token, bobs)
    step = await password_step(gql)  # Ann's password
    before = await row_counts(container, ignore=_BOOKKEEPING)
    # Bob's passkey signs Ann's challenge: a valid signature, of the wrong account.
    done = await verify(
        gql, step["mfaToken"], passkey=bobs.get(step["passkeyOptions"], passkey=bobs.passkeys[0])
    )
    assert done["__typename"] == "InvalidCredentials"
    assert await row_counts(container, ignore=_BOOKKEEPING) == before
    failures = await scalar(container, "SELECT failures FROM challenges WHERE purpose = 'mfa'")
    assert failures == 1


@pytest.mark.parametrize(
    "answer",
    [{"origin": "https://evil.example"}, {"challenge": b64(b"z" * 32)}, {"uv": False}],
    ids=["origin", "challenge", "no-user-verification"],
)
async def test_a_wrong_passkey_answer_is_a_wrong_second_factor(
    gql: GraphQLClient, container: Container, answer: dict[str, Any]
) -> None:
    authenticator = await _ann_with_passkey(gql, container)
    step = await password_step(gql)
    before = await row_counts(container, ignore=_BOOKKEEPING)
    wrong = authenticator.get(step["passkeyOptions"], **answer)
    done = await verify(gql, step["mfaToken"], passkey=wrong)
    assert done["__typename"] == "InvalidCredentials"
    assert await row_counts(container, ignore=_BOOKKEEPING) == before
    # The mfaToken still serves a right answer (five wrong ones spend it).
    right = await verify(gql, step["mfaToken"], passkey=authenticator.get(step["passkeyOptions"]))
    assert right["__typename"] == "AuthPayload"


async def test_a_counter_going_backwards_refuses_the_second_step_and_is_audited(
    gql: GraphQLClient, container: Container
) -> None:
    authenticator = await _ann_with_passkey(gql, container, counting=True)
    assert (await passkey_login(gql, authenticator, counter=3))["__typename"] == "AuthPayload"
    step = await password_step(gql)
    cloned = authenticator.get(step["passkeyOptions"], counter=2)
    assert (await verify(gql, step["mfaToken"], passkey=cloned))["__typename"] == (
        "InvalidCredentials"
    )
    audited = await scalar(
        container,
        "SELECT count(*) FROM audit_events WHERE action = 'auth.passkey_counter_regressed'",
    )
    assert audited == 1
    assert await scalar(container, "SELECT sign_count FROM factors") == 3


async def test_exactly_one_second_factor_and_a_well_formed_passkey(
    gql: GraphQLClient, container: Container
) -> None:
    authenticator = await _ann_with_passkey(gql, container)
    step = await password_step(gql)
    both = await verify(
        gql,
        step["mfaToken"],
        totpCode="123456",
        passkey=authenticator.get(step["passkeyOptions"]),
    )
    assert both["__typename"] == "ValidationError"
    assert {f["field"] for f in both["fields"]} == {"totpCode", "passkey"}
    malformed = await verify(gql, step["mfaToken"], passkey={"id": 1})
    assert malformed["fields"] == [{"field": "passkey", "code": "invalid_credential"}]


async def test_passkeys_are_renamed_removed_and_reset_like_other_factors(
    gql: GraphQLClient, container: Container
) -> None:
    user = await verified_user(gql, container)
    authenticator = SoftAuthenticator()
    first = await add_passkey(gql, user.access_token, authenticator)
    second = await add_passkey(gql, user.access_token, authenticator, "Phone")
    token = user.access_token
    renamed = await gql(RENAME, {"id": first["factor"]["id"], "label": "Laptop"}, token=token)
    assert renamed["data"]["renameFactor"]["factor"]["label"] == "Laptop"
    # Another device signs in with a passkey; removing one ends it, not this session.
    assert (await passkey_login(gql, authenticator))["__typename"] == "AuthPayload"
    assert await live_sessions(container, user.user_id) == 2
    removed = await gql(REMOVE, {"id": second["factor"]["id"], "password": None}, token=token)
    assert removed["data"]["removeFactor"]["__typename"] == "RemoveFactorSuccess"
    assert await live_sessions(container, user.user_id) == 1
    me = (await gql(MY_FACTORS, token=token))["data"]["me"]
    assert [(f["kind"], f["label"]) for f in me["factors"]] == [("PASSKEY", "Laptop")]
    # The removed passkey no longer signs in.
    gone = await passkey_login(gql, authenticator, passkey=authenticator.passkeys[1])
    assert gone["__typename"] == "InvalidCredentials"

    admin = await make_admin(container, gql)
    reset = await gql(RESET_MFA, {"id": user.user_id}, token=admin.access_token)
    assert reset["data"]["resetUserMfa"]["user"]["factors"] == []
    assert await live_sessions(container, user.user_id) == 0
    after = await passkey_login(gql, authenticator, passkey=authenticator.passkeys[0])
    assert after["__typename"] == "InvalidCredentials"
    assert (await login(gql)).access_token  # the password alone again: MFA is off
