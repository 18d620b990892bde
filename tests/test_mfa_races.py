"""Second factors under concurrency and at the edges: sign-ins racing enrolment, deactivation
or a password change; bursts against one mfaToken; the re-authentication window; what
expired flows leave behind; tokens of one purpose used for another; the undo link's reach.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from identity.clock import FrozenClock
from identity.container import Container
from identity.security import totp
from tests.admin_helpers import make_admin, user_with
from tests.conftest import (
    PASSWORD,
    GraphQLClient,
    Inbox,
    row_counts,
    scalar,
    token_in,
    wait_for_mail,
)
from tests.mfa_helpers import (
    MY_FACTORS,
    Enrolled,
    claims,
    confirm,
    enroll,
    live_sessions,
    mfa_login,
    set_verified,
    start_enrollment,
    verified_user,
    verify,
)

REMOVE = """
mutation($id: ID!, $password: String) {
  removeFactor(id: $id, input: {currentPassword: $password}) {
    __typename ... on Error { message }
  }
}
"""
REVERT = """
mutation($token: String!) { revertSecurityChange(input: {token: $token}) { __typename } }
"""


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


def held_password_checks(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """(entered, release): the next password check, once done, waits for `release`."""
    hasher = container.runtime.hasher
    real: Callable[..., Awaitable[Any]] = hasher.verify
    entered, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any, **kwargs: Any) -> Any:
        result = await real(*args, **kwargs)
        if not release.is_set():
            entered.set()
            await release.wait()
        return result

    monkeypatch.setattr(hasher, "verify", held)
    return entered, release


async def test_a_sign_in_in_flight_while_mfa_turns_on_must_pass_the_second_factor(
    gql: GraphQLClient, container: Container, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await verified_user(gql, container)
    entered, release = held_password_checks(container, monkeypatch)
    intruder = asyncio.create_task(mfa_login(gql))  # knows the password
    await entered.wait()
    started = await start_enrollment(gql, owner.access_token, None)
    code = totp.code_at(started["secret"], clock.now())
    done = await confirm(gql, owner.access_token, started["enrollmentToken"], code)
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess"
    release.set()
    assert (await intruder)["__typename"] == "MfaRequired"
    assert await live_sessions(container, owner.user_id) == 1


async def test_a_sign_in_in_flight_while_the_account_is_deactivated_starts_no_session(
    gql: GraphQLClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await make_admin(container, gql)
    user = await user_with(gql, admin, "ann@example.com", [])
    entered, release = held_password_checks(container, monkeypatch)
    in_flight = asyncio.create_task(mfa_login(gql))
    await entered.wait()
    deactivate = (
        "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { __typename } }"
    )
    result = await gql(deactivate, {"id": user.user_id}, token=admin.access_token)
    assert result["data"]["updateUser"]["__typename"] == "UpdateUserSuccess"
    release.set()
    assert (await in_flight)["__typename"] == "InvalidCredentials"
    assert await live_sessions(container, user.user_id) == 0


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_mfa_account": "1000/minute"}])
async def test_an_mfa_token_takes_at_most_five_answers_even_when_they_race(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    token = (await mfa_login(gql))["mfaToken"]
    right = totp.code_at(app.secret, clock.now())
    wrongs = [f"{(int(right) + k) % 1_000_000:06d}" for k in range(1, 21)]
    results = await asyncio.gather(*(verify(gql, token, totpCode=w) for w in wrongs))
    kinds = [r["__typename"] for r in results]
    assert kinds.count("InvalidCredentials") == 5
    assert kinds.count("InvalidToken") == 15
    assert (await verify(gql, token, totpCode=right))["__typename"] == "InvalidToken"


async def test_two_sign_ins_racing_with_one_recovery_code_start_one_session(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    tokens = [(await mfa_login(gql))["mfaToken"] for _ in range(3)]
    code = app.recovery_codes[0]
    results = await asyncio.gather(*(verify(gql, t, recoveryCode=code) for t in tokens))
    assert sorted(r["__typename"] for r in results) == [
        "AuthPayload",
        "InvalidCredentials",
        "InvalidCredentials",
    ]


async def test_concurrent_removals_of_one_factor_remove_it_once(
    gql: GraphQLClient, container: Container, clock: FrozenClock, smtp: Inbox
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    results = await asyncio.gather(
        *(gql(REMOVE, {"id": app.factor_id}, token=app.user.access_token) for _ in range(3))
    )
    kinds = sorted(r["data"]["removeFactor"]["__typename"] for r in results)
    assert kinds == ["NotFound", "NotFound", "RemoveFactorSuccess"]
    removed = "SELECT count(*) FROM audit_events WHERE action = 'mfa.factor_removed'"
    assert await scalar(container, removed) == 1


async def test_adding_a_factor_does_not_renew_the_reauthentication_window(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    user = await verified_user(gql, container)
    clock.advance(290)
    started = await start_enrollment(gql, user.access_token, None)
    await confirm(
        gql,
        user.access_token,
        started["enrollmentToken"],
        totp.code_at(started["secret"], clock.now()),
    )
    clock.advance(290)  # 580 s after signing in
    again = await start_enrollment(gql, user.access_token, None)
    assert again["__typename"] == "InvalidCredentials"


async def test_a_session_without_the_second_factor_cannot_change_factors(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    """Defence in depth: should an aal 1 session of an account with MFA exist at all."""
    app = await enroll(gql, await verified_user(gql, container), clock)
    async with container.writes() as db:
        await db.execute(text("UPDATE sessions SET aal = 1"))
        await db.commit()
    before = await row_counts(container)
    for query, variables in (
        ("mutation { startTotpEnrollment(input: {}) { __typename } }", {}),
        (REMOVE, {"id": app.factor_id, "password": PASSWORD}),
        ("mutation { regenerateRecoveryCodes(input: {}) { __typename } }", {}),
    ):
        result = await gql(query, variables, token=app.user.access_token, expect_errors=True)
        assert result["errors"][0]["extensions"]["code"] == "MFA_REQUIRED", result
    assert await row_counts(container) == before


async def test_removing_the_last_factor_lowers_the_session_to_one_factor(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    await gql(REMOVE, {"id": app.factor_id}, token=app.user.access_token)
    me = (await gql(MY_FACTORS, token=app.user.access_token))["data"]["me"]
    assert [(s["aal"], s["current"]) for s in me["sessions"]] == [(1, True)]


async def test_expired_enrolments_and_finished_sign_ins_leave_nothing_behind(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    await start_enrollment(gql, app.user.access_token)  # never confirmed
    for _ in range(2):
        step = await mfa_login(gql)
        await verify(gql, step["mfaToken"], totpCode=totp.code_at(app.secret, clock.now()))
        clock.advance(30)
    assert await scalar(container, "SELECT count(*) FROM challenges") == 1  # the enrolment
    clock.advance(601)
    async with container.unit_of_work() as uow:
        assert await container.challenges.prune(uow) == 1
    assert await scalar(container, "SELECT count(*) FROM challenges") == 0


@pytest.mark.parametrize("kind", ["enrolment as mfaToken", "mfaToken as enrolment", "link"])
async def test_a_token_of_another_purpose_is_invalid(
    gql: GraphQLClient, container: Container, clock: FrozenClock, smtp: Inbox, kind: str
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    code = totp.code_at(app.secret, clock.now())
    if kind == "enrolment as mfaToken":
        started = await start_enrollment(gql, app.user.access_token)
        result = await verify(gql, started["enrollmentToken"], totpCode=code)
    elif kind == "mfaToken as enrolment":
        token = (await mfa_login(gql))["mfaToken"]
        result = await confirm(gql, app.user.access_token, token, code)
    else:
        await gql(
            'mutation { requestPasswordReset(input: {email: "ann@example.com"}) { __typename } }'
        )
        [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="Reset")
        result = await verify(gql, token_in(mail), totpCode=code)
    assert result["__typename"] == "InvalidToken"


async def test_a_code_typed_with_spaces_signs_in(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app = await enroll(gql, await verified_user(gql, container), clock)
    code = totp.code_at(app.secret, clock.now())
    result = await verify(
        gql, (await mfa_login(gql))["mfaToken"], totpCode=f" {code[:3]} {code[3:]} "
    )
    assert result["__typename"] == "AuthPayload"


async def test_the_undo_link_voids_recovery_codes_other_links_and_pending_sign_ins(
    gql: GraphQLClient, container: Container, clock: FrozenClock, smtp: Inbox
) -> None:
    first = await enroll(gql, await verified_user(gql, container), clock)
    pending = (await mfa_login(gql))["mfaToken"]
    # The intruder's email change, asked for before the owner undoes their factor.
    await gql(
        """mutation { requestEmailChange(input: {newEmail: "intruder@example.com",
           currentPassword: "correct horse battery staple"}) { __typename } }""",
        token=first.user.access_token,
    )
    [change] = await wait_for_mail(container, smtp, "intruder@example.com")
    [notice] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    assert (await gql(REVERT, {"token": token_in(notice)}))["data"]["revertSecurityChange"][
        "__typename"
    ] == "RevertSecurityChangeSuccess"
    assert await scalar(container, "SELECT count(*) FROM recovery_codes") == 0
    confirm_change = (
        "mutation($t: String!) { confirmEmailChange(input: {token: $t}) { __typename } }"
    )
    refused = await gql(confirm_change, {"t": token_in(change)})
    assert refused["data"]["confirmEmailChange"]["__typename"] == "InvalidToken"
    code = totp.code_at(first.secret, clock.now())
    assert (await verify(gql, pending, totpCode=code))["__typename"] == "InvalidToken"


async def test_a_refreshed_token_at_aal_1_leaves_out_roles_that_require_mfa(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    viewer = await user_with(gql, admin, "ann@example.com", ["users:read"])
    await set_verified(container, "ann@example.com")
    roles = (await gql("{ roles { id name } }", token=admin.access_token))["data"]["roles"]
    role = next(r for r in roles if r["name"] == "r-ann")
    update = "mutation($id: ID!) { updateRole(id: $id, input: {requiresMfa: true}) { __typename } }"
    await gql(update, {"id": role["id"]}, token=admin.access_token)
    refresh = """mutation($t: String) { refreshToken(input: {refreshToken: $t}) {
      __typename ... on AuthPayload { accessToken } } }"""
    refreshed = (await gql(refresh, {"t": viewer.refresh_token}))["data"]["refreshToken"]
    assert claims(refreshed["accessToken"])["roles"] == ["user"]
    # Another user's permissions, as an admin reads them, are all their roles give.
    others = "query($id: ID!) { user(id: $id) { permissions } }"
    seen = await gql(others, {"id": viewer.user_id}, token=admin.access_token)
    assert seen["data"]["user"]["permissions"] == ["users:read"]


async def test_creating_a_user_with_roles_at_aal_1_through_an_mfa_role_answers_mfa_required(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    hr = await user_with(gql, admin, "hr@example.com", ["users:write", "roles:assign"])
    roles = (await gql("{ roles { id name } }", token=admin.access_token))["data"]["roles"]
    role = next(r for r in roles if r["name"] == "r-hr")
    update = "mutation($id: ID!) { updateRole(id: $id, input: {requiresMfa: true}) { __typename } }"
    await gql(update, {"id": role["id"]}, token=admin.access_token)
    create = """mutation { createUser(input: {email: "new@example.com", roles: ["user"]}) {
      __typename } }"""
    result = await gql(create, token=hr.access_token, expect_errors=True)
    assert result["errors"][0]["extensions"]["code"] == "MFA_REQUIRED"


async def test_an_import_that_overwrites_the_password_keeps_mfa_and_voids_pending_sign_ins(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    app: Enrolled = await enroll(gql, await verified_user(gql, container), clock)
    pending = (await mfa_login(gql))["mfaToken"]
    new_hash = container.runtime.hasher.hash_sync("an imported passphrase")
    line = {"email": "ann@example.com", "passwordHash": new_hash, "roles": ["user"]}
    async with container.unit_of_work() as uow:
        await container.transfer.import_users(
            uow, io.BytesIO(json.dumps(line).encode() + b"\n"), overwrite=True, batch_size=10
        )
    code = totp.code_at(app.secret, clock.now())
    assert (await verify(gql, pending, totpCode=code))["__typename"] == "InvalidToken"
    assert (await mfa_login(gql, password="an imported passphrase"))["__typename"] == "MfaRequired"
