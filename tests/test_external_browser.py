"""Sign-in with another provider in Debian's Chromium, through the example app (examples/spa),
with the certified OpenID Provider `oidc-provider` (examples/oidc-upstream) upstream.

Three processes on loopback, as in production three origins: identity (`identity serve`, cookie
mode), the app's static files, and the provider. One Chromium and one of each server serve
every test here; each test has a browser context (cookies, storage) of its own, and accounts
of its own at the provider. Screenshots go to the test artifacts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import jwt
import pytest

from tests.nodetools import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.test_server import free_port
from tests.test_spa_browser import (
    PASSWORD,
    Stack,
    link_in_mail,
    new_page,
    running_stack,
    sign_in,
    verified_account,
)
from tests.test_spa_browser import Watch as SpaWatch
from tests.upstream import Upstream

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Response, Route

pytestmark = pytest.mark.slow


class Watch(SpaWatch):
    """The app's watch, except that an answer the page navigated away from (the start,
    right before the browser goes to the provider) may have no body left to read."""

    @staticmethod
    async def _read(response: Response) -> tuple[str, str]:
        try:
            return await SpaWatch._read(response)
        except Exception:
            return response.request.post_data or "", ""


@dataclass
class Federation:
    stack: Stack
    upstream: Upstream
    database: Path


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    require_browser("Sign-in with other providers in the browser")
    folder = tmp_path_factory.mktemp("federation")
    api_port, spa_port = free_port(), free_port()
    callback = f"http://localhost:{api_port}/login/external/upstream/callback"
    upstream = Upstream(folder, [callback])
    try:
        with running_stack(
            folder,
            api_port=api_port,
            spa_port=spa_port,
            IDENTITY_OIDC_PROVIDERS=json.dumps([upstream.settings()]),
            IDENTITY_OIDC_RETURN_URLS=f"http://localhost:{spa_port}/",
        ) as stack:
            yield Federation(stack, upstream, folder / "identity.db")
    finally:
        upstream.stop()


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    require_browser("Sign-in with other providers in the browser")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


async def with_provider(page: Page, login: str | None) -> None:
    """Click "Sign in with Upstream" (or "Link Upstream") first; sign in at the provider."""
    if login is not None:
        await page.wait_for_url("**/interaction/**")
        await page.locator("[name=login]").fill(login)
        await page.get_by_role("button", name="Sign in").click()


async def on_the_way_back(
    context: BrowserContext, federation: Federation, change: Callable[[str], Awaitable[str]]
) -> None:
    """Let `change` decide where the browser goes instead of identity's callback URL (with the
    provider's code and state) that the provider sends it to.

    Playwright routes only the first request of a redirect chain, so the provider's answer to
    the sign-in form (a redirect to its resume URL, which redirects to identity) is followed
    here with the context's own request client (same cookies) up to identity's URL.
    """
    callback = f"{federation.stack.api}/login/external/"

    async def handle(route: Route) -> None:
        response = await route.fetch(max_redirects=0)
        location = urljoin(route.request.url, response.headers.get("location", ""))
        if response.status in (302, 303) and "/auth/" in location:
            resumed = await context.request.get(location, max_redirects=0)
            target = resumed.headers.get("location", "")
            if target.startswith(callback):
                await route.fulfill(status=303, headers={"Location": await change(target)})
                return
            location = target or location
        await route.fulfill(response=response)

    await context.route(f"{federation.upstream.issuer}/interaction/**", handle)


def tampered(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    state = query["state"]
    query["state"] = state[:-2] + ("A" if state[-2] != "A" else "B") + state[-1]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def users_named(federation: Federation, email: str) -> int:
    def count() -> int:
        with sqlite3.connect(federation.database) as db:
            row = db.execute("SELECT count(*) FROM users WHERE email = ?", (email,)).fetchone()
            return int(row[0])

    return await asyncio.to_thread(count)


def access_claims(bodies: list[tuple[str, str]], operation: str) -> dict[str, Any]:
    for sent, body in reversed(bodies):
        if operation in sent and '"accessToken":"' in body:
            token = json.loads(body)["data"]
            token = next(iter(token.values()))["accessToken"]
            decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
            return decoded
    raise AssertionError(f"no {operation} answered with an access token")


async def test_a_new_user_signs_in_with_the_provider(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    stack = federation.stack
    federation.upstream.add("newbie", "newbie@example.com", given_name="Nina", family_name="New")
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "new-user")
    await page.goto(stack.spa)
    await expect(page.locator("#providers")).to_be_visible()
    await page.screenshot(path=str(artifacts_dir / "external-1-buttons.png"), full_page=True)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "newbie")
    await expect(page.locator('[data-view="signed-in"]')).to_be_visible()
    await expect(page.locator('[data-profile="email"]')).to_have_text("newbie@example.com")
    await expect(page.locator('[data-profile="name"]')).to_have_text("Nina New")
    await expect(page.locator("#linked-list li")).to_contain_text("Upstream as newbie@example.com")
    assert "#" not in page.url  # the code left the address bar
    assert await page.evaluate("sessionStorage.length + localStorage.length") == 0
    token = access_claims(await watch.exchanges(), "FinishProviderSignIn")
    assert (token["amr"], token["aal"]) == (["fed"], 1)
    await page.screenshot(path=str(artifacts_dir / "external-2-signed-in.png"), full_page=True)
    # The only way this user signs in: it stays.
    await page.locator("#linked-list li").get_by_role("button", name="Unlink").click()
    await expect(page.locator("#linked-message")).to_contain_text("only way to sign in")
    await expect(page.locator("#linked-list li")).to_have_count(1)
    await context.close()
    assert not watch.problems, watch.problems


async def test_conflict_then_the_owner_signs_in_and_links(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    stack, email = federation.stack, "linda@example.com"
    await verified_account(stack, email)
    federation.upstream.add("linda", email)
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "conflict")
    await page.goto(stack.spa)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "linda")
    await expect(page.locator("#provider-message")).to_contain_text("already exists")
    await page.screenshot(path=str(artifacts_dir / "external-3-conflict.png"), full_page=True)

    # The owner signs in with the password and links; the provider remembers Linda.
    await sign_in(page, email, PASSWORD)
    await expect(page.locator('[data-view="signed-in"]')).to_be_visible()
    await page.get_by_role("button", name="Link Upstream").click()
    await expect(page.locator("#linked-message")).to_have_text("Upstream is linked.")
    await expect(page.locator("#linked-list li")).to_have_count(1)
    await page.screenshot(path=str(artifacts_dir / "external-4-linked.png"), full_page=True)
    for _ in range(100):  # the notice, with its undo link, leaves through the outbox
        try:
            undo = link_in_mail(stack, email, "sign-in method was added")
            break
        except AssertionError:
            await asyncio.sleep(0.1)
    else:
        pytest.fail("no notice of the link was mailed")
    assert undo.startswith(f"{stack.api}/revert-change#token=")

    # Now the provider signs Linda in.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    # She has a password too, so the link may go.
    await page.locator("#linked-list li").get_by_role("button", name="Unlink").click()
    await expect(page.locator("#linked-message")).to_have_text("External account unlinked.")
    await expect(page.locator("#linked-list li")).to_have_count(0)
    await context.close()
    assert not watch.problems, watch.problems


async def test_a_user_with_mfa_passes_the_second_factor_after_the_provider(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    import pyotp
    from playwright.async_api import expect

    stack = federation.stack
    federation.upstream.add("mfa", "mfa.user@example.com")
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "mfa")
    await page.goto(stack.spa)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "mfa")
    await expect(page.locator('[data-view="signed-in"]')).to_be_visible()
    # No password to give: the sign-in through the provider was recent enough to add an app.
    await page.get_by_role("button", name="Add an authenticator app").click()
    await expect(page.locator("#enrollment")).to_be_visible()
    await expect(page.locator("#totp-secret")).not_to_be_empty()
    secret = (await page.locator("#totp-secret").text_content() or "").strip()
    app = pyotp.TOTP(secret)
    enrol = page.locator("#confirm-enrollment")
    await enrol.locator("[name=code]").fill(app.now())
    await enrol.get_by_role("button", name="Turn it on").click()
    await expect(page.locator("#recovery-code-list li")).to_have_count(10)
    await page.get_by_role("button", name="I have saved them").click()

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.get_by_role("button", name="Sign in with Upstream").click()
    second = page.locator("#second-step")
    await expect(second).to_be_visible()
    await page.screenshot(path=str(artifacts_dir / "external-5-second-step.png"), full_page=True)
    await second.locator("[name=code]").fill(app.at(time.time() + 30))
    await second.get_by_role("button", name="Verify").click()
    await expect(page.locator('[data-profile="email"]')).to_have_text("mfa.user@example.com")
    token = access_claims(await watch.exchanges(), "VerifyMfa")
    assert (token["amr"], token["aal"]) == (["fed", "otp", "mfa"], 2)
    await context.close()
    assert not watch.problems, watch.problems


async def test_an_unverified_upstream_address_is_refused(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    stack = federation.stack
    federation.upstream.add("unverified", "unverified@example.com", verified=False)
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "unverified")
    await page.goto(stack.spa)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "unverified")
    await expect(page.locator("#provider-message")).to_contain_text("did not vouch")
    await expect(page.locator('[data-view="signed-out"]')).to_be_visible()
    await page.screenshot(path=str(artifacts_dir / "external-6-unverified.png"), full_page=True)
    assert await users_named(federation, "unverified@example.com") == 0
    await context.close()
    assert not watch.problems, watch.problems


async def test_a_tampered_state_is_refused(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    stack = federation.stack
    federation.upstream.add("tamper", "tamper@example.com")
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "tampered")

    async def tamper(url: str) -> str:
        return tampered(url)

    await on_the_way_back(context, federation, tamper)
    await page.goto(stack.spa)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "tamper")
    await expect(page.locator("#provider-message")).to_contain_text("not valid any more")
    assert "#" not in page.url
    await page.screenshot(path=str(artifacts_dir / "external-7-tampered.png"), full_page=True)
    assert await users_named(federation, "tamper@example.com") == 0
    bodies = await watch.exchanges()
    assert not any("FinishProviderSignIn" in sent for sent, _ in bodies)  # no code to finish
    await context.close()
    assert not watch.problems, watch.problems


async def test_a_code_replayed_in_another_browser_without_the_verifier_is_refused(
    federation: Federation, chromium: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    stack = federation.stack
    federation.upstream.add("replay", "replay@example.com")
    watch = Watch(stack.api)
    context, page = await new_page(chromium, watch, "victim")
    other_context, other = await new_page(chromium, watch, "attacker")
    replayed: list[str] = []

    async def replay_first(url: str) -> str:
        # identity's answer to the victim's browser: returnTo#code=…. Before that browser
        # gets it, another one opens the same link (a code seen in a log, a shoulder-surfed
        # address bar); then the victim's browser goes on.
        answer = await context.request.get(url, max_redirects=0)
        location = answer.headers["location"]
        assert "#code=" in location
        replayed.append(location)
        await other.goto(location)
        await expect(other.locator("#provider-message")).to_contain_text("invalid or has expired")
        await other.screenshot(path=str(artifacts_dir / "external-8-replayed.png"), full_page=True)
        return location

    await on_the_way_back(context, federation, replay_first)
    await page.goto(stack.spa)
    await page.get_by_role("button", name="Sign in with Upstream").click()
    await with_provider(page, "replay")
    await expect(page.locator('[data-profile="email"]')).to_have_text("replay@example.com")
    assert replayed
    await expect(other.locator('[data-view="signed-out"]')).to_be_visible()
    assert await other_context.cookies(stack.api) == [] or all(
        c["name"] != "identity-refresh" for c in await other_context.cookies(stack.api)
    )
    await other_context.close()
    await context.close()
    assert not watch.problems, watch.problems
