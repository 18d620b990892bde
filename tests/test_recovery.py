"""Password reset, email verification and email change, with mail through a real SMTP server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import make_admin
from tests.conftest import (
    PASSWORD,
    REGISTER,
    GraphQLClient,
    Inbox,
    login,
    register,
    row_counts,
    scalar,
    settle_outbox,
    signed_up,
    text_of,
    token_in,
    wait_for_mail,
)


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


REQUEST_RESET = """
mutation($email: String!) {
  requestPasswordReset(input: {email: $email}) {
    __typename ... on RequestPasswordResetSuccess { message } ... on ValidationError { fields { field code } }
  }
}
"""
RESET = """
mutation($token: String!, $password: String!, $confirm: String!) {
  resetPassword(input: {token: $token, password: $password, passwordConfirm: $confirm}) {
    __typename ... on ResetPasswordSuccess { message } ... on ValidationError { fields { field code } }
  }
}
"""
REQUEST_VERIFICATION = "mutation { requestEmailVerification { __typename ... on RequestEmailVerificationSuccess { message } } }"
VERIFY = "mutation($token: String!) { verifyEmail(input: {token: $token}) { __typename ... on VerifyEmailSuccess { user { email isVerified } } } }"
REQUEST_CHANGE = """
mutation($email: String!, $password: String!) {
  requestEmailChange(input: {newEmail: $email, currentPassword: $password}) {
    __typename ... on ValidationError { fields { field code } }
  }
}
"""
CONFIRM_CHANGE = """
mutation($token: String!) {
  confirmEmailChange(input: {token: $token}) {
    __typename ... on ConfirmEmailChangeSuccess { user { email isVerified } }
  }
}
"""
ME = "{ me { email isVerified } }"
NEW_PASSWORD = "a completely new passphrase"
VERIFY_SUBJECT = "Confirm your email"


async def reset_link_token(
    gql: GraphQLClient, container: Container, smtp: Inbox, email: str
) -> str:
    before = len([m for m in smtp.to(email) if "Reset your" in m["Subject"]])
    result = await gql(REQUEST_RESET, {"email": email})
    assert result["data"]["requestPasswordReset"]["__typename"] == "RequestPasswordResetSuccess"
    messages = await wait_for_mail(container, smtp, email, before + 1, subject="Reset your")
    return token_in(messages[-1])


async def reset(
    gql: GraphQLClient, token: str, password: str = NEW_PASSWORD, confirm: str | None = None
) -> dict[str, Any]:
    result = await gql(
        RESET, {"token": token, "password": password, "confirm": confirm or password}
    )
    payload: dict[str, Any] = result["data"]["resetPassword"]
    return payload


# Password reset ---------------------------------------------------------------------------


async def test_reset_walkthrough(gql: GraphQLClient, container: Container, smtp: Inbox) -> None:
    laptop = await signed_up(gql)
    phone = await login(gql)
    token = await reset_link_token(gql, container, smtp, laptop.email)
    message = smtp.to(laptop.email)[-1]
    assert message.get_body(("html",)) is not None
    assert "30 minutes" in text_of(message)
    assert "http://testserver/reset-password#token=" in text_of(message)

    assert (await reset(gql, token))["__typename"] == "ResetPasswordSuccess"
    for device in (laptop, phone):  # every session ended
        body = await gql(ME, token=device.access_token, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await login(gql, password=NEW_PASSWORD)
    old = await gql(
        "mutation($i: LoginInput!) { login(input: $i) { __typename } }",
        {"i": {"email": laptop.email, "password": PASSWORD}},
    )
    assert old["data"]["login"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT is_verified FROM users") in (True, 1)
    await wait_for_mail(container, smtp, laptop.email, subject="password was reset")
    assert (
        await scalar(
            container, "SELECT count(*) FROM audit_events WHERE action = 'user.password_reset'"
        )
        == 1
    )


async def test_reset_answers_the_same_for_unknown_and_deactivated_addresses(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    await register(gql, "known@example.com")
    await register(gql, "gone@example.com")
    async with container.writes() as db:
        from sqlalchemy import text

        await db.execute(
            text("UPDATE users SET is_active = :f WHERE email = 'gone@example.com'"), {"f": False}
        )
        await db.commit()
    answers = [
        (await gql(REQUEST_RESET, {"email": email}))["data"]
        for email in ("known@example.com", "nobody@example.com", "gone@example.com")
    ]
    assert answers[0] == answers[1] == answers[2]
    await wait_for_mail(container, smtp, "known@example.com", subject="Reset your")
    await wait_for_mail(container, smtp, "gone@example.com", subject="Confirm your email")
    await container.mail.deliver_due()
    assert smtp.to("nobody@example.com") == []
    assert len(smtp.to("gone@example.com")) == 1  # only the verification mail of registration
    outbox = await scalar(
        container, "SELECT count(*) FROM outbox_messages WHERE template = 'password_reset'"
    )
    assert outbox == 1


async def test_reset_with_malformed_email_is_a_validation_error(gql: GraphQLClient) -> None:
    result = await gql(REQUEST_RESET, {"email": "not an email"})
    assert result["data"]["requestPasswordReset"] == {
        "__typename": "ValidationError",
        "fields": [{"field": "email", "code": "invalid_email"}],
    }


async def test_reset_token_is_single_use_and_expires(
    gql: GraphQLClient, container: Container, smtp: Inbox, clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    token = await reset_link_token(gql, container, smtp, user.email)
    assert (await reset(gql, token))["__typename"] == "ResetPasswordSuccess"
    assert (await reset(gql, token, "yet another passphrase"))["__typename"] == "InvalidToken"

    expiring = await reset_link_token(gql, container, smtp, user.email)
    clock.advance(minutes=30, seconds=1)
    before = await row_counts(container)
    assert (await reset(gql, expiring, "yet another passphrase"))["__typename"] == "InvalidToken"
    assert await row_counts(container) == before
    await login(gql, password=NEW_PASSWORD)


async def test_a_new_reset_request_voids_the_older_link(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    first = await reset_link_token(gql, container, smtp, user.email)
    second = await reset_link_token(gql, container, smtp, user.email)
    assert (await reset(gql, first))["__typename"] == "InvalidToken"
    assert (await reset(gql, second))["__typename"] == "ResetPasswordSuccess"


async def test_weak_or_mismatched_password_keeps_the_token_usable(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    token = await reset_link_token(gql, container, smtp, user.email)
    stored = await scalar(container, "SELECT password_hash FROM users")
    mismatch = await reset(gql, token, NEW_PASSWORD, "something else entirely")
    assert mismatch == {
        "__typename": "ValidationError",
        "fields": [{"field": "passwordConfirm", "code": "mismatch"}],
    }
    weak = await reset(gql, token, "password1")
    assert weak["fields"] == [{"field": "password", "code": "too_common"}]
    assert await scalar(container, "SELECT password_hash FROM users") == stored
    assert (await reset(gql, token))["__typename"] == "ResetPasswordSuccess"


@pytest.mark.parametrize("token", ["", "nonsense", "A" * 64, "x" * 5000])
async def test_malformed_reset_tokens_are_invalid(
    gql: GraphQLClient, container: Container, token: str
) -> None:
    await signed_up(gql)
    before = await row_counts(container)
    assert (await reset(gql, token))["__typename"] == "InvalidToken"
    assert await row_counts(container) == before


async def test_a_verification_token_cannot_reset_a_password(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    verification = token_in(
        (await wait_for_mail(container, smtp, user.email, subject=VERIFY_SUBJECT))[0]
    )
    assert (await reset(gql, verification))["__typename"] == "InvalidToken"
    # ... and the refused attempt did not burn it for its own purpose.
    assert (await gql(VERIFY, {"token": verification}))["data"]["verifyEmail"][
        "__typename"
    ] == "VerifyEmailSuccess"


async def test_changing_the_password_voids_outstanding_links(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    token = await reset_link_token(gql, container, smtp, user.email)
    change = "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { __typename } }"
    variables = {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}
    assert (await gql(change, variables, token=user.access_token))["data"]["changePassword"][
        "__typename"
    ] == "ChangePasswordSuccess"
    assert (await reset(gql, token, "one more passphrase"))["__typename"] == "InvalidToken"
    await wait_for_mail(container, smtp, user.email, subject="password was changed")


async def test_outbox_never_holds_a_usable_token(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    token = await reset_link_token(gql, container, smtp, user.email)
    async with container.reads() as db:
        from sqlalchemy import text

        rows = (await db.execute(text("SELECT * FROM outbox_messages"))).all()
        tokens = (await db.execute(text("SELECT * FROM one_time_tokens"))).all()
    dump = repr(rows) + repr(tokens)
    assert token not in dump
    assert token[:20] not in dump


# Email verification ----------------------------------------------------------------------


async def test_registration_sends_a_verification_link(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    message = (await wait_for_mail(container, smtp, user.email, subject=VERIFY_SUBJECT))[0]
    assert "Confirm your email" in message["Subject"]
    assert "24 hours" in text_of(message)
    result = (await gql(VERIFY, {"token": token_in(message)}))["data"]["verifyEmail"]
    assert result == {
        "__typename": "VerifyEmailSuccess",
        "user": {"email": user.email, "isVerified": True},
    }
    assert (await gql(ME, token=user.access_token))["data"]["me"]["isVerified"] is True
    again = (await gql(VERIFY, {"token": token_in(message)}))["data"]["verifyEmail"]
    assert again["__typename"] == "InvalidToken"


async def test_verification_link_expires_after_a_day(
    gql: GraphQLClient, container: Container, smtp: Inbox, clock: FrozenClock
) -> None:
    user = await signed_up(gql)
    message = (await wait_for_mail(container, smtp, user.email, subject=VERIFY_SUBJECT))[0]
    clock.advance(hours=24, seconds=1)
    result = (await gql(VERIFY, {"token": token_in(message)}))["data"]["verifyEmail"]
    assert result["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT is_verified FROM users") in (False, 0)


async def test_request_verification_sends_a_new_link_unless_verified(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    first = (await wait_for_mail(container, smtp, user.email, subject=VERIFY_SUBJECT))[0]
    result = await gql(REQUEST_VERIFICATION, token=user.access_token)
    assert (
        result["data"]["requestEmailVerification"]["__typename"]
        == "RequestEmailVerificationSuccess"
    )
    second = (await wait_for_mail(container, smtp, user.email, 2, subject=VERIFY_SUBJECT))[1]
    assert (await gql(VERIFY, {"token": token_in(first)}))["data"]["verifyEmail"][
        "__typename"
    ] == "InvalidToken"
    assert (await gql(VERIFY, {"token": token_in(second)}))["data"]["verifyEmail"][
        "__typename"
    ] == "VerifyEmailSuccess"

    outbox = await scalar(container, "SELECT count(*) FROM outbox_messages")
    verified = await gql(REQUEST_VERIFICATION, token=user.access_token)
    assert verified["data"]["requestEmailVerification"]["message"] == "Your address is verified."
    assert await scalar(container, "SELECT count(*) FROM outbox_messages") == outbox


async def test_concurrent_requests_leave_one_live_link(
    gql: GraphQLClient, container: Container
) -> None:
    user = await signed_up(gql)
    await asyncio.gather(*(gql(REQUEST_VERIFICATION, token=user.access_token) for _ in range(4)))
    live = await scalar(
        container,
        "SELECT count(*) FROM one_time_tokens WHERE purpose = 'verify_email' AND used_at IS NULL",
    )
    assert live == 1


async def test_request_verification_needs_a_token(gql: GraphQLClient) -> None:
    body = await gql(REQUEST_VERIFICATION, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# Email change -----------------------------------------------------------------------------


async def test_email_change_walkthrough(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    laptop = await signed_up(gql, "old@example.com")
    phone = await login(gql, "old@example.com")
    result = await gql(
        REQUEST_CHANGE,
        {"email": "New@Example.com", "password": PASSWORD},
        token=laptop.access_token,
    )
    assert result["data"]["requestEmailChange"]["__typename"] == "RequestEmailChangeSuccess"
    confirm = (await wait_for_mail(container, smtp, "new@example.com"))[0]
    notice = (await wait_for_mail(container, smtp, "old@example.com", subject="about to change"))[
        -1
    ]
    assert "new@example.com" in text_of(notice)
    assert await scalar(container, "SELECT email FROM users") == "old@example.com"  # not yet

    # Confirmed on the laptop: its session continues, the phone's ends.
    changed = await gql(CONFIRM_CHANGE, {"token": token_in(confirm)}, token=laptop.access_token)
    assert changed["data"]["confirmEmailChange"] == {
        "__typename": "ConfirmEmailChangeSuccess",
        "user": {"email": "new@example.com", "isVerified": True},
    }
    assert (await gql(ME, token=laptop.access_token))["data"]["me"]["email"] == "new@example.com"
    body = await gql(ME, token=phone.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await login(gql, "new@example.com")
    await wait_for_mail(container, smtp, "old@example.com", subject="address was changed")
    assert (await gql(CONFIRM_CHANGE, {"token": token_in(confirm)}))["data"]["confirmEmailChange"][
        "__typename"
    ] == "InvalidToken"


async def test_a_deactivated_account_can_use_none_of_its_links(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    """Found by review: a banned user could confirm an email change and free the banned
    address for a new sign-up."""
    user = await signed_up(gql, "banned@example.com")
    verify = (await wait_for_mail(container, smtp, "banned@example.com", subject=VERIFY_SUBJECT))[
        -1
    ]
    result = await gql(
        REQUEST_CHANGE,
        {"email": "fresh@example.net", "password": PASSWORD},
        token=user.access_token,
    )
    assert result["data"]["requestEmailChange"]["__typename"] == "RequestEmailChangeSuccess"
    confirm = (await wait_for_mail(container, smtp, "fresh@example.net"))[0]
    admin = await make_admin(container, gql)
    deactivated = await gql(
        "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { __typename } }",
        {"id": user.user_id},
        token=admin.access_token,
    )
    assert deactivated["data"]["updateUser"]["__typename"] == "UpdateUserSuccess"

    changed = await gql(CONFIRM_CHANGE, {"token": token_in(confirm)})
    assert changed["data"]["confirmEmailChange"]["__typename"] == "InvalidToken"
    verified = await gql(VERIFY, {"token": token_in(verify)})
    assert verified["data"]["verifyEmail"]["__typename"] == "InvalidToken"
    assert not await scalar(
        container, "SELECT is_verified FROM users WHERE email = 'banned@example.com'"
    )
    assert (
        await scalar(container, "SELECT count(*) FROM users WHERE email = 'fresh@example.net'") == 0
    )
    again = await gql(
        REGISTER,
        {
            "input": {
                "email": "banned@example.com",
                "password": PASSWORD,
                "firstName": "B",
                "lastName": "B",
            }
        },
    )
    assert again["data"]["register"]["__typename"] == "EmailAlreadyRegistered"


async def test_email_change_confirmed_without_sign_in_ends_every_session(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql, "old@example.com")
    await gql(
        REQUEST_CHANGE, {"email": "new@example.com", "password": PASSWORD}, token=user.access_token
    )
    confirm = (await wait_for_mail(container, smtp, "new@example.com"))[0]
    result = await gql(CONFIRM_CHANGE, {"token": token_in(confirm)})
    assert result["data"]["confirmEmailChange"]["__typename"] == "ConfirmEmailChangeSuccess"
    body = await gql(ME, token=user.access_token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("email", "password", "expected"),
    [
        ("taken@example.com", PASSWORD, "EmailAlreadyRegistered"),
        ("TAKEN@example.com", PASSWORD, "EmailAlreadyRegistered"),
        ("fresh@example.com", "not my password", "InvalidCredentials"),
        ("not an email", PASSWORD, "ValidationError"),
        ("ann@example.com", PASSWORD, "ValidationError"),  # unchanged
    ],
)
async def test_email_change_refusals_change_nothing(
    gql: GraphQLClient, container: Container, email: str, password: str, expected: str
) -> None:
    await register(gql, "taken@example.com")
    user = await signed_up(gql)
    before = await row_counts(container, ignore=("audit_events",))  # a wrong password is audited
    result = await gql(
        REQUEST_CHANGE, {"email": email, "password": password}, token=user.access_token
    )
    assert result["data"]["requestEmailChange"]["__typename"] == expected
    assert await row_counts(container, ignore=("audit_events",)) == before


async def test_email_taken_meanwhile_is_refused_at_confirmation(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    user = await signed_up(gql)
    await gql(
        REQUEST_CHANGE,
        {"email": "wanted@example.com", "password": PASSWORD},
        token=user.access_token,
    )
    confirm = (await wait_for_mail(container, smtp, "wanted@example.com"))[0]
    await register(gql, "wanted@example.com")
    result = await gql(CONFIRM_CHANGE, {"token": token_in(confirm)})
    assert result["data"]["confirmEmailChange"]["__typename"] == "EmailAlreadyRegistered"
    assert (
        await scalar(container, "SELECT count(*) FROM users WHERE email = 'ann@example.com'") == 1
    )


# Delivery ---------------------------------------------------------------------------------


async def test_smtp_outage_loses_nothing(
    gql: GraphQLClient, container: Container, smtp: Inbox, clock: FrozenClock
) -> None:
    await register(gql)
    await wait_for_mail(container, smtp, "ann@example.com", subject=VERIFY_SUBJECT)
    smtp.stop()
    result = await gql(REQUEST_RESET, {"email": "ann@example.com"})  # the request itself is fine
    assert result["data"]["requestPasswordReset"]["__typename"] == "RequestPasswordResetSuccess"
    # This test's delivery attempt, or the background sender's, fails and is recorded.
    assert await container.mail.deliver_due() == 0
    for _ in range(100):
        error = await scalar(
            container,
            "SELECT last_error FROM outbox_messages WHERE sent_at IS NULL"
            " AND last_error IS NOT NULL",
        )
        if error:
            break
        await asyncio.sleep(0.05)
    assert "SMTP" in error or "onnect" in error
    assert (
        await scalar(container, "SELECT attempts FROM outbox_messages WHERE sent_at IS NULL") >= 1
    )

    smtp.start()  # the server is back; the backoff delay passes
    clock.advance(minutes=5)
    await wait_for_mail(container, smtp, "ann@example.com", subject="Reset your")
    await settle_outbox(container)  # the sender marks it sent just after the server has it
    assert (
        await scalar(container, "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL") == 0
    )


async def test_background_sender_delivers_without_help(
    gql: GraphQLClient, container: Container, smtp: Inbox
) -> None:
    await register(gql)
    for _ in range(200):  # the sender wakes up when the transaction commits
        if smtp.to("ann@example.com"):
            break
        await asyncio.sleep(0.05)
    assert len(smtp.to("ann@example.com")) == 1


async def test_tokens_and_links_never_reach_the_logs(
    gql: GraphQLClient, container: Container, smtp: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    user = await signed_up(gql)
    token = await reset_link_token(gql, container, smtp, user.email)
    await reset(gql, token)
    # Everything our process logged, but the test's SMTP server (the recipient sees the link).
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    assert "password_reset" in text  # the capture works: SQL was logged
    for secret in (token, user.refresh_token, user.access_token, PASSWORD, NEW_PASSWORD):
        assert secret not in text


async def test_link_pages_are_served_without_the_token(client: httpx.AsyncClient) -> None:
    for path in ("/reset-password", "/verify-email", "/confirm-email-change"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "pages.js" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
    script = await client.get("/pages/pages.js")
    assert "location.hash" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
