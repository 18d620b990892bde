"""Passkeys in a real browser: Debian's Chromium with its virtual authenticator (the DevTools
`WebAuthn` domain: CTAP2, internal transport, resident keys, user verification) goes through
the example app against `identity serve`: add a passkey, sign out, sign in with the passkey
alone, sign in with password and passkey, remove it; and a passkey that a page of another
site made with identity's options is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from tests.passkey_helpers import FINISH_REGISTRATION, START_REGISTRATION
from tests.test_spa_browser import (
    LOGIN,
    PASSWORD,
    Stack,
    Watch,
    api_call,
    browser,
    new_page,
    sign_in,
    stack,
    verified_account,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, CDPSession, Page

__all__ = ["browser", "stack"]  # the fixtures, shared with the app's own browser tests

pytestmark = pytest.mark.slow


async def virtual_authenticator(context: BrowserContext, page: Page) -> tuple[CDPSession, str]:
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


async def tokens_from(watch: Watch, operation: str) -> list[dict[str, Any]]:
    """The access-token claims of every answer to `operation` that signed in."""
    found = []
    for sent, body in await watch.exchanges():
        if operation not in sent or '"accessToken"' not in body:
            continue
        for answer in json.loads(body)["data"].values():
            if answer.get("accessToken"):
                found.append(jwt.decode(answer["accessToken"], options={"verify_signature": False}))
    return found


async def test_add_a_passkey_sign_in_with_it_alone_and_as_the_second_step(
    stack: Stack, browser: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    email = "passkey.user@example.com"
    await verified_account(stack, email)
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "passkeys")
    cdp, authenticator = await virtual_authenticator(context, page)
    signed_in = page.locator('[data-view="signed-in"]')
    signed_out = page.locator('[data-view="signed-out"]')

    await page.goto(stack.spa)
    await expect(signed_out).to_be_visible()
    await sign_in(page, email, PASSWORD)
    await expect(signed_in).to_be_visible()

    # Add a passkey (a recent sign-in: no password needed); it turns two-step sign-in on.
    await page.locator("#passkey-label").fill("Laptop")
    await page.get_by_role("button", name="Add a passkey").click()
    await expect(page.locator("#recovery-codes")).to_be_visible()
    await expect(page.locator("#recovery-code-list li")).to_have_count(10)
    await page.get_by_role("button", name="I have saved them").click()
    await expect(page.locator("#factors li")).to_have_count(1)
    await expect(page.locator("#factors li")).to_contain_text("Laptop (passkey")
    held = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))[
        "credentials"
    ]
    assert len(held) == 1
    assert held[0]["isResidentCredential"] is True
    assert held[0]["rpId"] == "localhost"
    await page.screenshot(path=str(artifacts_dir / "passkeys-1-added.png"), full_page=True)

    # Sign out: the email field's autofill offers the passkey (conditional mediation), which
    # the virtual authenticator takes at once, as a person picking it would: signed in with
    # the passkey alone, no email, no password.
    async with page.expect_response(
        lambda r: "FinishPasskeySignIn" in (r.request.post_data or "")
    ) as finished:
        await page.locator("#sign-out").click()
    assert (await finished.value).ok
    await expect(signed_in).to_be_visible()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    (alone,) = await tokens_from(watch, "FinishPasskeySignIn")
    assert (alone["aal"], alone["amr"]) == (2, ["hwk", "user"])

    # From here on a browser without passkey autofill: the button, and the second step.
    await context.add_init_script(
        "PublicKeyCredential.isConditionalMediationAvailable = async () => false;"
    )
    await page.reload()
    await expect(signed_in).to_be_visible()
    await page.locator("#sign-out").click()
    await expect(signed_out).to_be_visible()
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(signed_in).to_be_visible()
    assert len(await tokens_from(watch, "FinishPasskeySignIn")) == 2

    # The password now asks for a second step, which the passkey gives.
    await page.locator("#sign-out").click()
    await expect(signed_out).to_be_visible()
    await sign_in(page, email, PASSWORD)
    await expect(page.locator("#second-step")).to_be_visible()
    await page.screenshot(path=str(artifacts_dir / "passkeys-2-second-step.png"), full_page=True)
    await page.get_by_role("button", name="Use a passkey").click()
    await expect(signed_in).to_be_visible()
    (second,) = await tokens_from(watch, "VerifyMfa")
    assert (second["aal"], second["amr"]) == (2, ["pwd", "hwk", "user", "mfa"])

    # Remove it: two-step sign-in is off again, and the passkey no longer signs in.
    await page.locator("#factors li").get_by_role("button", name="Remove").click()
    await expect(page.locator("#factors li")).to_have_count(0)
    await page.locator("#sign-out").click()
    await expect(signed_out).to_be_visible()
    await page.get_by_role("button", name="Sign in with a passkey").click()
    await expect(page.locator("#sign-in .form-message")).to_contain_text("could not be used")
    await expect(signed_out).to_be_visible()

    assert watch.problems == []
    await context.close()


# What another site's page makes with identity's options: the browser binds the credential to
# that page's relying-party id, and identity refuses it.
CREATE_ELSEWHERE = """async (options) => {
  options.rp.id = location.hostname;
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}"""


async def test_a_passkey_made_for_another_relying_party_is_refused(
    stack: Stack, browser: Browser
) -> None:
    email = "elsewhere@example.com"
    await verified_account(stack, email)
    login = api_call(stack, LOGIN, {"i": {"email": email, "password": PASSWORD}})
    token = login["data"]["login"]["accessToken"]
    started = api_call(stack, START_REGISTRATION, {"password": None}, token)
    started = started["data"]["startPasskeyRegistration"]
    assert started["__typename"] == "StartPasskeyRegistrationSuccess"

    # evil.localhost: another site (Chromium resolves *.localhost to loopback and treats it
    # as a secure context), serving a page that runs identity's creation options.
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "elsewhere")
    cdp, authenticator = await virtual_authenticator(context, page)
    evil = stack.spa.replace("//localhost:", "//evil.localhost:")
    await page.goto(evil)
    credential = await page.evaluate(CREATE_ELSEWHERE, started["options"])
    held = (await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator}))[
        "credentials"
    ]
    assert [c["rpId"] for c in held] == ["evil.localhost"]

    variables = {
        "input": {"registrationToken": started["registrationToken"], "credential": credential}
    }
    finished = api_call(stack, FINISH_REGISTRATION, variables, token)["data"]
    refused = finished["finishPasskeyRegistration"]
    assert refused["__typename"] == "ValidationError", refused
    assert refused["fields"] == [{"field": "credential", "code": "invalid_credential"}]
    factors = api_call(stack, "{ me { factors { id } } }", {}, token)["data"]["me"]["factors"]
    assert factors == []
    await context.close()
