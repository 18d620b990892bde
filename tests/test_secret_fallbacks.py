"""A secret rotation signs nobody out: what the old secret made works under a fallback, and
everything new is made with the current secret.

Each case makes something on an instance that knows only the old secret, then restarts as
phase 2 of a rotation (the new secret current, the old one a fallback) and checks that the
thing still works there, and that what phase 2 makes in its place opens with the new secret
alone (so phase 3, which drops the old secret, leaves it working).

Every capability that derives from or seals under the server secret adds one case to CASES
(still to come: passkey challenges, OAuth codes and grants). A case is a
`make` run on the old instance, returning what it made, and a `use` run on the phase-2
instance; `Judge` says whether one secret alone opens a token or a sealed value.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from identity.app import create_app
from identity.clock import FrozenClock
from identity.config import Settings
from identity.container import Container
from identity.db.models import WebhookSecret
from identity.repositories.sealed import SEALED_COLUMNS
from identity.security import totp
from identity.services.auth import REFRESH_PURPOSE
from identity.services.challenges import MFA, Challenges
from identity.services.errors import InvalidToken
from identity.services.paging import Cursors, InvalidPage
from identity.services.tokens import EMAIL_CHANGE, INVITATION, PASSWORD_RESET, VERIFY_EMAIL
from tests.admin_helpers import make_admin
from tests.conftest import (
    PASSWORD,
    Database,
    GraphQLClient,
    Inbox,
    login,
    make_settings,
    reset_database,
    signed_up,
    token_in,
    wait_for_mail,
)
from tests.mfa_helpers import (
    Enrolled,
    confirm,
    enroll,
    mfa_login,
    sign_in_with_code,
    start_enrollment,
    verified_user,
    verify,
)
from tests.webhook_helpers import Receiver, create_endpoint, settle_webhooks

OLD = "the-old-server-secret-" + "o" * 30
NEW = "the-new-server-secret-" + "n" * 30
REFRESH_IDS = 16 + 8  # a refresh token carries its session id and counter

REFRESH = """mutation($t: String) { refreshToken(input: {refreshToken: $t}) {
  __typename ... on AuthPayload { accessToken refreshToken } } }"""
LOGOUT = "mutation($t: String) { logout(input: {refreshToken: $t}) { __typename } }"
ME = "{ me { email isVerified } }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { __typename } }"
RESET = """mutation($t: String!) { resetPassword(input: {token: $t, password: "a new passphrase!",
  passwordConfirm: "a new passphrase!"}) { __typename } }"""
REQUEST_VERIFICATION = "mutation { requestEmailVerification { __typename } }"
VERIFY = "mutation($t: String!) { verifyEmail(input: {token: $t}) { __typename } }"
REQUEST_CHANGE = """mutation($e: String!, $p: String!) {
  requestEmailChange(input: {newEmail: $e, currentPassword: $p}) { __typename } }"""
ROTATE_WEBHOOK = """mutation($id: ID!) { rotateWebhookSecret(id: $id) { __typename } }"""
CONFIRM_CHANGE = "mutation($t: String!) { confirmEmailChange(input: {token: $t}) { __typename } }"
CREATE_USER = """mutation($e: String!) { createUser(input: {email: $e, firstName: "I",
  lastName: "N", roles: []}) { __typename } }"""
USERS = """query($after: String) { users(first: 1, after: $after) {
  edges { node { email } } pageInfo { endCursor } } }"""


@dataclass
class Instance:
    """A running app: its container, and GraphQL over HTTP."""

    container: Container
    gql: GraphQLClient
    inbox: Inbox
    clock: FrozenClock

    async def mail(self, address: str, subject: str, count: int = 1) -> EmailMessage:
        return (await wait_for_mail(self.container, self.inbox, address, count, subject=subject))[
            -1
        ]


class Judge:
    """What one secret alone opens: a process that knows only it (phase 3, or before)."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def opens_refresh_token(self, token: str) -> bool:
        secret = self.container.runtime.secret
        return secret.open_token(REFRESH_PURPOSE, token, REFRESH_IDS) is not None

    async def opens_link(self, token: str, purpose: str) -> bool:
        async with self.container.reading() as uow:
            try:
                await self.container.tokens.check(uow, token, {purpose})
            except InvalidToken:
                return False
        return True

    def opens_cursor(self, kind: str, cursor: str) -> bool:
        try:
            Cursors(self.container.runtime.secret).decode(kind, cursor)
        except InvalidPage:
            return False
        return True

    async def opens_challenge(self, token: str, purpose: str) -> bool:
        async with self.container.reading() as uow:
            try:
                await Challenges(self.container.runtime).open(uow, token, purpose)
            except InvalidToken:
                return False
        return True

    async def opens_sealed(self, name: str, key: Any) -> bool:
        """Whether this secret alone opens the value of SEALED_COLUMNS[name] in row `key`."""
        column = next(c for c in SEALED_COLUMNS if c.name == name)
        async with self.container.reads() as db:
            row = await db.get(column.model, key)
        assert row is not None
        sealed = getattr(row, column.column)
        secret = self.container.runtime.secret
        return secret.sealed_with(column.purpose, sealed, column.aad(row)) == 0


class Rotation:
    def __init__(self, database: Database, tmp_path: Path, clock: FrozenClock, smtp: Inbox):
        self.database, self.tmp_path, self.clock, self.smtp = database, tmp_path, clock, smtp
        self.stack = AsyncExitStack()

    def settings(self, secret: str, fallbacks: Sequence[str] = ()) -> Settings:
        return make_settings(
            self.database.url,
            self.tmp_path,
            secret_key=secret,
            secret_key_fallbacks=",".join(fallbacks),
            mail_url=f"smtp://127.0.0.1:{self.smtp.port}",
            mail_poll_interval=3600,
        )

    @asynccontextmanager
    async def running(self, secret: str, fallbacks: Sequence[str] = ()) -> AsyncIterator[Instance]:
        app = create_app(self.settings(secret, fallbacks), clock=self.clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as h:
                yield Instance(app.state.container, GraphQLClient(h), self.smtp, self.clock)

    async def judge(self, secret: str) -> Judge:
        container = Container.create(self.settings(secret))
        self.stack.push_async_callback(container.close)
        return Judge(container)


@pytest.fixture
async def rotation(
    database: Database, tmp_path: Path, clock: FrozenClock, smtp: Inbox
) -> AsyncIterator[Rotation]:
    deployment = Rotation(database, tmp_path, clock, smtp)
    try:
        yield deployment
    finally:
        await deployment.stack.aclose()
        # The signing keys go too: the rest of the session uses another secret.
        await reset_database(make_settings(database.url, tmp_path))


async def one(gql: GraphQLClient, query: str, variables: dict[str, Any], **kw: Any) -> Any:
    data = (await gql(query, variables, **kw))["data"]
    return next(iter(data.values()))


# The cases ------------------------------------------------------------------------------------


async def make_refresh_tokens(old: Instance) -> Any:
    two_tabs = await signed_up(old.gql, "tabs@example.com")
    stolen = await login(old.gql, "tabs@example.com")
    rotated = await one(old.gql, REFRESH, {"t": stolen.refresh_token})
    leaving = await login(old.gql, "tabs@example.com")
    return two_tabs, (stolen.refresh_token, rotated["refreshToken"]), leaving


async def use_refresh_tokens(new: Instance, made: Any, rotation: Rotation) -> None:
    two_tabs, (used, current), leaving = made
    # Rotation works, and the successor is made with the new secret alone.
    first = await one(new.gql, REFRESH, {"t": two_tabs.refresh_token})
    assert first["__typename"] == "AuthPayload"
    assert (await rotation.judge(NEW)).opens_refresh_token(first["refreshToken"])
    assert not (await rotation.judge(OLD)).opens_refresh_token(first["refreshToken"])
    # Grace: the other tab, still holding the old-secret token, gets that same successor.
    again = await one(new.gql, REFRESH, {"t": two_tabs.refresh_token})
    assert again["refreshToken"] == first["refreshToken"]
    assert (await one(new.gql, REFRESH, {"t": first["refreshToken"]}))["__typename"] == (
        "AuthPayload"
    )
    # Reuse: a used token made before the rotation, replayed after the grace, ends its session.
    rotation.clock.advance(seconds=11)
    assert (await one(new.gql, REFRESH, {"t": used}))["__typename"] == "InvalidToken"
    assert (await one(new.gql, REFRESH, {"t": current}))["__typename"] == "InvalidToken"
    # Logout with a token made before the rotation.
    assert (await one(new.gql, LOGOUT, {"t": leaving.refresh_token}))["__typename"] == (
        "LogoutSuccess"
    )


async def make_reset_link(old: Instance) -> Any:
    user = await signed_up(old.gql, "reset@example.com")
    await one(old.gql, REQUEST_RESET, {"e": user.email})
    return token_in(await old.mail(user.email, "Reset your"))


async def use_reset_link(new: Instance, token: Any, rotation: Rotation) -> None:
    assert (await one(new.gql, RESET, {"t": token}))["__typename"] == "ResetPasswordSuccess"
    await one(new.gql, REQUEST_RESET, {"e": "reset@example.com"})
    fresh = token_in(await new.mail("reset@example.com", "Reset your", count=2))
    await made_with_the_new_secret_only(rotation, fresh, PASSWORD_RESET)
    assert (await one(new.gql, RESET, {"t": fresh}))["__typename"] == "ResetPasswordSuccess"


async def make_verification_link(old: Instance) -> Any:
    user = await signed_up(old.gql, "verify@example.com")  # registering mails the link
    return user, token_in(await old.mail(user.email, "Confirm your email"))


async def use_verification_link(new: Instance, made: Any, rotation: Rotation) -> None:
    _, token = made
    assert (await one(new.gql, VERIFY, {"t": token}))["__typename"] == "VerifyEmailSuccess"
    other = await signed_up(new.gql, "verify-new@example.com")
    fresh = token_in(await new.mail(other.email, "Confirm your email"))
    await made_with_the_new_secret_only(rotation, fresh, VERIFY_EMAIL)


async def make_invitation(old: Instance) -> Any:
    admin = await make_admin(old.container, old.gql)
    await one(old.gql, CREATE_USER, {"e": "invited@example.com"}, token=admin.access_token)
    return admin, token_in(await old.mail("invited@example.com", "You are invited"))


async def use_invitation(new: Instance, made: Any, rotation: Rotation) -> None:
    _, token = made
    assert (await one(new.gql, RESET, {"t": token}))["__typename"] == "ResetPasswordSuccess"
    admin = await login(new.gql, "root@example.com")
    await one(new.gql, CREATE_USER, {"e": "invited-new@example.com"}, token=admin.access_token)
    fresh = token_in(await new.mail("invited-new@example.com", "You are invited"))
    await made_with_the_new_secret_only(rotation, fresh, INVITATION)


async def make_email_change(old: Instance) -> Any:
    user = await signed_up(old.gql, "moving@example.com")
    variables = {"e": "moved@example.com", "p": PASSWORD}
    await one(old.gql, REQUEST_CHANGE, variables, token=user.access_token)
    return token_in(await old.mail("moved@example.com", "Confirm your new email"))


async def use_email_change(new: Instance, token: Any, rotation: Rotation) -> None:
    result = await one(new.gql, CONFIRM_CHANGE, {"t": token})
    assert result["__typename"] == "ConfirmEmailChangeSuccess"
    user = await login(new.gql, "moved@example.com")
    variables = {"e": "moved-again@example.com", "p": PASSWORD}
    await one(new.gql, REQUEST_CHANGE, variables, token=user.access_token)
    fresh = token_in(await new.mail("moved-again@example.com", "Confirm your new email"))
    await made_with_the_new_secret_only(rotation, fresh, EMAIL_CHANGE)


class MailServerDown:
    async def send(self, message: EmailMessage) -> None:
        raise ConnectionRefusedError("the mail server is down")


async def make_queued_link(old: Instance) -> Any:
    """Queued before the rotation, sent after it: the sender derives the link when it sends."""
    old.container.mail_channel.mailer = MailServerDown()
    user = await signed_up(old.gql, "queued@example.com")
    await one(old.gql, REQUEST_VERIFICATION, {}, token=user.access_token)
    await old.container.mail.deliver_due()  # an attempt that fails: the message waits
    return user


async def use_queued_link(new: Instance, user: Any, rotation: Rotation) -> None:
    rotation.clock.advance(minutes=5)  # past the retry back-off
    token = token_in(await new.mail(user.email, "Confirm your email"))
    await made_with_the_new_secret_only(rotation, token, VERIFY_EMAIL)
    assert (await one(new.gql, VERIFY, {"t": token}))["__typename"] == "VerifyEmailSuccess"


async def make_cursor(old: Instance) -> Any:
    admin = await make_admin(old.container, old.gql)
    for n in range(2):
        old.clock.advance(seconds=1)
        await signed_up(old.gql, f"page{n}@example.com")
    page = await one(old.gql, USERS, {"after": None}, token=admin.access_token)
    return admin, page


async def use_cursor(new: Instance, made: Any, rotation: Rotation) -> None:
    _, page = made
    admin = await login(new.gql, "root@example.com")
    after = page["pageInfo"]["endCursor"]
    following = await one(new.gql, USERS, {"after": after}, token=admin.access_token)
    assert following["edges"][0]["node"]["email"] == "page0@example.com"
    fresh = following["pageInfo"]["endCursor"]
    assert (await rotation.judge(NEW)).opens_cursor("users", fresh)
    assert not (await rotation.judge(OLD)).opens_cursor("users", fresh)
    last = await one(new.gql, USERS, {"after": fresh}, token=admin.access_token)
    assert last["edges"][0]["node"]["email"] == "page1@example.com"


async def make_signing_key(old: Instance) -> Any:
    user = await signed_up(old.gql, "keys@example.com")
    kid = old.container.runtime.keyring.states(old.container.runtime.clock.now())[0].kid
    return user, kid


async def use_signing_key(new: Instance, made: Any, rotation: Rotation) -> None:
    user, kid = made
    # An access token signed before the rotation, by a key sealed under the old secret.
    assert (await one(new.gql, ME, {}, token=user.access_token))["email"] == "keys@example.com"
    assert not await (await rotation.judge(NEW)).opens_sealed("signing keys", kid)
    async with new.container.unit_of_work() as uow:
        fresh = await new.container.keys.rotate(uow, activate_in=0)
    assert await (await rotation.judge(NEW)).opens_sealed("signing keys", fresh)
    rotation.clock.advance(seconds=1)
    again = await login(new.gql, "keys@example.com")
    assert (await one(new.gql, ME, {}, token=again.access_token))["email"] == "keys@example.com"


async def make_totp_factor(old: Instance) -> Any:
    user = await verified_user(old.gql, old.container, "totp@example.com")
    enrolled = await enroll(old.gql, user, old.clock)
    halfway = await verified_user(old.gql, old.container, "halfway@example.com")
    started = await start_enrollment(old.gql, halfway.access_token)  # confirmed after
    return enrolled, halfway, started


async def use_totp_factor(new: Instance, made: Any, rotation: Rotation) -> None:
    enrolled, halfway, started = made
    # The TOTP secret sealed under the old secret opens: its codes sign in.
    await sign_in_with_code(new.gql, enrolled.secret, new.clock, "totp@example.com")
    # An enrolment started before the rotation (its token and its sealed secret) finishes.
    code = totp.code_at(started["secret"], new.clock.now())
    done = await confirm(new.gql, halfway.access_token, started["enrollmentToken"], code)
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess", done
    factor = uuid.UUID(done["factor"]["id"])
    assert await (await rotation.judge(NEW)).opens_sealed("TOTP secrets", factor)
    assert not await (await rotation.judge(OLD)).opens_sealed("TOTP secrets", factor)


async def make_recovery_codes(old: Instance) -> Any:
    user = await verified_user(old.gql, old.container, "codes@example.com")
    return await enroll(old.gql, user, old.clock)


async def use_recovery_codes(new: Instance, enrolled: Enrolled, rotation: Rotation) -> None:
    """Recovery codes are HMACs under the data key, which is sealed under the secret: they
    survive the whole rotation, phase 3 included, once `reencrypt` has re-sealed the key."""
    code, later = enrolled.recovery_codes[:2]
    step = await mfa_login(new.gql, "codes@example.com")
    assert (await verify(new.gql, step["mfaToken"], recoveryCode=code))["__typename"] == (
        "AuthPayload"
    )
    assert not await (await rotation.judge(NEW)).opens_sealed("data keys", "primary")
    async with new.container.unit_of_work() as uow:
        await new.container.secrets.reencrypt(uow)
    assert await (await rotation.judge(NEW)).opens_sealed("data keys", "primary")
    async with rotation.running(NEW) as after:  # phase 3: the old secret is gone
        step = await mfa_login(after.gql, "codes@example.com")
        assert (await verify(after.gql, step["mfaToken"], recoveryCode=later))["__typename"] == (
            "AuthPayload"
        )


async def make_mfa_token(old: Instance) -> Any:
    user = await verified_user(old.gql, old.container, "step@example.com")
    enrolled = await enroll(old.gql, user, old.clock)
    step = await mfa_login(old.gql, "step@example.com")
    return enrolled, step["mfaToken"]


async def use_mfa_token(new: Instance, made: Any, rotation: Rotation) -> None:
    enrolled, token = made
    code = totp.code_at(enrolled.secret, new.clock.now())
    assert (await verify(new.gql, token, totpCode=code))["__typename"] == "AuthPayload"
    new.clock.advance(30)
    fresh = (await mfa_login(new.gql, "step@example.com"))["mfaToken"]
    assert await (await rotation.judge(NEW)).opens_challenge(fresh, MFA)
    assert not await (await rotation.judge(OLD)).opens_challenge(fresh, MFA)


async def make_webhook_secret(old: Instance) -> Any:
    receiver = Receiver()
    await receiver.start()
    admin = await make_admin(old.container, old.gql)
    created = await create_endpoint(old.gql, admin, receiver.url, ["user.created"])
    receiver.secrets.append(created["secret"])
    return receiver, created["endpoint"]["id"]


async def use_webhook_secret(new: Instance, made: Any, rotation: Rotation) -> None:
    """A webhook secret sealed under the old secret still signs; a rotated one is sealed
    under the new secret alone."""
    receiver, endpoint_id = made
    try:
        await signed_up(new.gql, "hooked@example.com")
        await settle_webhooks(new.container)
        [delivery] = receiver.accepted()
        assert delivery.verified_by == receiver.secrets  # standardwebhooks verified it
        admin = await login(new.gql, "root@example.com")
        rotated = await one(new.gql, ROTATE_WEBHOOK, {"id": endpoint_id}, token=admin.access_token)
        async with new.container.reads() as db:
            secrets = await db.execute(
                select(WebhookSecret.id, WebhookSecret.retires_at).where(
                    WebhookSecret.endpoint_id == uuid.UUID(endpoint_id)
                )
            )
            fresh = next(secret_id for secret_id, retires in secrets.all() if retires is None)
        assert rotated["__typename"] == "RotateWebhookSecretSuccess"
        assert await (await rotation.judge(NEW)).opens_sealed("webhook secrets", fresh)
        assert not await (await rotation.judge(OLD)).opens_sealed("webhook secrets", fresh)
    finally:
        await receiver.stop()


async def made_with_the_new_secret_only(rotation: Rotation, token: str, purpose: str) -> None:
    assert await (await rotation.judge(NEW)).opens_link(token, purpose)
    assert not await (await rotation.judge(OLD)).opens_link(token, purpose)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Instance], Awaitable[Any]]
    use: Callable[[Instance, Any, Rotation], Awaitable[None]]


CASES = [
    Case("refresh tokens: rotation, grace, reuse, logout", make_refresh_tokens, use_refresh_tokens),
    Case("password reset links", make_reset_link, use_reset_link),
    Case("verification links", make_verification_link, use_verification_link),
    Case("invitation links", make_invitation, use_invitation),
    Case("email change links", make_email_change, use_email_change),
    Case("links queued in the outbox before the rotation", make_queued_link, use_queued_link),
    Case("paging cursors", make_cursor, use_cursor),
    Case("signing keys and the access tokens they signed", make_signing_key, use_signing_key),
    Case("TOTP secrets and enrolments under way", make_totp_factor, use_totp_factor),
    Case("recovery codes, through the data key", make_recovery_codes, use_recovery_codes),
    Case("mfaTokens", make_mfa_token, use_mfa_token),
    Case("webhook secrets", make_webhook_secret, use_webhook_secret),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_made_under_the_old_secret_works_under_a_fallback(
    case: Case, rotation: Rotation
) -> None:
    async with rotation.running(OLD) as old:
        made = await case.make(old)
    async with rotation.running(NEW, fallbacks=[OLD]) as new:
        await case.use(new, made, rotation)
