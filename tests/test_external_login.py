"""Sign-in with other providers: the linking rule, MFA, assurance, linking and unlinking, the
undo link. Against a provider in this process (tests/fake_provider.py)."""

from __future__ import annotations

from typing import Any

import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.conftest import (
    PASSWORD,
    GraphQLClient,
    Inbox,
    login,
    register,
    row_counts,
    scalar,
    signed_up,
    text_of,
    token_in,
    wait_for_mail,
)
from tests.external_helpers import (
    MY_ACCOUNTS,
    OVERRIDES,
    PROVIDERS,
    RETURN_TO,
    UNLINK,
    code_for,
    finish,
    link,
    new_verifier,
    signed_in_with,
    use_fake_provider,
)
from tests.fake_provider import Account, FakeProvider
from tests.mfa_helpers import claims, confirm, start_enrollment, verify

NEW = Account("sub-new", "New.Person@Example.com", given_name="New", family_name="Person")
TOUCHED = ("users", "external_accounts", "sessions", "user_roles")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(OVERRIDES)


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


@pytest.fixture
def provider(container: Container) -> FakeProvider:
    return use_fake_provider(container)


async def counts(container: Container) -> dict[str, int]:
    every = await row_counts(container)
    return {table: every[table] for table in TOUCHED}


async def test_providers_are_listed_without_signing_in(gql: GraphQLClient) -> None:
    data = (await gql("{ externalProviders { id name } }"))["data"]
    assert data["externalProviders"] == [
        {"id": "acme", "name": "Acme"},
        {"id": "google", "name": "Google"},  # a preset's name; Google is never contacted
    ]


async def test_a_new_trusted_address_creates_a_verified_user_without_password(
    gql: GraphQLClient, container: Container, provider: FakeProvider
) -> None:
    done = await signed_in_with(gql, provider, NEW)
    assert done["__typename"] == "AuthPayload", done
    user = done["user"]
    assert user["email"] == "new.person@example.com"
    assert (user["firstName"], user["lastName"], user["isVerified"]) == ("New", "Person", True)
    assert [r["name"] for r in user["roles"]] == ["user"]
    token = claims(done["accessToken"])
    # The provider said amr ["pwd", "mfa"]: not taken for identity's own.
    assert (token["amr"], token["aal"]) == (["fed"], 1)
    me = (await gql(MY_ACCOUNTS, token=done["accessToken"]))["data"]["me"]
    assert [(a["provider"], a["email"]) for a in me["externalAccounts"]] == [
        ("acme", "new.person@example.com")
    ]
    assert me["sessions"] == [{"current": True, "aal": 1, "amr": ["fed"]}]
    stored = "SELECT password_hash FROM users WHERE email = 'new.person@example.com'"
    assert await scalar(container, stored) is None
    actions = "SELECT count(*) FROM audit_events WHERE action = 'user.registered'"
    assert await scalar(container, actions) == 1
    # The same account again signs in to the same user, found by its subject.
    again = await signed_in_with(gql, provider, Account("sub-new", "changed@example.com"))
    assert again["__typename"] == "AuthPayload"
    assert again["user"]["id"] == user["id"]


async def test_an_address_with_an_account_conflicts_and_nothing_is_linked(
    gql: GraphQLClient, container: Container, provider: FakeProvider
) -> None:
    await register(gql, "ann@example.com")
    before = await counts(container)
    done = await signed_in_with(gql, provider, Account("sub-ann", "ANN@example.com"))
    assert done["__typename"] == "ExternalAccountConflict"
    assert "sign in to it" in done["message"]
    assert await counts(container) == before


@pytest.mark.parametrize("verified", [False, None])
async def test_an_untrusted_address_is_refused_alike_with_or_without_an_account(
    gql: GraphQLClient, container: Container, provider: FakeProvider, verified: bool | None
) -> None:
    await register(gql, "ann@example.com")
    before = await counts(container)
    answers = []
    for email in ("ann@example.com", "nobody@example.com"):
        account = Account(f"sub-{email}", email, email_verified=verified)
        answers.append(await signed_in_with(gql, provider, account))
    assert answers[0] == answers[1]  # nothing tells which address has an account
    assert answers[0]["__typename"] == "EmailNotVerified"
    no_address = await signed_in_with(gql, provider, Account("sub-x", None))
    assert no_address == answers[0]
    assert await counts(container) == before


def with_trust(trust: str) -> dict[str, Any]:
    return {**OVERRIDES, "oidc_providers": [{**PROVIDERS[0], "email_trust": trust}]}


@pytest.mark.parametrize(
    ("settings_overrides", "creates"), [(with_trust("always"), True), (with_trust("never"), False)]
)
async def test_email_trust_setting(
    gql: GraphQLClient, provider: FakeProvider, creates: bool
) -> None:
    unverified = Account("sub-u", "u@example.com", email_verified=False)
    done = await signed_in_with(gql, provider, unverified)
    assert done["__typename"] == ("AuthPayload" if creates else "EmailNotVerified")


async def test_a_code_is_worthless_without_its_verifier_and_serves_once(
    gql: GraphQLClient, container: Container, provider: FakeProvider
) -> None:
    verifier, code = await code_for(gql, provider, NEW)
    for wrong in (new_verifier(), "", "short", verifier + "x"):
        assert (await finish(gql, code, wrong))["__typename"] == "InvalidToken"
    assert await counts(container) == dict.fromkeys(TOUCHED, 0) | {"user_roles": 0}
    assert (await finish(gql, code, verifier))["__typename"] == "AuthPayload"
    assert (await finish(gql, code, verifier))["__typename"] == "InvalidToken"
    # Five wrong verifiers spend a code.
    verifier, code = await code_for(gql, provider, Account("sub-2", "two@example.com"))
    for _ in range(5):
        await finish(gql, code, new_verifier())
    assert (await finish(gql, code, verifier))["__typename"] == "InvalidToken"
    for malformed in ("", "x" * 300, "not-a-code"):
        assert (await finish(gql, malformed, verifier))["__typename"] == "InvalidToken"


async def test_a_code_expires_after_five_minutes(
    gql: GraphQLClient, provider: FakeProvider, clock: FrozenClock
) -> None:
    verifier, code = await code_for(gql, provider, NEW)
    clock.advance(301)
    assert (await finish(gql, code, verifier))["__typename"] == "InvalidToken"


async def test_conflict_then_the_owner_signs_in_and_links(
    gql: GraphQLClient, container: Container, provider: FakeProvider, smtp: Inbox
) -> None:
    ann = await signed_up(gql, "ann@example.com")
    account = Account("sub-ann", "ann@example.com")
    assert (await signed_in_with(gql, provider, account))["__typename"] == "ExternalAccountConflict"

    verifier, code = await code_for(gql, provider, account, link=True, token=ann.access_token)
    # A link code only links: it does not sign in.
    assert (await finish(gql, code, verifier))["__typename"] == "InvalidToken"
    linked = await link(gql, code, verifier, ann.access_token)
    assert linked["__typename"] == "LinkExternalAccountSuccess", linked
    assert linked["externalAccount"]["provider"] == "acme"
    assert (await link(gql, code, verifier, ann.access_token))["__typename"] == "InvalidToken"

    done = await signed_in_with(gql, provider, account)
    assert done["__typename"] == "AuthPayload"
    assert done["user"]["id"] == ann.user_id
    # Linking ends no session.
    assert (await gql(MY_ACCOUNTS, token=ann.access_token))["data"]["me"]["id"] == ann.user_id
    [notice] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    assert "Acme account" in text_of(notice)
    assert "http://testserver/revert-change#token=" in text_of(notice)


async def test_the_undo_link_unlinks_and_ends_every_session(
    gql: GraphQLClient, container: Container, provider: FakeProvider, smtp: Inbox
) -> None:
    ann = await signed_up(gql, "ann@example.com")
    account = Account("sub-ann", "someone@elsewhere.example")
    verifier, code = await code_for(gql, provider, account, link=True, token=ann.access_token)
    assert (await link(gql, code, verifier, ann.access_token))["__typename"] == (
        "LinkExternalAccountSuccess"
    )
    intruder = await signed_in_with(gql, provider, account)
    assert intruder["__typename"] == "AuthPayload"
    [notice] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    revert = "mutation($t: String!) { revertSecurityChange(input: {token: $t}) { __typename } }"
    answer = (await gql(revert, {"t": token_in(notice)}))["data"]["revertSecurityChange"]
    assert answer["__typename"] == "RevertSecurityChangeSuccess"
    assert await scalar(container, "SELECT count(*) FROM external_accounts") == 0
    live = "SELECT count(*) FROM sessions WHERE revoked_at IS NULL"
    assert await scalar(container, live) == 0
    # The external account is nobody's now: its own (new) address makes a user of its own.
    after = await signed_in_with(gql, provider, account)
    assert after["__typename"] == "AuthPayload"
    assert after["user"]["id"] != ann.user_id  # a new user of its own address


async def test_link_needs_a_signed_in_recent_or_re_authenticated_caller(
    gql: GraphQLClient, provider: FakeProvider, clock: FrozenClock
) -> None:
    from tests.external_helpers import start

    ann = await signed_up(gql, "ann@example.com")
    unauthenticated = await gql(
        "mutation($i: StartExternalLoginInput!) { startExternalLogin(input: $i) { __typename } }",
        {
            "i": {
                "provider": "acme",
                "returnTo": RETURN_TO,
                "codeChallenge": "a" * 43,
                "link": True,
            }
        },
        expect_errors=True,
    )
    assert unauthenticated["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    clock.advance(301)  # the sign-in is no longer recent
    stale = await start(gql, new_verifier(), link=True, token=ann.access_token)
    assert stale["__typename"] == "InvalidCredentials"
    wrong = await start(gql, new_verifier(), link=True, token=ann.access_token, password="nope")
    assert wrong["__typename"] == "InvalidCredentials"
    right = await start(gql, new_verifier(), link=True, token=ann.access_token, password=PASSWORD)
    assert right["__typename"] == "StartExternalLoginSuccess"


async def test_codes_serve_their_own_start_and_their_own_user(
    gql: GraphQLClient, provider: FakeProvider
) -> None:
    ann = await signed_up(gql, "ann@example.com")
    bob = await signed_up(gql, "bob@example.com")
    # A sign-in code does not link.
    verifier, code = await code_for(gql, provider, Account("sub-z", "z@example.com"))
    assert (await link(gql, code, verifier, ann.access_token))["__typename"] == "InvalidToken"
    # Ann's link code does not link to Bob, with or without the verifier.
    account = Account("sub-ann", "ann@elsewhere.example")
    verifier, code = await code_for(gql, provider, account, link=True, token=ann.access_token)
    assert (await link(gql, code, verifier, bob.access_token))["__typename"] == "InvalidToken"
    assert (await link(gql, code, verifier, ann.access_token))["__typename"] == (
        "LinkExternalAccountSuccess"
    )
    # Bob cannot link Ann's external account to himself.
    verifier, code = await code_for(gql, provider, account, link=True, token=bob.access_token)
    conflict = await link(gql, code, verifier, bob.access_token)
    assert conflict["__typename"] == "ExternalAccountConflict"
    assert "linked to another account" in conflict["message"]


async def test_with_mfa_the_second_factor_follows_the_provider(
    gql: GraphQLClient, container: Container, provider: FakeProvider, clock: FrozenClock
) -> None:
    from identity.security import totp

    done = await signed_in_with(gql, provider, NEW)
    # No password to give: a recent sign-in (through the provider) is re-authentication enough.
    started = await start_enrollment(gql, done["accessToken"], password=None)
    assert started["__typename"] == "StartTotpEnrollmentSuccess", started
    secret = started["secret"]
    code = totp.code_at(secret, clock.now())
    confirmed = await confirm(gql, done["accessToken"], started["enrollmentToken"], code)
    assert confirmed["__typename"] == "ConfirmTotpEnrollmentSuccess"
    clock.advance(30)
    step = await signed_in_with(gql, provider, NEW)
    assert step["__typename"] == "MfaRequired"
    assert set(step["methods"]) == {"TOTP", "RECOVERY_CODE"}
    second = await verify(gql, step["mfaToken"], totpCode=totp.code_at(secret, clock.now()))
    assert second["__typename"] == "AuthPayload", second
    token = claims(second["accessToken"])
    assert (token["amr"], token["aal"]) == (["fed", "otp", "mfa"], 2)


async def test_a_disabled_user_is_refused(
    gql: GraphQLClient, container: Container, provider: FakeProvider
) -> None:
    assert (await signed_in_with(gql, provider, NEW))["__typename"] == "AuthPayload"
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(text("UPDATE users SET is_active = false"))
        await db.commit()
    assert (await signed_in_with(gql, provider, NEW))["__typename"] == "AccountDisabled"


async def test_unlink_never_removes_the_last_way_to_sign_in(
    gql: GraphQLClient, container: Container, provider: FakeProvider, smtp: Inbox
) -> None:
    done = await signed_in_with(gql, provider, NEW)
    token = done["accessToken"]
    [account] = (await gql(MY_ACCOUNTS, token=token))["data"]["me"]["externalAccounts"]
    refused = (await gql(UNLINK, {"id": account["id"]}, token=token))["data"]
    assert refused["unlinkExternalAccount"]["__typename"] == "ValidationError"
    assert refused["unlinkExternalAccount"]["fields"][0]["code"] == "last_sign_in_method"
    for unknown in ("nope", "00000000-0000-0000-0000-000000000000"):
        missing = (await gql(UNLINK, {"id": unknown}, token=token))["data"]
        assert missing["unlinkExternalAccount"]["__typename"] == "NotFound"
    other = await signed_up(gql, "other@example.com")
    theirs = (await gql(UNLINK, {"id": account["id"]}, token=other.access_token))["data"]
    assert theirs["unlinkExternalAccount"]["__typename"] == "NotFound"

    # No password to check: the operations that need one refuse.
    change = """mutation($i: ChangePasswordInput!) { changePassword(input: $i) { __typename } }"""
    variables = {"i": {"currentPassword": "a guess", "newPassword": "a brand new passphrase"}}
    answer = (await gql(change, variables, token=token))["data"]["changePassword"]
    assert answer["__typename"] == "InvalidCredentials"
    # A password, set through a reset as users without one do, is another way: then it goes.
    reset_request = """mutation($e: String!) { requestPasswordReset(input: {email: $e}) {
      __typename } }"""
    await gql(reset_request, {"e": "new.person@example.com"})
    [mail] = await wait_for_mail(container, smtp, "new.person@example.com", subject="password")
    reset = """mutation($t: String!, $p: String!) {
      resetPassword(input: {token: $t, password: $p, passwordConfirm: $p}) { __typename } }"""
    done = (await gql(reset, {"t": token_in(mail), "p": PASSWORD}))["data"]["resetPassword"]
    assert done["__typename"] == "ResetPasswordSuccess"
    fresh = await login(gql, "new.person@example.com")
    token = fresh.access_token  # the reset ended every session
    ok = (await gql(UNLINK, {"id": account["id"]}, token=token))["data"]["unlinkExternalAccount"]
    assert ok["__typename"] == "UnlinkExternalAccountSuccess"
    assert await scalar(container, "SELECT count(*) FROM external_accounts") == 0
