"""Managing factors and who needs them: roles that require MFA, renaming and removing
factors, new recovery codes, an admin's reset, the "this wasn't me" link, and what never
turns MFA off (a password reset, an email change, an import)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import text

from identity.clock import FrozenClock
from identity.container import Container
from tests.admin_helpers import ASSIGN, create_role, make_admin, role_id, user_with
from tests.conftest import (
    PASSWORD,
    GraphQLClient,
    Inbox,
    login,
    row_counts,
    scalar,
    text_of,
    token_in,
    wait_for_mail,
)
from tests.mfa_helpers import (
    MY_FACTORS,
    Enrolled,
    claims,
    enroll,
    live_sessions,
    mfa_login,
    set_verified,
    sign_in_with_code,
    verified_user,
    verify,
)

USERS = "{ users(first: 5) { totalCount } }"
ME = "{ me { email permissions roles { name requiresMfa } } }"
UPDATE_ROLE = """
mutation($id: ID!, $input: UpdateRoleInput!) {
  updateRole(id: $id, input: $input) {
    __typename ... on UpdateRoleSuccess { role { name requiresMfa } }
    ... on ValidationError { fields { field code } }
  }
}
"""
RENAME = """
mutation($id: ID!, $label: String!) {
  renameFactor(id: $id, label: $label) {
    __typename ... on RenameFactorSuccess { factor { id label } }
    ... on ValidationError { fields { field code } } ... on Error { message }
  }
}
"""
REMOVE = """
mutation($id: ID!, $password: String) {
  removeFactor(id: $id, input: {currentPassword: $password}) {
    __typename ... on RemoveFactorSuccess { message } ... on Error { message }
  }
}
"""
REGENERATE = """
mutation($password: String) {
  regenerateRecoveryCodes(input: {currentPassword: $password}) {
    __typename ... on RegenerateRecoveryCodesSuccess { recoveryCodes }
    ... on ValidationError { fields { field code } } ... on Error { message }
  }
}
"""
RESET_MFA = """
mutation($id: ID!) {
  resetUserMfa(userId: $id) {
    __typename ... on ResetUserMfaSuccess { user { email mfaEnabled factors { id } } }
    ... on Error { message }
  }
}
"""
REVERT = """
mutation($token: String!) {
  revertSecurityChange(input: {token: $token}) {
    __typename ... on RevertSecurityChangeSuccess { message } ... on Error { message }
  }
}
"""
USER_FACTORS = """
query($id: ID!) { user(id: $id) { mfaEnabled recoveryCodesLeft factors { kind label createdAt } } }
"""


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


@pytest.fixture
async def enrolled(gql: GraphQLClient, container: Container, clock: FrozenClock) -> Enrolled:
    return await enroll(gql, await verified_user(gql, container), clock)


# Roles that require MFA ----------------------------------------------------------------------


async def test_a_role_that_requires_mfa_walkthrough(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    viewer = await user_with(gql, admin, "ann@example.com", ["users:read"])
    await set_verified(container, "ann@example.com")
    role = next(
        r
        for r in (await gql("{ roles { id name } }", token=admin.access_token))["data"]["roles"]
        if r["name"] == "r-ann"
    )
    assert (await gql(USERS, token=viewer.access_token))["data"]["users"]["totalCount"] == 2

    changed = await gql(
        UPDATE_ROLE, {"id": role["id"], "input": {"requiresMfa": True}}, token=admin.access_token
    )
    assert changed["data"]["updateRole"] == {
        "__typename": "UpdateRoleSuccess",
        "role": {"name": "r-ann", "requiresMfa": True},
    }
    assert "admin.role_updated" in await _actions(container)

    # At aal 1 the role grants nothing, and says why: MFA_REQUIRED, not FORBIDDEN.
    refused = await gql(USERS, token=viewer.access_token, expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "MFA_REQUIRED"
    me = (await gql(ME, token=viewer.access_token))["data"]["me"]
    assert "users:read" not in me["permissions"]
    assert {"name": "r-ann", "requiresMfa": True} in me["roles"]  # the client can tell why
    # Other services read the token's `roles`: the role is left out at aal 1.
    fresh = await login(gql)
    assert claims(fresh.access_token)["roles"] == ["user"]

    # Enrolling raises this very session: the same field works on the next request.
    app = await enroll(gql, viewer, clock)
    assert (await gql(USERS, token=viewer.access_token))["data"]["users"]["totalCount"] == 2
    me = (await gql(ME, token=viewer.access_token))["data"]["me"]
    assert "users:read" in me["permissions"]
    # A sign-in with both factors carries the role in its tokens.
    signed_in = await sign_in_with_code(gql, app.secret, clock)
    assert sorted(claims(signed_in.access_token)["roles"]) == ["r-ann", "user"]


async def test_a_role_that_requires_mfa_does_not_take_what_another_role_grants(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    viewer = await user_with(gql, admin, "ann@example.com", ["users:read"])
    guarded = await create_role(gql, admin, "guarded", ["users:read", "audit:read"])
    await gql(
        UPDATE_ROLE, {"id": guarded["id"], "input": {"requiresMfa": True}}, token=admin.access_token
    )
    await gql(ASSIGN, {"user": viewer.user_id, "role": guarded["id"]}, token=admin.access_token)
    assert (await gql(USERS, token=viewer.access_token))["data"]["users"]["totalCount"] == 2
    audit = await gql(
        "{ auditEvents { totalCount } }", token=viewer.access_token, expect_errors=True
    )
    assert audit["errors"][0]["extensions"]["code"] == "MFA_REQUIRED"


async def test_an_admin_at_aal_1_acting_through_an_mfa_role_gets_mfa_required(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    other = await make_admin(container, gql, "second@example.com")
    admin_role = await role_id(gql, admin, "admin")
    await gql(
        UPDATE_ROLE, {"id": admin_role, "input": {"requiresMfa": True}}, token=admin.access_token
    )
    user = await user_with(gql, other, "ann@example.com", [])
    result = await gql(
        "mutation($id: ID!) { verifyUser(id: $id) { __typename } }",
        {"id": user.user_id},
        token=other.access_token,
        expect_errors=True,
    )
    assert result["errors"][0]["extensions"]["code"] == "MFA_REQUIRED"


async def test_requires_mfa_null_is_refused(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    role = await create_role(gql, admin, "ops", ["users:read"])
    before = await row_counts(container)
    result = await gql(
        UPDATE_ROLE, {"id": role["id"], "input": {"requiresMfa": None}}, token=admin.access_token
    )
    assert result["data"]["updateRole"]["fields"] == [{"field": "requiresMfa", "code": "required"}]
    assert await row_counts(container) == before


# Renaming, removing, regenerating ------------------------------------------------------------


async def test_rename_a_factor(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    token = enrolled.user.access_token
    renamed = await gql(RENAME, {"id": enrolled.factor_id, "label": "  Work phone "}, token=token)
    assert renamed["data"]["renameFactor"]["factor"]["label"] == "Work phone"
    bob = await verified_user(gql, container, "bob@example.com")
    before = await row_counts(container)
    for label, code in (
        ("x" * 65, "too_long"),
        ("a\u0007b", "invalid_characters"),
        ("  ", "required"),
    ):
        bad = await gql(RENAME, {"id": enrolled.factor_id, "label": label}, token=token)
        assert bad["data"]["renameFactor"]["fields"] == [{"field": "label", "code": code}]
    # Someone else's factor, an unknown or a malformed id: NotFound.
    for factor_id in (enrolled.factor_id, "00000000-0000-0000-0000-000000000000", "nope"):
        other = await gql(RENAME, {"id": factor_id, "label": "mine"}, token=bob.access_token)
        assert other["data"]["renameFactor"]["__typename"] == "NotFound"
    assert await row_counts(container) == before


async def test_removing_the_last_factor_turns_mfa_off(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    other_device = await sign_in_with_code(gql, enrolled.secret, clock)
    me = enrolled.user.access_token
    wrong = await gql(REMOVE, {"id": enrolled.factor_id, "password": "wrong"}, token=me)
    assert wrong["data"]["removeFactor"]["__typename"] == "InvalidCredentials"
    # Within the window of the session's last sign-in, no password is needed.
    done = await gql(REMOVE, {"id": enrolled.factor_id, "password": None}, token=me)
    assert done["data"]["removeFactor"]["__typename"] == "RemoveFactorSuccess"
    mine = (await gql(MY_FACTORS, token=me))["data"]["me"]
    assert (mine["mfaEnabled"], mine["recoveryCodesLeft"], mine["factors"]) == (False, 0, [])
    assert await scalar(container, "SELECT count(*) FROM recovery_codes") == 0
    gone = await gql(MY_FACTORS, token=other_device.access_token, expect_errors=True)
    assert gone["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="removed")
    assert "Two-step sign-in is now off" in text_of(mail)
    assert (await mfa_login(gql))["__typename"] == "AuthPayload"


async def test_removing_needs_a_recent_sign_in_or_the_password(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    clock.advance(600)
    me = enrolled.user.access_token
    late = await gql(REMOVE, {"id": enrolled.factor_id}, token=me)
    assert late["data"]["removeFactor"]["__typename"] == "InvalidCredentials"
    assert await scalar(container, "SELECT count(*) FROM factors") == 1
    done = await gql(REMOVE, {"id": enrolled.factor_id, "password": PASSWORD}, token=me)
    assert done["data"]["removeFactor"]["__typename"] == "RemoveFactorSuccess"


async def test_removing_one_of_two_keeps_mfa_on(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled
) -> None:
    second = await enroll(gql, enrolled.user, clock, "Tablet")
    done = await gql(REMOVE, {"id": enrolled.factor_id}, token=enrolled.user.access_token)
    assert done["data"]["removeFactor"]["__typename"] == "RemoveFactorSuccess"
    assert (await mfa_login(gql))["__typename"] == "MfaRequired"
    assert await scalar(container, "SELECT count(*) FROM recovery_codes") == 10
    await sign_in_with_code(gql, second.secret, clock)


async def test_regenerate_recovery_codes_voids_the_old_set(
    gql: GraphQLClient, container: Container, enrolled: Enrolled
) -> None:
    result = await gql(REGENERATE, {"password": PASSWORD}, token=enrolled.user.access_token)
    codes = result["data"]["regenerateRecoveryCodes"]["recoveryCodes"]
    assert len(codes) == 10
    assert not set(codes) & set(enrolled.recovery_codes)
    old = await verify(
        gql, (await mfa_login(gql))["mfaToken"], recoveryCode=enrolled.recovery_codes[0]
    )
    assert old["__typename"] == "InvalidCredentials"
    new = await verify(gql, (await mfa_login(gql))["mfaToken"], recoveryCode=codes[0])
    assert new["__typename"] == "AuthPayload"


async def test_regenerate_needs_mfa_on(gql: GraphQLClient, container: Container) -> None:
    user = await verified_user(gql, container)
    result = await gql(REGENERATE, {"password": PASSWORD}, token=user.access_token)
    assert result["data"]["regenerateRecoveryCodes"]["fields"] == [
        {"field": "factors", "code": "mfa_off"}
    ]
    assert await scalar(container, "SELECT count(*) FROM recovery_codes") == 0


# Admins ---------------------------------------------------------------------------------------


async def test_admins_see_factors_but_never_secrets_and_others_see_nothing(
    gql: GraphQLClient, container: Container, enrolled: Enrolled
) -> None:
    admin = await make_admin(container, gql)
    seen = await gql(USER_FACTORS, {"id": enrolled.user.user_id}, token=admin.access_token)
    user = seen["data"]["user"]
    assert (user["mfaEnabled"], user["recoveryCodesLeft"]) == (True, 10)
    assert [f["kind"] for f in user["factors"]] == ["TOTP"]
    bob = await verified_user(gql, container, "bob@example.com")
    hidden = await gql(
        "query($id: ID!) { user(id: $id) { email } }",
        {"id": enrolled.user.user_id},
        token=bob.access_token,
        expect_errors=True,
    )
    assert hidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_admin_resets_a_users_mfa(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    admin = await make_admin(container, gql)
    result = await gql(RESET_MFA, {"id": enrolled.user.user_id}, token=admin.access_token)
    assert result["data"]["resetUserMfa"] == {
        "__typename": "ResetUserMfaSuccess",
        "user": {"email": "ann@example.com", "mfaEnabled": False, "factors": []},
    }
    assert await live_sessions(container, enrolled.user.user_id) == 0
    assert await scalar(container, "SELECT count(*) FROM recovery_codes") == 0
    assert "admin.mfa_reset" in await _actions(container)
    [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="turned off")
    assert "administrator" in text_of(mail)
    assert (await mfa_login(gql))["__typename"] == "AuthPayload"


async def test_resetting_the_mfa_of_someone_who_holds_more_is_forbidden(
    gql: GraphQLClient, container: Container, clock: FrozenClock
) -> None:
    admin = await make_admin(container, gql)
    await set_verified(container, "root@example.com")
    await enroll(gql, admin, clock)
    helpdesk = await user_with(gql, admin, "help@example.com", ["users:write"])
    before = await row_counts(container)
    result = await gql(
        RESET_MFA, {"id": admin.user_id}, token=helpdesk.access_token, expect_errors=True
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(container) == before
    unknown = await gql(
        RESET_MFA, {"id": "00000000-0000-0000-0000-000000000000"}, token=admin.access_token
    )
    assert unknown["data"]["resetUserMfa"]["__typename"] == "NotFound"


# The "this wasn't me" link ---------------------------------------------------------------------


async def test_the_undo_link_removes_the_factor_and_ends_every_session(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    [notice] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    link = token_in(notice)
    # The intruder changes the password: the link must survive it.
    changed = await gql(
        """mutation { changePassword(input: {currentPassword: "correct horse battery staple",
           newPassword: "an intruder's passphrase"}) { __typename } }""",
        token=enrolled.user.access_token,
    )
    assert changed["data"]["changePassword"]["__typename"] == "ChangePasswordSuccess"
    result = await gql(REVERT, {"token": link})
    assert result["data"]["revertSecurityChange"]["__typename"] == "RevertSecurityChangeSuccess"
    assert await scalar(container, "SELECT count(*) FROM factors") == 0
    assert await live_sessions(container, enrolled.user.user_id) == 0
    assert "mfa.change_reverted" in await _actions(container)
    [mail] = await wait_for_mail(container, smtp, "ann@example.com", subject="did not add")
    assert "choose a new one" in text_of(mail)
    # Once.
    again = await gql(REVERT, {"token": link})
    assert again["data"]["revertSecurityChange"]["__typename"] == "InvalidToken"


async def test_the_undo_link_expires_after_a_day(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    [notice] = await wait_for_mail(container, smtp, "ann@example.com", subject="sign-in method")
    clock.advance(24 * 3600 + 1)
    result = await gql(REVERT, {"token": token_in(notice)})
    assert result["data"]["revertSecurityChange"]["__typename"] == "InvalidToken"
    assert await scalar(container, "SELECT count(*) FROM factors") == 1


async def test_the_undo_page_is_served(gql: GraphQLClient) -> None:
    page = await gql.http.get("/revert-change")
    assert page.status_code == 200
    assert "Remove a sign-in method you did not add" in page.text


# What never turns MFA off -------------------------------------------------------------------


async def test_an_email_change_keeps_mfa(
    gql: GraphQLClient, container: Container, clock: FrozenClock, enrolled: Enrolled, smtp: Inbox
) -> None:
    await gql(
        """mutation { requestEmailChange(input: {newEmail: "ann2@example.com",
           currentPassword: "correct horse battery staple"}) { __typename } }""",
        token=enrolled.user.access_token,
    )
    [mail] = await wait_for_mail(container, smtp, "ann2@example.com")
    await gql(
        "mutation($t: String!) { confirmEmailChange(input: {token: $t}) { __typename } }",
        {"t": token_in(mail)},
    )
    assert (await mfa_login(gql, "ann2@example.com"))["__typename"] == "MfaRequired"


async def test_an_import_with_overwrite_keeps_mfa(
    gql: GraphQLClient, container: Container, enrolled: Enrolled
) -> None:
    line = {"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "roles": ["user"]}
    async with container.unit_of_work() as uow:
        await container.transfer.import_users(
            uow, io.BytesIO(json.dumps(line).encode() + b"\n"), overwrite=True, batch_size=10
        )
    assert await scalar(container, "SELECT count(*) FROM factors") == 1
    assert (await mfa_login(gql))["__typename"] == "MfaRequired"


async def _actions(container: Container) -> list[str]:
    async with container.reads() as db:
        return list((await db.execute(text("SELECT action FROM audit_events"))).scalars())
