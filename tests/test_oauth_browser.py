"""The certified relying-party library `openid-client` (examples/openid-rp) signs in with
identity in Debian's Chromium: discovery, authorization with PKCE through the hosted sign-in
(with and without a second factor) and consent, code exchange, ID token validation,
userinfo, refresh, revocation and RP-initiated logout; and a passkey in Chromium's virtual
authenticator signing in on the hosted page alone, or as the second factor after the
password. Screenshots of the hosted pages go to the test artifacts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.mfa_helpers import CONFIRM, START
from tests.nodetools import EXAMPLES, npm_ci, require_browser
from tests.passkey_helpers import FINISH_REGISTRATION, START_REGISTRATION
from tests.test_passkeys_browser import virtual_authenticator
from tests.test_server import free_port, server_env
from tests.test_spa_browser import (
    LOGIN,
    PASSWORD,
    Stack,
    api_call,
    browser,  # noqa: F401  (the fixture these tests use)
    running_stack,
    verified_account,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.slow

RP = EXAMPLES / "openid-rp"


@dataclass
class RelyingParty:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Federation:
    stack: Stack
    rp: RelyingParty


def _start_rp(folder: Path, issuer: str, client_id: str, secret: str, port: int) -> RelyingParty:
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(npm_ci(RP) / "node_modules", target_is_directory=True)
    script = folder / "rp.mjs"
    script.write_text((RP / "rp.mjs").read_text())
    log = folder / f"rp-{port}.log"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "ISSUER": issuer,
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": secret,
        "PORT": str(port),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            ["node", str(script)], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the relying party exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return RelyingParty(url, process, log)
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the relying party did not start: {log.read_text()}")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    require_browser("openid-client against identity in the browser")
    folder = tmp_path_factory.mktemp("openid-rp")
    rp_port = free_port()
    with running_stack(folder) as stack:
        env = server_env(f"sqlite+aiosqlite:///{folder / 'identity.db'}")
        created = subprocess.run(
            [sys.executable, "-m", "identity", "clients", "create", "Example RP",
             "--redirect-uri", f"http://localhost:{rp_port}/callback",
             "--post-logout-redirect-uri", f"http://localhost:{rp_port}/signed-out"],
            env=env, cwd=folder, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        lines = dict(line.split(": ", 1) for line in created.stdout.splitlines())
        rp = _start_rp(folder, stack.api, lines["client_id"], lines["client_secret"], rp_port)
        try:
            yield Federation(stack, rp)
        finally:
            rp.process.terminate()
            rp.process.wait(timeout=10)


async def _password(page: Page, email: str) -> None:
    await page.locator("[name=email]").fill(email)
    await page.locator("[name=password]").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def _allowed(page: Page) -> dict[str, Any]:
    """Allow on the consent page; what the app received."""
    await page.get_by_role("button", name="Allow").click()
    await page.locator("#result").wait_for()
    return await _result(page)


async def _result(page: Page) -> dict[str, Any]:
    text = await page.locator("#result").text_content()
    assert text is not None
    result: dict[str, Any] = json.loads(text)
    return result


async def test_openid_client_signs_in_consents_refreshes_revokes_and_logs_out(
    federation: Federation,
    browser: Browser,  # noqa: F811
    artifacts_dir: Path,
) -> None:
    email = "rp.user@example.com"
    await verified_account(federation.stack, email)
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{federation.rp.url}/login")
        assert "/oauth2/authorize" in page.url
        await page.screenshot(path=str(artifacts_dir / "oidc-1-sign-in.png"), full_page=True)
        await _password(page, email)
        await page.get_by_text("would like to").wait_for()
        await page.screenshot(path=str(artifacts_dir / "oidc-2-consent.png"), full_page=True)
        result = await _allowed(page)
        assert result["claims"]["acr"] == "aal1"
        assert result["claims"]["iss"] == federation.stack.api
        assert result["signatureAlgorithm"] == "RS256"
        assert result["userinfo"]["email"] == email
        assert result["refreshed"] is True
        assert result["rotated"] is True
        assert result["afterRevocation"] == "invalid_grant"

        # Signed in and consented: the next sign-in comes straight back.
        await page.goto(f"{federation.rp.url}/login")
        await page.locator("#result").wait_for()

        await page.goto(f"{federation.rp.url}/logout")
        await page.locator("#signed-out").wait_for()
        assert "(bye)" in (await page.locator("#signed-out").text_content() or "")
        await page.goto(f"{federation.rp.url}/login")
        await page.locator("[name=password]").wait_for()  # signed out of identity
    finally:
        await context.close()


async def test_openid_client_with_a_second_factor(
    federation: Federation,
    browser: Browser,  # noqa: F811
    artifacts_dir: Path,
) -> None:
    import pyotp

    email = "rp.mfa@example.com"
    stack = federation.stack
    await verified_account(stack, email)
    signed = api_call(stack, LOGIN, {"i": {"email": email, "password": PASSWORD}})
    token = signed["data"]["login"]["accessToken"]
    started = api_call(stack, START, {"password": PASSWORD}, token)["data"]["startTotpEnrollment"]
    app = pyotp.TOTP(started["secret"])
    confirm = {"input": {"enrollmentToken": started["enrollmentToken"], "code": app.now()}}
    done = api_call(stack, CONFIRM, confirm, token)["data"]["confirmTotpEnrollment"]
    assert done["__typename"] == "ConfirmTotpEnrollmentSuccess", done

    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(f"{federation.rp.url}/login?acr_values=aal2")
        await _password(page, email)
        await page.locator("[name=totp_code]").wait_for()
        await page.screenshot(path=str(artifacts_dir / "oidc-3-second-factor.png"), full_page=True)
        # The enrolment used this time step: the next one (one step of skew is allowed).
        await page.locator("[name=totp_code]").fill(app.at(time.time() + 30))
        await page.get_by_role("button", name="Continue").click()
        result = await _allowed(page)
        assert result["claims"]["acr"] == "aal2"
        assert result["claims"]["amr"] == ["pwd", "otp", "mfa"]
    finally:
        await context.close()


# identity's creation options, run by a page of identity's own origin (as an app would).
CREATE = """async (options) => {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}"""


def script_errors(page: Page) -> list[str]:
    """The page's uncaught script errors, as they come (the browser's own favicon 404s are
    not among them)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@asynccontextmanager
async def _with_passkey(
    chromium: Browser, stack: Stack, email: str
) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page whose virtual authenticator holds the passkey of a new account, and that
    account's recovery codes; no uncaught script error until the end."""
    context = await chromium.new_context()
    page = await context.new_page()
    errors = script_errors(page)
    try:
        await virtual_authenticator(context, page)
        yield page, await _passkey_account(stack, page, email)
        assert errors == []
    finally:
        await context.close()


async def _passkey_account(stack: Stack, page: Page, email: str) -> list[str]:
    """A verified account whose passkey is in the page's virtual authenticator; its
    recovery codes."""
    await verified_account(stack, email)
    signed = api_call(stack, LOGIN, {"i": {"email": email, "password": PASSWORD}})
    token = signed["data"]["login"]["accessToken"]
    started = api_call(stack, START_REGISTRATION, {"password": None}, token)
    started = started["data"]["startPasskeyRegistration"]
    await page.goto(f"{stack.api}/health")
    credential = await page.evaluate(CREATE, started["options"])
    variables = {
        "input": {"registrationToken": started["registrationToken"], "credential": credential}
    }
    done = api_call(stack, FINISH_REGISTRATION, variables, token)["data"]
    added = done["finishPasskeyRegistration"]
    assert added["__typename"] == "FinishPasskeyRegistrationSuccess", added
    codes: list[str] = added["recoveryCodes"]
    return codes


async def test_openid_client_with_a_passkey_on_the_hosted_sign_in(
    federation: Federation,
    browser: Browser,  # noqa: F811
    artifacts_dir: Path,
) -> None:
    from playwright.async_api import expect

    async with _with_passkey(browser, federation.stack, "rp.passkey@example.com") as (page, _):
        # The app asks for aal 2; a passkey with user verification is that, by itself.
        await page.goto(f"{federation.rp.url}/login?acr_values=aal2")
        button = page.get_by_role("button", name="Sign in with a passkey")
        await expect(button).to_be_visible()  # shown by /pages/sign-in.js
        await page.screenshot(path=str(artifacts_dir / "oidc-4-passkey.png"), full_page=True)
        await button.click()  # no email: the browser offers the passkey it has
        await page.get_by_text("would like to").wait_for()
        result = await _allowed(page)
        assert result["claims"]["acr"] == "aal2"
        assert result["claims"]["amr"] == ["hwk", "user"]
        assert result["userinfo"]["email"] == "rp.passkey@example.com"


async def test_openid_client_with_a_passkey_as_the_second_factor(
    federation: Federation,
    browser: Browser,  # noqa: F811
    artifacts_dir: Path,
) -> None:
    from playwright.async_api import expect

    email = "rp.passkey.mfa@example.com"
    async with _with_passkey(browser, federation.stack, email) as (page, codes):
        await page.goto(f"{federation.rp.url}/login")
        await _password(page, email)
        button = page.get_by_role("button", name="Use a passkey")
        await expect(button).to_be_visible()
        await page.screenshot(
            path=str(artifacts_dir / "oidc-5-passkey-second-factor.png"), full_page=True
        )
        await button.click()
        result = await _allowed(page)
        assert result["claims"]["acr"] == "aal2"
        assert result["claims"]["amr"] == ["pwd", "hwk", "user", "mfa"]

    # Without JavaScript the passkey buttons stay hidden; password and code still work.
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    try:
        await page.goto(f"{federation.rp.url}/login")
        await expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
        await _password(page, email)
        await page.locator("[name=recovery_code]").wait_for()
        await expect(page.get_by_role("button", name="Use a passkey")).to_be_hidden()
        await page.locator("[name=recovery_code]").fill(codes[0])
        await page.get_by_role("button", name="Continue").click()
        await page.locator("#result").wait_for()  # consent is remembered for the user
        result = await _result(page)
        assert result["claims"]["amr"] == ["pwd", "otp", "mfa"]
    finally:
        await context.close()
