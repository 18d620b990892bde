"""Passkeys: adding one (the first turns MFA on, as an authenticator app does), and signing
in with one alone at aal 2, with a software authenticator answering through the schema.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from identity.container import Container
from tests.conftest import (
    GraphQLClient,
    Inbox,
    login,
    row_counts,
    scalar,
    signed_up,
    text_of,
    wait_for_mail,
)
from tests.mfa_helpers import MY_FACTORS, claims, live_sessions, verified_user
from tests.passkey_helpers import (
    add_passkey,
    finish_registration,
    passkey_login,
    start_login,
    start_registration,
)
from tests.webauthn_authenticator import SoftAuthenticator, unb64


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"product_name": "Acme Cloud"}


async def test_adding_a_passkey_then_signing_in_with_it_alone(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    other_device = await verified_user(gql, container)
    user = await login(gql)
    started = await start_registration(gql, user.access_token)
    assert started["__typename"] == "StartPasskeyRegistrationSuccess"
    options = started["options"]
    # The shape PublicKeyCredential.parseCreationOptionsFromJSON reads: base64url strings.
    assert options["rp"] == {"id": "testserver", "name": "Acme Cloud"}
    assert unb64(options["user"]["id"]) == uuid.UUID(user.user_id).bytes
    assert options["user"]["name"] == "ann@example.com"
    assert len(unb64(options["challenge"])) == 32
    assert "=" not in options["challenge"]
    assert options["authenticatorSelection"] == {
        "residentKey": "required",
        "requireResidentKey": True,
        "userVerification": "required",
    }
    assert options["attestation"] == "none"
    assert options["excludeCredentials"] == []
    assert await scalar(container, "SELECT count(*) FROM factors") == 0

    authenticator = SoftAuthenticator()
    credential = authenticator.create(options)
    done = await finish_registration(
        gql, user.access_token, started["registrationToken"], credential, "Laptop"
    )
    assert done["__typename"] == "FinishPasskeyRegistrationSuccess", done
    assert done["factor"]["kind"] == "PASSKEY"
    assert done["factor"]["label"] == "Laptop"
    assert len(done["recoveryCodes"]) == 10  # the first factor turned MFA on
    # What is stored: the public key and the credential as registered, no secret.
    stored = await scalar(
        container,
        "SELECT transports FROM factors WHERE kind = 'passkey' AND sign_count = 0 "
        "AND backup_eligible AND backup_state AND aaguid = :aaguid",
        aaguid="00000000-0000-0000-0000-000000000000",
    )
    assert stored is not None
    assert "internal" in str(stored)
    # The other session ended, this one counts as two factors, and a mail went out.
    assert await live_sessions(container, user.user_id) == 1
    me = (await gql(MY_FACTORS, token=user.access_token))["data"]["me"]
    assert me["mfaEnabled"] is True
    assert [s["aal"] for s in me["sessions"]] == [2]
    assert "hwk" in me["sessions"][0]["amr"]
    mails = await wait_for_mail(container, smtp, "ann@example.com", subject="was added")
    assert 'A passkey ("Laptop") was just added' in text_of(mails[-1])
    # Unlike an app's codes, a passkey outlives a password change: the mail says so.
    assert "signs in on its own, without your password" in text_of(mails[-1])
    del other_device

    # Starting again excludes the passkey just added.
    again = await start_registration(gql, user.access_token)
    assert [unb64(c["id"]) for c in again["options"]["excludeCredentials"]] == [
        authenticator.passkeys[0].credential_id
    ]

    # Sign in with the passkey alone: no email, no password.
    started_login = await start_login(gql)
    assert started_login["__typename"] == "StartPasskeyLoginSuccess"
    request = started_login["options"]
    assert request["rpId"] == "testserver"
    assert request["userVerification"] == "required"
    assert request.get("allowCredentials", []) == []  # discoverable
    signed_in = await passkey_login(gql, authenticator)
    assert signed_in["__typename"] == "AuthPayload", signed_in
    assert signed_in["user"]["email"] == "ann@example.com"
    token_claims = claims(signed_in["accessToken"])
    assert token_claims["aal"] == 2
    assert token_claims["amr"] == ["hwk", "user"]
    assert (
        await scalar(container, "SELECT count(*) FROM audit_events WHERE action = 'auth.login'")
        >= 1
    )


async def test_a_second_passkey_needs_the_second_factor_session(
    gql: GraphQLClient, container: Container
) -> None:
    user = await verified_user(gql, container)
    authenticator = SoftAuthenticator()
    first = await add_passkey(gql, user.access_token, authenticator)
    second = await add_passkey(gql, user.access_token, authenticator, "Phone")
    assert second["recoveryCodes"] is None  # MFA was on already
    me = (await gql(MY_FACTORS, token=user.access_token))["data"]["me"]
    assert [f["label"] for f in me["factors"]] == ["Passkey", "Phone"]
    assert first["factor"]["id"] != second["factor"]["id"]


async def test_an_unverified_address_cannot_add_a_passkey(
    gql: GraphQLClient, container: Container
) -> None:
    user = await signed_up(gql)
    started = await start_registration(gql, user.access_token)
    assert started["__typename"] == "EmailNotVerified"
    wrong = await start_registration(gql, user.access_token, password="not the password")
    assert wrong["__typename"] == "InvalidCredentials"
    before = await row_counts(container, ignore=("audit_events",))
    assert before["challenges"] == 0
