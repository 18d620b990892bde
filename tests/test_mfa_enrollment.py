"""Adding an authenticator app: re-authentication, the secret and QR code, confirmation, the
first factor turning MFA on (recovery codes, other sessions end, the session raised, a mail).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from sqlalchemy import text

from identity.clock import FrozenClock
from identity.container import Container
from identity.security import totp
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
from tests.mfa_helpers import (
    MY_FACTORS,
    claims,
    confirm,
    enroll,
    live_sessions,
    mfa_login,
    start_enrollment,
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
def settings_overrides() -> dict[str, Any]:
    return {"mfa_issuer": "Acme Cloud"}


async def test_enrolment_walkthrough(
    gql: GraphQLClient, container: Container, clock: FrozenClock, smtp: Inbox
) -> None:
    other_device = await verified_user(gql, container)
    user = await login(gql)
    started = await start_enrollment(gql, user.access_token)
    assert started["__typename"] == "StartTotpEnrollmentSuccess"
    # The URI an app scans: the issuer from settings and the account's address.
    uri = urlsplit(started["otpauthUri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/Acme Cloud:ann@example.com"
    assert parse_qs(uri.query) == {"secret": [started["secret"]], "issuer": ["Acme Cloud"]}
    assert pyotp.parse_uri(started["otpauthUri"]).secret == started["secret"]
    # The QR code is inline SVG made here: paths only, nothing fetched from elsewhere.
    svg = started["qrCodeSvg"]
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")
    assert set(re.findall(r"<(\w+)", svg)) == {"svg", "path"}
    assert re.findall(r"https?://[^\"]*", svg) == ["http://www.w3.org/2000/svg"]  # namespace
    assert "href" not in svg
    # Nothing is stored of an enrolment but its challenge: no factor until confirmed.
    assert await scalar(container, "SELECT count(*) FROM factors") == 0

    code = totp.code_at(started["secret"], clock.now())
    done = await confirm(gql, user.access_token, started["enrollmentToken"], code, "Phone")
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess", done
    assert done["factor"]["kind"] == "TOTP"
    assert done["factor"]["label"] == "Phone"
    codes = done["recoveryCodes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9a-z]{5}-[0-9a-z]{5}", c) for c in codes)
    # Secrets at rest: the TOTP secret sealed, the recovery codes as HMACs only.
    stored = await scalar(container, "SELECT secret FROM factors")
    assert started["secret"].encode() not in bytes(stored)
    digests = [bytes(d) for d in (await _all(container, "SELECT digest FROM recovery_codes"))]
    assert len(digests) == 10
    assert not any(
        c.encode() in d or c.replace("-", "").encode() in d for c in codes for d in digests
    )
    # The enrolment left nothing behind.
    assert await scalar(container, "SELECT count(*) FROM challenges") == 0

    # The other device was signed out; this session now counts as two factors, at once.
    assert await live_sessions(container, user.user_id) == 1
    me = (await gql(MY_FACTORS, token=user.access_token))["data"]["me"]
    assert me["mfaEnabled"] is True
    assert me["recoveryCodesLeft"] == 10
    assert [f["label"] for f in me["factors"]] == ["Phone"]
    assert me["sessions"] == [
        {"id": me["sessions"][0]["id"], "current": True, "aal": 2, "amr": ["pwd", "otp", "mfa"]}
    ]
    other = await gql(MY_FACTORS, token=other_device.access_token, expect_errors=True)
    assert other["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Its access tokens show it from the next refresh.
    refreshed = (await gql(REFRESH, {"t": user.refresh_token}))["data"]["refreshToken"]
    assert (claims(refreshed["accessToken"])["aal"], claims(refreshed["accessToken"])["amr"]) == (
        2,
        ["pwd", "otp", "mfa"],
    )

    # A notice with the "this wasn't me" link, and an audit event.
    [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    assert "Authenticator app" in text_of(mail) or "authenticator app" in text_of(mail)
    assert "http://testserver/revert-change#token=" in text_of(mail)
    assert "24 hours" in text_of(mail)
    actions = await _all(container, "SELECT action FROM audit_events ORDER BY occurred_at")
    assert "mfa.enabled" in actions
    assert "mfa.factor_added" in actions

    # And the next sign-in needs the second factor.
    step = await mfa_login(gql)
    assert step["__typename"] == "MfaRequired"


async def test_enrolment_needs_a_verified_address(gql: GraphQLClient, container: Container) -> None:
    user = await signed_up(gql)
    result = await start_enrollment(gql, user.access_token)
    assert result["__typename"] == "EmailNotVerified"
    assert await scalar(container, "SELECT count(*) FROM challenges") == 0


async def test_enrolment_needs_the_password_or_a_recent_sign_in(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    before = await row_counts(container, ignore=("audit_events",))
    wrong = await start_enrollment(gql, user.access_token, "not my password")
    assert wrong["__typename"] == "InvalidCredentials"
    # Within the re-authentication window (5 minutes) no password is needed.
    assert (await start_enrollment(gql, user.access_token, None))["__typename"] == (
        "StartTotpEnrollmentSuccess"
    )
    clock.advance(301)
    late = await start_enrollment(gql, user.access_token, None)
    assert late["__typename"] == "InvalidCredentials"
    assert "sign in again" in late["message"]
    # A given password is always checked, and still works after the window.
    assert (await start_enrollment(gql, user.access_token))["__typename"] == (
        "StartTotpEnrollmentSuccess"
    )
    after = await row_counts(container, ignore=("audit_events",))
    assert after == {**before, "challenges": 1}  # the second start voided the first


async def test_a_wrong_code_is_refused_and_five_spend_the_enrolment(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    started = await start_enrollment(gql, user.access_token)
    right = totp.code_at(started["secret"], clock.now())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(5):
        result = await confirm(gql, user.access_token, started["enrollmentToken"], wrong)
        assert result["__typename"] == "InvalidCredentials", result
    spent = await confirm(gql, user.access_token, started["enrollmentToken"], right)
    assert spent["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT count(*) FROM factors") == 0


@pytest.mark.parametrize(
    ("code", "label", "problems"),
    [
        ("1234567", None, {("code", "invalid_code")}),
        ("12345", None, {("code", "invalid_code")}),
        ("12a456", None, {("code", "invalid_code")}),
        ("", None, {("code", "invalid_code")}),
        ("123456", "x" * 65, {("label", "too_long")}),
        ("123456", "my\u202ephone", {("label", "invalid_characters")}),
        ("123456", "line\nbreak", {("label", "invalid_characters")}),
        ("1", "\x00", {("code", "invalid_code"), ("label", "invalid_characters")}),
    ],
)
async def test_bad_confirmation_input_is_refused_and_writes_nothing(
    gql: GraphQLClient, container: Container, code: str, label: str | None, problems: set[Any]
) -> None:
    user = await verified_user(gql, container)
    started = await start_enrollment(gql, user.access_token)
    before = await row_counts(container)
    result = await confirm(gql, user.access_token, started["enrollmentToken"], code, label)
    assert result["__typename"] == "ValidationError"
    assert {(f["field"], f["code"]) for f in result["fields"]} == problems
    assert await row_counts(container) == before
    # A refused input does not spend the enrolment.
    assert await scalar(container, "SELECT failures FROM challenges") == 0


async def test_a_code_with_spaces_or_full_width_digits_is_accepted(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    started = await start_enrollment(gql, user.access_token)
    code = totp.code_at(started["secret"], clock.now())
    typed = " " + code[:3] + " " + "".join(chr(0xFF10 + int(d)) for d in code[3:]) + " "
    done = await confirm(gql, user.access_token, started["enrollmentToken"], typed)
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess", done


async def test_an_enrolment_lives_ten_minutes_and_belongs_to_its_user(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    ann = await verified_user(gql, container)
    bob = await verified_user(gql, container, "bob@example.com")
    started = await start_enrollment(gql, ann.access_token)
    code = totp.code_at(started["secret"], clock.now())
    theirs = await confirm(gql, bob.access_token, started["enrollmentToken"], code)
    assert theirs["__typename"] == "InvalidToken"
    clock.advance(601)
    late = await confirm(
        gql,
        ann.access_token,
        started["enrollmentToken"],
        totp.code_at(started["secret"], clock.now()),
    )
    assert late["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT count(*) FROM factors") == 0


async def test_a_new_enrolment_voids_the_older_one(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    first = await start_enrollment(gql, user.access_token)
    second = await start_enrollment(gql, user.access_token)
    old = await confirm(
        gql, user.access_token, first["enrollmentToken"], totp.code_at(first["secret"], clock.now())
    )
    assert old["__typename"] == "InvalidToken"
    new = await confirm(
        gql,
        user.access_token,
        second["enrollmentToken"],
        totp.code_at(second["secret"], clock.now()),
    )
    assert new["__typename"] == "ConfirmTotpEnrollmentSuccess"


async def test_a_second_app_gives_no_new_codes_and_ends_no_session(
    gql: GraphQLClient, container: Container, clock: FrozenClock, smtp: Inbox
) -> None:
    user = await verified_user(gql, container)
    first = await enroll(gql, user, clock)
    started = await start_enrollment(gql, user.access_token)
    done = await confirm(
        gql,
        user.access_token,
        started["enrollmentToken"],
        totp.code_at(started["secret"], clock.now()),
        "Tablet",
    )
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess"
    assert done["recoveryCodes"] is None
    me = (await gql(MY_FACTORS, token=user.access_token))["data"]["me"]
    assert [f["label"] for f in me["factors"]] == ["Authenticator app", "Tablet"]
    assert me["recoveryCodesLeft"] == 10
    assert await live_sessions(container, first.user.user_id) == 1
    # Every factor added is mailed about, each with its own undo link.
    mails = await wait_for_mail(container, smtp, "ann@example.com", 2, subject="sign-in method")
    assert len({text_of(m).split("#token=")[1].split()[0] for m in mails}) == 2


async def test_the_code_that_confirmed_an_app_cannot_sign_in(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    started = await start_enrollment(gql, user.access_token)
    code = totp.code_at(started["secret"], clock.now())
    await confirm(gql, user.access_token, started["enrollmentToken"], code)
    step = await mfa_login(gql)
    assert (await verify(gql, step["mfaToken"], totpCode=code))["__typename"] == (
        "InvalidCredentials"
    )


async def _all(container: Container, sql: str) -> list[Any]:
    async with container.reads() as db:
        return list((await db.execute(text(sql))).scalars())
