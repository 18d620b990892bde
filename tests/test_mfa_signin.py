"""Signing in with MFA on: `MfaRequired`, then `verifyMfa` with a TOTP code or a recovery code.

Codes are replay-safe by time step (also when two requests race), the mfaToken is single use,
short-lived, limited and bound to the password that made it, and wrong codes count per
account where only a right second factor clears them.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from identity.clock import FrozenClock
from identity.container import Container
from identity.security import totp
from tests.conftest import (
    GraphQLClient,
    Inbox,
    row_counts,
    scalar,
    text_of,
    token_in,
    wait_for_mail,
)
from tests.mfa_helpers import (
    Enrolled,
    claims,
    enroll,
    live_sessions,
    mfa_login,
    sign_in_with_code,
    verified_user,
    verify,
)

REFRESH = """
mutation($t: String) { refreshToken(input: {refreshToken: $t}) {
  __typename ... on AuthPayload { accessToken refreshToken } } }
"""


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


@pytest.fixture
async def enrolled(gql: GraphQLClient, container: Container, clock: FrozenClock) -> Enrolled:
    user = await verified_user(gql, container)
    return await enroll(gql, user, clock)


async def test_sign_in_with_a_code(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    sessions_before = await scalar(container, "SELECT count(*) FROM sessions")
    step = await mfa_login(gql)
    assert step["__typename"] == "MfaRequired"
    assert step["methods"] == ["TOTP", "RECOVERY_CODE"]
    assert step["expiresIn"] == 300
    # The right password alone starts no session.
    assert await scalar(container, "SELECT count(*) FROM sessions") == sessions_before

    done = await verify(gql, step["mfaToken"], totpCode=totp.code_at(enrolled.secret, clock.now()))
    assert done["__typename"] == "AuthPayload", done
    assert done["tokenType"] == "Bearer"
    token = claims(done["accessToken"])
    assert (token["aal"], token["amr"]) == (2, ["pwd", "otp", "mfa"])
    # Refresh keeps the level.
    refreshed = (await gql(REFRESH, {"t": done["refreshToken"]}))["data"]["refreshToken"]
    assert claims(refreshed["accessToken"])["aal"] == 2
    assert claims(refreshed["accessToken"])["amr"] == ["pwd", "otp", "mfa"]
    # The mfaToken served its one sign-in.
    again = await verify(gql, step["mfaToken"], totpCode=totp.code_at(enrolled.secret, clock.now()))
    assert again["__typename"] == "InvalidToken"


async def test_a_wrong_password_never_reveals_mfa(gql: GraphQLClient, enrolled: Enrolled) -> None:
    result = await mfa_login(gql, password="not the password")
    assert result["__typename"] == "InvalidCredentials"
    unknown = await mfa_login(gql, email="nobody@example.com")
    assert unknown["__typename"] == "InvalidCredentials"
    assert result["message"] == unknown["message"]


async def test_a_code_is_accepted_once_and_never_an_older_one(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    code = totp.code_at(enrolled.secret, clock.now())
    first = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=code)
    assert first["__typename"] == "AuthPayload"
    replay = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=code)
    assert replay["__typename"] == "InvalidCredentials"
    # A code of the step before, still within the skew, is older than the one used: refused.
    clock.advance(30)
    newer = totp.code_at(enrolled.secret, clock.now())
    older = totp.code_at(enrolled.secret, clock.now().replace(microsecond=0) - _steps(1))
    assert (await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=newer))[
        "__typename"
    ] == "AuthPayload"
    late = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=older)
    assert late["__typename"] == "InvalidCredentials"


async def test_one_step_of_skew_either_side_and_no_more(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    clock.advance(90)  # well past the enrolment's step
    now = clock.now()
    for offset, accepted in ((-2, False), (2, False), (-1, True), (1, True)):
        code = totp.code_at(enrolled.secret, now + _steps(offset))
        result = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=code)
        assert (result["__typename"] == "AuthPayload") is accepted, (offset, result)


async def test_two_requests_racing_with_one_code_start_one_session(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    tokens = [(await mfa_login(gql))["mfaToken"] for _ in range(4)]
    code = totp.code_at(enrolled.secret, clock.now())
    before = await live_sessions(container, enrolled.user.user_id)
    results = await asyncio.gather(*(verify(gql, t, totpCode=code) for t in tokens))
    assert sorted(r["__typename"] for r in results) == [
        "AuthPayload",
        "InvalidCredentials",
        "InvalidCredentials",
        "InvalidCredentials",
    ]
    assert await live_sessions(container, enrolled.user.user_id) == before + 1


async def test_two_devices_signing_in_at_once_do_not_void_each_other(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    phone, laptop = (await mfa_login(gql))["mfaToken"], (await mfa_login(gql))["mfaToken"]
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, laptop, totpCode=code))["__typename"] == "AuthPayload"
    clock.advance(30)
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, phone, totpCode=code))["__typename"] == "AuthPayload"


async def test_five_wrong_codes_spend_the_mfa_token(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    right = totp.code_at(enrolled.secret, clock.now())
    for _ in range(5):
        wrong = await verify(gql, token, totpCode=f"{(int(right) + 7) % 1_000_000:06d}")
        assert wrong["__typename"] == "InvalidCredentials"
    assert (await verify(gql, token, totpCode=right))["__typename"] == "InvalidToken"


async def test_the_mfa_token_expires_after_five_minutes(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    clock.advance(301)
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, token, totpCode=code))["__typename"] == "InvalidToken"


@pytest.mark.parametrize(
    "token", ["", "garbage", "A" * 64, "x" * 5000], ids=["empty", "short", "forged", "huge"]
)
async def test_malformed_or_forged_mfa_tokens_are_invalid(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, token: str
) -> None:
    before = await row_counts(container)
    result = await verify(gql, token, totpCode=totp.code_at(enrolled.secret, clock.now()))
    assert result["__typename"] == "InvalidToken"
    assert await row_counts(container) == before


@pytest.mark.parametrize(
    ("codes", "problems"),
    [
        ({}, {("totpCode", "one_of")}),
        (
            {"totpCode": "123456", "recoveryCode": "abcde-12345"},
            {
                ("totpCode", "one_of"),
                ("recoveryCode", "one_of"),
            },
        ),
        ({"totpCode": "1234567"}, {("totpCode", "invalid_code")}),
        ({"totpCode": "12345a"}, {("totpCode", "invalid_code")}),
        ({"recoveryCode": "abcde-1234"}, {("recoveryCode", "invalid_code")}),
        ({"recoveryCode": "abcde!12345"}, {("recoveryCode", "invalid_code")}),
    ],
)
async def test_bad_second_factor_input_is_refused_and_counts_nothing(
    gql: GraphQLClient,
    container: Container,
    enrolled: Enrolled,
    codes: dict[str, str],
    problems: set[tuple[str, str]],
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    before = await row_counts(container)
    result = await verify(gql, token, **codes)
    assert result["__typename"] == "ValidationError"
    assert {(f["field"], f["code"]) for f in result["fields"]} == problems
    assert await row_counts(container) == before
    assert await scalar(container, "SELECT max(failures) FROM challenges") == 0


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_mfa_account": "5/15minutes"}])
async def test_wrong_codes_count_per_account_and_a_right_password_does_not_clear_them(
    gql: GraphQLClient, container: Container, limits_clock: FrozenClock, enrolled: Enrolled
) -> None:
    clock = limits_clock
    right = totp.code_at(enrolled.secret, clock.now())
    wrong = f"{(int(right) + 3) % 1_000_000:06d}"
    for _ in range(5):  # each login is a right password; each mfaToken gets one wrong code
        result = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=wrong)
        assert result["__typename"] == "InvalidCredentials"
    limited = await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=right)
    assert limited["__typename"] == "RateLimited"
    assert limited["retryAfter"] > 0
    clock.advance(15 * 60 + 60)
    # After the window the right code works, and clears the count.
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, (await mfa_login(gql))["mfaToken"], totpCode=code))[
        "__typename"
    ] == "AuthPayload"


async def test_an_mfa_token_is_worthless_after_the_password_changes(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    await gql('mutation { requestPasswordReset(input: {email: "ann@example.com"}) { __typename } }')
    [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="Reset")
    reset = await gql(
        """mutation($t: String!) { resetPassword(input: {token: $t, password: "a new passphrase",
           passwordConfirm: "a new passphrase"}) { __typename } }""",
        {"t": token_in(mail)},
    )
    assert reset["data"]["resetPassword"]["__typename"] == "ResetPasswordSuccess"
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, token, totpCode=code))["__typename"] == "InvalidToken"
    # A password reset never turns MFA off: the new password still needs the second factor.
    assert (await mfa_login(gql, password="a new passphrase"))["__typename"] == "MfaRequired"


async def test_a_deactivated_account_cannot_finish_its_sign_in(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    async with container.writes() as db:
        await db.execute(text("UPDATE users SET is_active = false"))
        await db.commit()
    code = totp.code_at(enrolled.secret, clock.now())
    assert (await verify(gql, token, totpCode=code))["__typename"] == "InvalidToken"


async def test_sign_in_with_recovery_codes(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    codes = enrolled.recovery_codes
    # With or without the dash, in any case.
    spellings = [codes[0], codes[1].replace("-", ""), codes[2].upper(), f" {codes[3]} "]
    for spelling in spellings:
        done = await verify(gql, (await mfa_login(gql))["mfaToken"], recoveryCode=spelling)
        assert done["__typename"] == "AuthPayload", (spelling, done)
        token = claims(done["accessToken"])
        assert (token["aal"], token["amr"]) == (2, ["pwd", "otp", "mfa"])
    # Each once.
    used = await verify(gql, (await mfa_login(gql))["mfaToken"], recoveryCode=codes[0])
    assert used["__typename"] == "InvalidCredentials"
    me = (await gql("{ me { recoveryCodesLeft } }", token=enrolled.user.access_token))["data"]
    assert me["me"]["recoveryCodesLeft"] == 6
    mails = await wait_for_mail(container, smtp, "ann@example.com", 4, subject="recovery code")
    # The test and the app's own sender both deliver: the mails may arrive in any order.
    assert any("6 recovery codes are left" in text_of(mail) for mail in mails)
    for code in codes[4:8]:
        await verify(gql, (await mfa_login(gql))["mfaToken"], recoveryCode=code)
    mails = await wait_for_mail(container, smtp, "ann@example.com", 8, subject="recovery code")
    texts = [text_of(mail) for mail in mails[4:]]
    assert sum("Only 2 recovery codes are left" in text for text in texts) == 1, texts
    for code in codes[8:]:
        await verify(gql, (await mfa_login(gql))["mfaToken"], recoveryCode=code)
    mails = await wait_for_mail(container, smtp, "ann@example.com", 10, subject="recovery code")
    assert "You have no recovery codes left" in text_of(mails[-1])


async def test_another_users_recovery_code_does_not_work(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    bob = await enroll(gql, await verified_user(gql, container, "bob@example.com"), clock)
    step = await mfa_login(gql)
    assert (await verify(gql, step["mfaToken"], recoveryCode=bob.recovery_codes[0]))[
        "__typename"
    ] == "InvalidCredentials"


async def test_at_most_one_second_factor_check_per_request(
    gql: GraphQLClient, enrolled: Enrolled
) -> None:
    token = (await mfa_login(gql))["mfaToken"]
    query = """mutation($t: String!) {
      a: verifyMfa(input: {mfaToken: $t, totpCode: "000000"}) { __typename }
      b: verifyMfa(input: {mfaToken: $t, totpCode: "111111"}) { __typename }
    }"""
    response = await gql.http.post("/graphql", json={"query": query, "variables": {"t": token}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


@pytest.mark.parametrize("settings_overrides", [{"refresh_cookie": True}])
async def test_cookie_mode_sets_the_refresh_cookie_after_the_second_step(
    gql: GraphQLClient, clock: FrozenClock, enrolled: Enrolled
) -> None:
    done = await sign_in_with_code(gql, enrolled.secret, clock)
    assert done.refresh_token is None
    assert "identity-refresh" in gql.http.cookies


def _steps(n: int) -> timedelta:
    return timedelta(seconds=30 * n)
