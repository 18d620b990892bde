"""The example single-page app (examples/spa) in a real browser, against a real server.

identity runs as `identity serve` in cookie mode (IDENTITY_REFRESH_COOKIE=true) with CORS for
the app's origin; the app's files are served as they are by a small static server on another
port. Both are on `localhost`: two origins of one site, so CORS applies and the SameSite=Strict
refresh cookie travels, as with app.example.com and id.example.com in production. Headless
Debian Chromium (never a browser Playwright downloads) goes through the whole flow; any
JavaScript error in the page fails the test. Screenshots go to the test artifacts.

Needs Chromium and Playwright, not Node.js (see tests/nodetools.py).
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
from graphql import (
    FieldNode,
    GraphQLUnionType,
    OperationDefinitionNode,
    build_schema,
    get_nullable_type,
    parse,
    validate,
)

from tests.nodetools import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, REPO, require_chromium
from tests.test_server import Server, free_port, server_env

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Response

SPA = EXAMPLES / "spa"
PASSWORD = "spa example passphrase"
NEW_PASSWORD = "a changed spa passphrase"
COOKIE = "identity-refresh"  # plain-HTTP development name (https: __Host-identity-refresh)
ACCESS_TOKEN_TTL = 31  # the minimum is 30; the app refreshes at half of it
SHIPPED_CSP = "connect-src http://localhost:*"

LOGIN = """mutation($i: LoginInput!) {
  login(input: $i) { __typename ... on AuthPayload { accessToken refreshToken } }
}"""
REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { __typename } }"""
ME = "{ me { email } }"

_DOCUMENT = re.compile(r"/\* GraphQL \*/\s*`([^`]*)`")


# Static checks: no browser needed ---------------------------------------------------------


def spa_documents() -> list[str]:
    return [m.group(1) for f in sorted(SPA.glob("*.js")) for m in _DOCUMENT.finditer(f.read_text())]


def test_the_apps_graphql_is_valid_and_every_union_member_is_handled() -> None:
    schema = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
    documents = spa_documents()
    # identity.js: login, verifyMfa, refresh, logout, start and finish with a provider, start
    # and finish with a passkey; app.js: me, register, password, two for sessions, three for
    # factors, two for adding a passkey, providers, link, unlink
    assert len(documents) == 21
    source = "\n".join(f.read_text() for f in SPA.glob("*.js"))
    handled = set(re.findall(r'case "(\w+)":', source))
    unhandled = []
    for text in documents:
        document = parse(text)
        errors = validate(schema, document)
        assert not errors, f"{text}\n" + "\n".join(str(e) for e in errors)
        for operation in document.definitions:
            assert isinstance(operation, OperationDefinitionNode)
            if operation.operation.value != "mutation":
                continue
            for selection in operation.selection_set.selections:
                assert isinstance(selection, FieldNode)
                assert schema.mutation_type is not None
                name = selection.name.value
                result = get_nullable_type(schema.mutation_type.fields[name].type)
                assert isinstance(result, GraphQLUnionType)
                unhandled += [f"{name}: {t.name}" for t in result.types if t.name not in handled]
    assert not unhandled, f"result union members without a `case` in examples/spa: {unhandled}"


# The running pieces ------------------------------------------------------------------------


class SpaFiles(SimpleHTTPRequestHandler):
    """examples/spa as it is, except config.js, which points at the test's identity."""

    api_url: str
    extra_connect_src: str = ""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/config.js":
            self._send(f'export const API_URL = "{self.api_url}/graphql";\n', "text/javascript")
        elif path in ("/", "/index.html") and self.extra_connect_src:
            html = (SPA / "index.html").read_text()
            assert SHIPPED_CSP in html
            html = html.replace(SHIPPED_CSP, f"{SHIPPED_CSP} {self.extra_connect_src}")
            self._send(html, "text/html")
        else:
            super().do_GET()

    def _send(self, text: str, content_type: str) -> None:
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Stack:
    api: str  # identity's origin
    spa: str  # the app's origin
    server: Server
    mail: Path


@contextmanager
def running_stack(
    tmp_path: Path,
    api_host: str = "localhost",
    *,
    api_port: int | None = None,
    spa_port: int | None = None,
    **env: str,
) -> Iterator[Stack]:
    """identity on http://{api_host}:A, the app on http://localhost:B; `env` for identity."""
    api_port, spa_port = api_port or free_port(), spa_port or free_port()
    api, spa = f"http://{api_host}:{api_port}", f"http://localhost:{spa_port}"
    extra = "" if api_host == "localhost" else api  # the shipped CSP allows localhost only
    handler = type("Handler", (SpaFiles,), {"api_url": api, "extra_connect_src": extra})
    httpd = ThreadingHTTPServer(("127.0.0.1", spa_port), functools.partial(handler, directory=SPA))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    mail = tmp_path / "mail"
    env = server_env(
        f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}",
        IDENTITY_PUBLIC_URL=api,
        IDENTITY_REFRESH_COOKIE="true",
        IDENTITY_CORS_ORIGINS=spa,
        IDENTITY_ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
        IDENTITY_MAIL_URL=f"file://{mail}",
        **env,
    )
    try:
        server = Server(env, tmp_path, port=api_port)
        try:
            yield Stack(api, spa, server, mail)
        finally:
            server.stop()
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_chromium("SPA browser tests")
    with running_stack(tmp_path) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium("SPA browser tests")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Watch:
    """What the pages did: JavaScript errors, and the bodies of identity's answers."""

    api: str
    problems: list[str] = field(default_factory=list)
    _reads: list[asyncio.Task[tuple[str, str]]] = field(default_factory=list)

    def page(self, page: Page, name: str) -> Page:
        page.on("pageerror", lambda error: self.problems.append(f"{name}: page error: {error}"))
        page.on(
            "console",
            lambda m: (
                self.problems.append(f"{name}: console: {m.text}") if m.type == "error" else None
            ),
        )
        page.on("response", self._keep)
        return page

    def _keep(self, response: Response) -> None:
        # Read each body at once: after a reload Chromium may no longer have it.
        if response.url == f"{self.api}/graphql" and response.request.method == "POST":
            self._reads.append(asyncio.ensure_future(self._read(response)))

    @staticmethod
    async def _read(response: Response) -> tuple[str, str]:
        from playwright.async_api import Error

        sent = response.request.post_data or ""
        try:
            return sent, await response.text()
        except Error as exc:
            # An answer that arrived as its page reloaded or closed (the passkey autofill's
            # start, a restore) is gone with the page: there is no body left to check.
            if "navigated away" not in str(exc) and "has been closed" not in str(exc):
                raise
            return sent, ""

    async def exchanges(self) -> list[tuple[str, str]]:
        """(request body, response body) of every GraphQL POST so far."""
        return list(await asyncio.gather(*self._reads))


def api_call(stack: Stack, query: str, variables: dict[str, Any], token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{stack.api}/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def new_page(browser: Browser, watch: Watch, name: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        viewport={"width": 1100, "height": 1000},
        user_agent=f"Mozilla/5.0 (spa test; {name}) Chromium",
    )
    return context, watch.page(await context.new_page(), name)


async def sign_in(page: Page, email: str, password: str) -> None:
    form = page.locator("#sign-in")
    await form.locator("[name=email]").fill(email)
    await form.locator("[name=password]").fill(password)
    await form.get_by_role("button", name="Sign in", exact=True).click()


# The whole flow --------------------------------------------------------------------------


@pytest.mark.slow
async def test_register_sign_in_stay_signed_in_manage_sessions_and_sign_out(
    stack: Stack, browser: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    email = "spa.user@example.com"
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "laptop")
    signed_in = page.locator('[data-view="signed-in"]')
    signed_out = page.locator('[data-view="signed-out"]')
    status = page.locator("#token-status")

    await page.goto(stack.spa)
    await expect(signed_out).to_be_visible()  # no cookie yet: the start-up refresh says so

    # Register: first with mistakes, each shown next to its field; then for real.
    register = page.locator("#register")
    await register.locator("[name=email]").fill("not an address")
    await register.locator("[name=password]").fill("short")
    await register.get_by_role("button", name="Create account").click()
    await expect(register.locator('.field-error[data-field="email"]')).not_to_be_empty()
    await expect(register.locator('.field-error[data-field="password"]')).not_to_be_empty()
    await expect(register.locator('[name="password"]')).to_have_attribute("aria-invalid", "true")
    await page.screenshot(path=str(artifacts_dir / "spa-1-register-errors.png"), full_page=True)
    await register.locator("[name=email]").fill(email)
    await register.locator("[name=password]").fill(PASSWORD)
    await register.locator("[name=firstName]").fill("Sally")
    await register.locator("[name=lastName]").fill("Spa")
    await register.get_by_role("button", name="Create account").click()
    await expect(register.locator(".form-message")).to_contain_text(f"Account created for {email}")
    for _ in range(100):  # the mail goes out from the outbox, a moment later
        if list(stack.mail.glob("*.eml")):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("no verification mail was sent")

    # Sign in: a wrong password first (InvalidCredentials), then the right one.
    await sign_in(page, email, "not the passphrase")
    await expect(page.locator("#sign-in .form-message")).to_contain_text("incorrect")
    await sign_in(page, email, PASSWORD)
    await expect(signed_in).to_be_visible()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    await expect(page.locator('[data-profile="name"]')).to_have_text("Sally Spa")
    await expect(page.locator('[data-profile="roles"]')).to_have_text("user")
    await expect(status).to_have_attribute("data-last-refresh-reason", "sign-in")
    await page.screenshot(path=str(artifacts_dir / "spa-2-profile.png"), full_page=True)

    # The refresh token is an HttpOnly, SameSite=Strict cookie of identity's host. Cookies do
    # not care about ports, so without HttpOnly the app's page (also on localhost) could read
    # it: it cannot, no response body carried it, and the app stored nothing.
    cookies = {c["name"]: c for c in await context.cookies(stack.api)}
    assert set(cookies) == {COOKIE}, cookies
    cookie = cookies[COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain-HTTP development
    assert cookie["domain"] == "localhost"
    assert COOKIE not in await page.evaluate("document.cookie")
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    exchanges = await watch.exchanges()
    assert not any(cookie["value"] in body for _, body in exchanges)
    logins = [body for sent, body in exchanges if "SignIn" in sent and "AuthPayload" in body]
    assert len(logins) == 1
    assert '"refreshToken":null' in logins[0]

    # A reload forgets the access token; the cookie brings the user back silently.
    await page.reload()
    await expect(signed_in).to_be_visible()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    await expect(status).to_have_attribute("data-last-refresh-reason", "reload")
    await expect(status).to_have_attribute("data-refresh-count", "1")
    assert cookie["value"] not in await page.content()

    # The timer refreshes the access token at half its lifetime, with nobody doing anything.
    await expect(status).to_have_attribute(
        "data-last-refresh-reason", "timer", timeout=(ACCESS_TOKEN_TTL + 10) * 1000
    )
    await expect(status).to_have_attribute("data-refresh-count", "2")
    await expect(status).to_contain_text("refreshed 2 times")
    await page.screenshot(path=str(artifacts_dir / "spa-3-refreshed.png"), full_page=True)

    # Sessions: a second browser signs in; the first lists it and ends it.
    rows = page.locator("#sessions tbody tr")
    other_context, other = await new_page(browser, watch, "phone")
    await other.goto(stack.spa)
    await sign_in(other, email, PASSWORD)
    await expect(other.locator('[data-view="signed-in"]')).to_be_visible()
    await page.get_by_role("button", name="Reload the list").click()
    await expect(rows).to_have_count(2)
    await expect(page.locator('#sessions tr[data-current="true"]')).to_contain_text("laptop")
    phone_row = page.locator('#sessions tr[data-current="false"]')
    await expect(phone_row).to_contain_text("phone")
    await page.screenshot(path=str(artifacts_dir / "spa-4-sessions.png"), full_page=True)
    await phone_row.get_by_role("button", name="End").click()
    await expect(page.locator("#sessions-message")).to_have_text("Session ended.")
    await expect(rows).to_have_count(1)
    # The phone's access token stops working at once: its next call finds out and signs out.
    await other.get_by_role("button", name="Reload the list").click()
    await expect(other.locator('[data-view="signed-out"]')).to_be_visible()
    await expect(other.locator("#banner")).to_contain_text("session has ended")
    await other.reload()
    await expect(other.locator('[data-view="signed-out"]')).to_be_visible()
    await watch.exchanges()  # read its answers before they go
    await other_context.close()

    # Two more sessions (signed in elsewhere), ended together.
    tokens = []
    for _ in range(2):
        login = api_call(stack, LOGIN, {"i": {"email": email, "password": PASSWORD}})["data"]
        assert login["login"]["refreshToken"] is None  # cookie mode, for every client
        tokens.append(login["login"]["accessToken"])
    await page.get_by_role("button", name="Reload the list").click()
    await expect(rows).to_have_count(3)
    await page.get_by_role("button", name="Sign out all other sessions").click()
    await expect(page.locator("#sessions-message")).to_have_text("2 sessions ended.")
    await expect(rows).to_have_count(1)
    for token in tokens:
        body = api_call(stack, ME, {}, token)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # Change the password: a wrong current one, a too short new one, then the real thing.
    change = page.locator("#change-password")
    current_error = change.locator('.field-error[data-field="currentPassword"]')
    await change.locator("[name=currentPassword]").fill("not the passphrase")
    await change.locator("[name=newPassword]").fill(NEW_PASSWORD)
    await change.get_by_role("button", name="Change password").click()
    await expect(current_error).to_contain_text("incorrect")
    await change.locator("[name=currentPassword]").fill(PASSWORD)
    await change.locator("[name=newPassword]").fill("short")
    await change.get_by_role("button", name="Change password").click()
    await expect(change.locator('.field-error[data-field="newPassword"]')).not_to_be_empty()
    await expect(current_error).to_be_empty()
    await change.locator("[name=newPassword]").fill(NEW_PASSWORD)
    await change.get_by_role("button", name="Change password").click()
    await expect(change.locator(".form-message")).to_contain_text("Password changed.")
    await expect(signed_in).to_be_visible()  # this session goes on
    await page.screenshot(path=str(artifacts_dir / "spa-5-password-changed.png"), full_page=True)

    # Sign out: the cookie is gone, and a reload stays signed out.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(signed_out).to_be_visible()
    await expect(page.locator("#banner")).to_have_text("Signed out.")
    assert await context.cookies(stack.api) == []
    await page.reload()
    await expect(signed_out).to_be_visible()
    await expect(page.locator("#banner")).to_be_hidden()
    await page.screenshot(path=str(artifacts_dir / "spa-6-signed-out.png"), full_page=True)

    # The old password no longer works; the new one does.
    await sign_in(page, email, PASSWORD)
    await expect(page.locator("#sign-in .form-message")).to_contain_text("incorrect")
    await sign_in(page, email, NEW_PASSWORD)
    await expect(signed_in).to_be_visible()

    exchanges = await watch.exchanges()
    assert not any(COOKIE in body for _, body in exchanges)
    refreshes = [body for sent, body in exchanges if "mutation Refresh" in sent]
    assert all('"refreshToken":null' in b for b in refreshes if "AuthPayload" in b)
    await context.close()
    assert not watch.problems, watch.problems


@pytest.mark.slow
async def test_requests_refused_together_share_one_refresh(stack: Stack, browser: Browser) -> None:
    """identity.js: two calls whose token identity refuses wait for one refresh, then retry."""
    from playwright.async_api import expect

    email = "single.flight@example.com"
    names = {"firstName": "S", "lastName": "F"}
    registered = api_call(stack, REGISTER, {"i": {"email": email, "password": PASSWORD, **names}})
    assert registered["data"]["register"]["__typename"] == "RegisterSuccess"
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "tab")
    await page.goto(stack.spa)
    await sign_in(page, email, PASSWORD)
    await expect(page.locator('[data-view="signed-in"]')).to_be_visible()

    # A second client in the page, whose fetch spoils the token of its first two calls, so
    # that identity really refuses them (UNAUTHENTICATED) at the same moment.
    outcome = await page.evaluate(
        """async () => {
          const { IdentityClient } = await import("./identity.js");
          const { API_URL } = await import("./config.js");
          const sent = [];
          let spoil = 2;
          const client = new IdentityClient(API_URL, {
            fetch: (url, init) => {
              sent.push(JSON.parse(init.body).query.match(/(query|mutation) (\\w+)/)[2]);
              if (init.headers.Authorization && spoil > 0) {
                spoil -= 1;
                init = { ...init, headers: { ...init.headers, Authorization: "Bearer spoilt" } };
              }
              return fetch(url, init);
            },
          });
          const reasons = [];
          client.addEventListener("token", (event) => reasons.push(event.detail.reason));
          const restored = await client.restore();
          const query = "query Me { me { email } }";
          const results = await Promise.all([client.request(query), client.request(query)]);
          return { restored, sent, reasons, emails: results.map((data) => data.me.email) };
        }"""
    )
    assert outcome == {
        "restored": True,
        "sent": ["Refresh", "Me", "Me", "Refresh", "Me", "Me"],
        "reasons": ["reload", "rejected"],
        "emails": [email, email],
    }
    await watch.exchanges()
    await context.close()
    assert not watch.problems, watch.problems


@pytest.mark.slow
async def test_a_token_copied_out_of_the_page_is_refused_and_the_page_survives_a_reload(
    stack: Stack, browser: Browser
) -> None:
    """DPoP: the app's session is bound to a non-extractable key in IndexedDB."""
    from playwright.async_api import Request, expect

    email = "dpop.user@example.com"
    names = {"firstName": "D", "lastName": "P"}
    registered = api_call(stack, REGISTER, {"i": {"email": email, "password": PASSWORD, **names}})
    assert registered["data"]["register"]["__typename"] == "RegisterSuccess"
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "tab")
    # What a malicious script or extension could copy: the headers the page sends.
    copied: list[dict[str, str]] = []

    async def copy(request: Request) -> None:
        headers = await request.all_headers()
        if request.url == f"{stack.api}/graphql" and "authorization" in headers:
            copied.append(headers)

    copying: list[asyncio.Task[None]] = []
    page.on("request", lambda request: copying.append(asyncio.ensure_future(copy(request))))
    await page.goto(stack.spa)
    await sign_in(page, email, PASSWORD)
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    await asyncio.gather(*copying)
    assert copied, "the page sent no request with its access token"
    stolen = copied[-1]
    scheme, token = stolen["authorization"].split(" ", 1)
    assert scheme == "DPoP"
    assert "jkt" in jwt.decode(token, options={"verify_signature": False})["cnf"]

    def replay(headers: dict[str, str]) -> Any:
        body = {"query": ME, "variables": {}}
        return httpx.post(f"{stack.api}/graphql", json=body, headers=headers).json()

    attempts = {
        "as a bearer token": {"Authorization": f"Bearer {token}"},
        "as a DPoP token without a proof": {"Authorization": f"DPoP {token}"},
        "with the page's proof, again": {"Authorization": f"DPoP {token}", "DPoP": stolen["dpop"]},
    }
    for attempt, headers in attempts.items():
        answer = replay(headers)
        assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", (attempt, answer)

    # The key cannot be read out of the page either.
    exported = await page.evaluate(
        """async () => {
          const { loadKeyPair } = await import("./dpop.js");
          const pair = await loadKeyPair();
          try {
            await crypto.subtle.exportKey("jwk", pair.privateKey);
            return "exported";
          } catch (error) {
            return `${pair.privateKey.extractable}: ${error.name}`;
          }
        }"""
    )
    assert exported == "false: InvalidAccessError"

    # The page itself keeps working: after a reload the refresh cookie and the key from
    # IndexedDB make a new access token, bound to the same key.
    copied.clear()
    await page.reload()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)
    await asyncio.gather(*copying)
    assert copied
    renewed = copied[-1]["authorization"].split(" ", 1)[1]
    assert renewed != token
    cnf = jwt.decode(renewed, options={"verify_signature": False})["cnf"]
    assert cnf == jwt.decode(token, options={"verify_signature": False})["cnf"]
    await context.close()
    assert not watch.problems, watch.problems


@pytest.mark.slow
async def test_an_api_on_another_site_gets_no_cookie(
    tmp_path: Path, browser: Browser, artifacts_dir: Path
) -> None:
    """What the README warns about: 127.0.0.1 and localhost are different sites, so the
    SameSite=Strict cookie from http://127.0.0.1:A is not even stored for a page on
    http://localhost:B. Signing in works; a reload does not keep the user signed in."""
    from playwright.async_api import expect

    with running_stack(tmp_path, api_host="127.0.0.1") as stack:
        email = "cross.site@example.com"
        names = {"firstName": "C", "lastName": "S"}
        registered = api_call(
            stack, REGISTER, {"i": {"email": email, "password": PASSWORD, **names}}
        )
        assert registered["data"]["register"]["__typename"] == "RegisterSuccess"
        watch = Watch(stack.api)
        context, page = await new_page(browser, watch, "cross-site")
        await page.goto(stack.spa)
        await sign_in(page, email, PASSWORD)
        await expect(page.locator('[data-view="signed-in"]')).to_be_visible()
        assert await context.cookies() == []
        await page.reload()
        await expect(page.locator('[data-view="signed-out"]')).to_be_visible()
        await page.screenshot(path=str(artifacts_dir / "spa-cross-site.png"), full_page=True)
        assert all('"refreshToken":"' not in body for _, body in await watch.exchanges())
        await context.close()
        assert not watch.problems, watch.problems


# Two-step sign-in ---------------------------------------------------------------------------


async def verified_account(stack: Stack, email: str) -> None:
    """Registered through the API, with the address confirmed through its mailed link."""
    names = {"firstName": "M", "lastName": "F"}
    registered = api_call(stack, REGISTER, {"i": {"email": email, "password": PASSWORD, **names}})
    assert registered["data"]["register"]["__typename"] == "RegisterSuccess"
    for _ in range(100):
        if any(stack.mail.glob("*.eml")):
            try:
                link = link_in_mail(stack, email, "Confirm your email")
                break
            except AssertionError:
                pass
        await asyncio.sleep(0.1)
    else:
        pytest.fail("no verification mail was sent")
    token = link.partition("#token=")[2]
    verify = "mutation($t: String!) { verifyEmail(input: {token: $t}) { __typename } }"
    answer = api_call(stack, verify, {"t": token})["data"]["verifyEmail"]
    assert answer["__typename"] == "VerifyEmailSuccess"


@pytest.mark.slow
async def test_two_step_sign_in_with_an_authenticator_app_and_a_recovery_code(
    stack: Stack, browser: Browser, artifacts_dir: Path
) -> None:
    import time

    import pyotp
    from playwright.async_api import expect

    email = "two.step@example.com"
    await verified_account(stack, email)
    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "mfa")
    signed_in = page.locator('[data-view="signed-in"]')
    status = page.locator("#mfa-status")
    await page.goto(stack.spa)
    await sign_in(page, email, PASSWORD)
    await expect(signed_in).to_be_visible()
    await expect(status).to_contain_text("Off")

    # Enrol: the QR code and the key, a code the app (here pyotp) computes, the codes once.
    await page.get_by_role("button", name="Add an authenticator app").click()
    await expect(page.locator("#enrollment")).to_be_visible()
    await expect(page.locator("#qr-code")).to_have_attribute("src", re.compile("^data:image/svg"))
    await page.wait_for_function("document.querySelector('#qr-code').complete")
    assert await page.locator("#qr-code").evaluate("img => img.naturalWidth") > 0
    secret = (await page.locator("#totp-secret").text_content() or "").strip()
    app = pyotp.TOTP(secret)
    enrol = page.locator("#confirm-enrollment")
    await enrol.locator("[name=code]").fill("000000" if app.now() != "000000" else "111111")
    await enrol.get_by_role("button", name="Turn it on").click()
    await expect(enrol.locator('.field-error[data-field="code"]')).to_contain_text("incorrect")
    await enrol.locator("[name=code]").fill(app.now())
    await enrol.locator("[name=label]").fill("Test phone")
    await enrol.get_by_role("button", name="Turn it on").click()
    codes_list = page.locator("#recovery-code-list li")
    await expect(codes_list).to_have_count(10)
    codes = await codes_list.all_text_contents()
    await page.screenshot(path=str(artifacts_dir / "spa-mfa-1-recovery-codes.png"), full_page=True)
    await page.get_by_role("button", name="I have saved them").click()
    await expect(page.locator("#recovery-codes")).to_be_hidden()
    await expect(status).to_contain_text("On")
    await expect(status).to_contain_text("10 recovery codes left")
    await expect(page.locator("#factors li")).to_contain_text("Test phone")

    # Sign out, then in: the password, then a code (the next time step: the enrolment used
    # this one, and a code is good once).
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await sign_in(page, email, PASSWORD)
    second = page.locator("#second-step")
    await expect(second).to_be_visible()
    await page.screenshot(path=str(artifacts_dir / "spa-mfa-2-second-step.png"), full_page=True)
    await second.locator("[name=code]").fill(app.at(time.time() + 30))
    await second.get_by_role("button", name="Verify").click()
    await expect(signed_in).to_be_visible()
    await expect(page.locator('[data-profile="email"]')).to_have_text(email)

    # And with a recovery code instead.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await sign_in(page, email, PASSWORD)
    await expect(second).to_be_visible()
    await second.get_by_role("button", name="Use a recovery code instead").click()
    await second.locator("[name=code]").fill(codes[0].upper())
    await second.get_by_role("button", name="Verify").click()
    await expect(signed_in).to_be_visible()
    await expect(status).to_contain_text("9 recovery codes left")
    await page.screenshot(path=str(artifacts_dir / "spa-mfa-3-signed-in.png"), full_page=True)

    # The used recovery code does not work again.
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await sign_in(page, email, PASSWORD)
    await second.get_by_role("button", name="Use a recovery code instead").click()
    await second.locator("[name=code]").fill(codes[0])
    await second.get_by_role("button", name="Verify").click()
    await expect(second.locator('.field-error[data-field="code"]')).to_contain_text("incorrect")
    await second.locator("[name=code]").fill(codes[1])
    await second.get_by_role("button", name="Verify").click()
    await expect(signed_in).to_be_visible()

    # Remove the app (a fresh sign-in needs no password): MFA is off again.
    await page.locator("#factors li").get_by_role("button", name="Remove").click()
    await expect(status).to_contain_text("Off")
    await expect(page.locator("#factors li")).to_have_count(0)
    await watch.exchanges()
    await context.close()
    assert not watch.problems, watch.problems


# The pages behind mailed links -------------------------------------------------------------


def link_in_mail(stack: Stack, to: str, subject: str) -> str:
    """The link in the newest message to `to` about `subject` that the file transport wrote."""
    import email
    import email.policy

    for path in sorted(stack.mail.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to in str(message["To"]) and subject in str(message["Subject"]):
            body = message.get_body(("plain",))
            assert body is not None
            found = re.search(r"https?://\S+#token=[A-Za-z0-9_-]+", body.get_content())
            assert found, body.get_content()
            return found.group(0)
    raise AssertionError(f"no message to {to} about {subject!r}")


async def test_link_pages_use_a_token_only_when_the_person_acts(
    stack: Stack, browser: Browser, artifacts_dir: Path
) -> None:
    from playwright.async_api import expect

    email = "links@example.com"
    names = {"firstName": "L", "lastName": "P"}
    api_call(stack, REGISTER, {"i": {"email": email, "password": PASSWORD, **names}})
    verified = "{ me { isVerified } }"
    token = api_call(stack, LOGIN, {"i": {"email": email, "password": PASSWORD}})["data"]
    token = token["login"]["accessToken"]
    for _ in range(100):  # the outbox sender writes the message within a poll interval
        if any(stack.mail.glob("*.eml")):
            break
        await asyncio.sleep(0.1)
    link = link_in_mail(stack, email, "Confirm your email")
    assert link.startswith(f"{stack.api}/verify-email#token=")

    watch = Watch(stack.api)
    context, page = await new_page(browser, watch, "links")
    # Opening the page (as a link scanner would) uses nothing up.
    await page.goto(link)
    await expect(page.get_by_role("button", name="Confirm")).to_be_visible()
    assert "#token" not in page.url  # the token left the address bar
    assert api_call(stack, verified, {}, token)["data"]["me"]["isVerified"] is False
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.locator("#status")).to_have_text(f"Done: {email} is confirmed.")
    assert api_call(stack, verified, {}, token)["data"]["me"]["isVerified"] is True
    await page.screenshot(path=str(artifacts_dir / "link-page-verified.png"), full_page=True)

    # The same link again, in a new tab: the token is spent.
    again = watch.page(await context.new_page(), "links again")
    await again.goto(link)
    await again.get_by_role("button", name="Confirm").click()
    await expect(again.locator("#status")).to_have_class("error")
    await expect(again.locator("#status")).to_have_text("The token is invalid or has expired.")
    await context.close()
    assert not watch.problems, watch.problems
