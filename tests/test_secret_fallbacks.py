"""A secret rotation signs nobody out: what the old secret made works under a fallback, and
everything new is made with the current secret.

Each case makes something on an instance that knows only the old secret, then restarts as
phase 2 of a rotation (the new secret current, the old one a fallback) and checks that the
thing still works there, and that what phase 2 makes in its place opens with the new secret
alone (so phase 3, which drops the old secret, leaves it working).

Every capability that derives from or seals under the server secret adds one case to CASES:
TOTP secrets, recovery codes (keyed by a data key sealed under the secret), mfaTokens and
passkey challenges, webhook secrets, OAuth codes and grants. A case is a `make` run on the
old instance, returning what it made, and a `use` run on the phase-2 instance.
"""

from __future__ import annotations

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
from identity.db.models import SigningKey
from identity.security.jwt import KEY_ENCRYPTION
from identity.services.auth import REFRESH_PURPOSE
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

    async def opens_key(self, kid: str) -> bool:
        async with self.container.reads() as db:
            sealed = await db.scalar(select(SigningKey.private_key).where(SigningKey.kid == kid))
        assert sealed is not None
        secret = self.container.runtime.secret
        return secret.sealed_with(KEY_ENCRYPTION, sealed, kid.encode()) == 0


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
    user = await signed_up(old.gql, "verify@example.com")
    await one(old.gql, REQUEST_VERIFICATION, {}, token=user.access_token)
    return user, token_in(await old.mail(user.email, "Confirm your email"))


async def use_verification_link(new: Instance, made: Any, rotation: Rotation) -> None:
    _, token = made
    assert (await one(new.gql, VERIFY, {"t": token}))["__typename"] == "VerifyEmailSuccess"
    other = await signed_up(new.gql, "verify-new@example.com")
    await one(new.gql, REQUEST_VERIFICATION, {}, token=other.access_token)
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
    old.container.mail.mailer = MailServerDown()
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
    assert not await (await rotation.judge(NEW)).opens_key(kid)
    async with new.container.unit_of_work() as uow:
        fresh = await new.container.keys.rotate(uow, activate_in=0)
    assert await (await rotation.judge(NEW)).opens_key(fresh)
    rotation.clock.advance(seconds=1)
    again = await login(new.gql, "keys@example.com")
    assert (await one(new.gql, ME, {}, token=again.access_token))["email"] == "keys@example.com"


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
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_made_under_the_old_secret_works_under_a_fallback(
    case: Case, rotation: Rotation
) -> None:
    async with rotation.running(OLD) as old:
        made = await case.make(old)
    async with rotation.running(NEW, fallbacks=[OLD]) as new:
        await case.use(new, made, rotation)
