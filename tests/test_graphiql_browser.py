"""GraphiQL in a real browser: an admin signs in, sets the Authorization header, asks for `me`.

Debian's Chromium, headless, driven by Playwright (never a browser Playwright downloads),
against a real `identity serve` process. GraphiQL's assets come from the npm packages pinned
in examples/graphiql-assets (npm ci into the test cache), laid out like the CDN by its
mirror.mjs and served by a small static server on another port, as an admin would host
them; IDENTITY_GRAPHIQL_ASSETS_URL points the page there. Every request to any other host
is refused, so the test also proves the page needs nothing from the internet.
Needs Chromium, Playwright and Node.js (see tests/nodetools.py).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.nodetools import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, npm_ci, require_browser
from tests.test_server import Server, server_env

pytestmark = pytest.mark.slow

ASSET = re.compile(r'(?:src|href)="([^"]+)"\s+integrity="(sha384-[^"]+)"')
PASSWORD = "graphiql admin passphrase"
ME = "{ me { email roles { name } } }"

REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { __typename } }"""
LOGIN = """mutation($i: LoginInput!) {
  login(input: $i) { __typename ... on AuthPayload { accessToken } }
}"""


class StaticFiles(SimpleHTTPRequestHandler):
    """Files with the CORS header that `<script crossorigin integrity=…>` needs."""

    requested: list[str]

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        self.requested.append(self.path)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """(base URL, requested paths) of a CDN-like mirror of GraphiQL's npm packages."""
    require_browser("GraphiQL browser tests")
    installed = npm_ci(EXAMPLES / "graphiql-assets")
    root = tmp_path_factory.mktemp("static")
    mirror = root / "graphiql-assets"  # served under a path, as behind a shared web server
    subprocess.run(
        ["node", str(EXAMPLES / "graphiql-assets" / "mirror.mjs"), str(mirror)],
        cwd=installed,
        check=True,
        capture_output=True,
        timeout=120,
    )
    requested: list[str] = []
    handler = type("Handler", (StaticFiles,), {"requested": requested})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        # No trailing slash: identity adds it.
        yield f"http://127.0.0.1:{httpd.server_address[1]}/graphiql-assets", requested
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server(assets: tuple[str, list[str]], tmp_path: Path) -> Iterator[Server]:
    base_url, _ = assets
    env = server_env(
        f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}", IDENTITY_GRAPHIQL_ASSETS_URL=base_url
    )
    running = Server(env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def sign_in(url: str, email: str) -> str:
    """Register and sign in through the API, as an admin would before opening GraphiQL."""

    def call(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    names = {"firstName": "Ada", "lastName": "Admin"}
    registered = call(REGISTER, {"i": {"email": email, "password": PASSWORD, **names}})
    assert registered["register"]["__typename"] == "RegisterSuccess", registered
    login = call(LOGIN, {"i": {"email": email, "password": PASSWORD}})["login"]
    assert login["__typename"] == "AuthPayload", login
    token: str = login["accessToken"]
    return token


def test_the_page_loads_the_self_hosted_assets_with_matching_integrity(
    server: Server, assets: tuple[str, list[str]]
) -> None:
    base_url, _ = assets
    html = httpx.get(f"{server.url}/graphql", headers={"Accept": "text/html"}).text
    found = ASSET.findall(html)
    assert len(found) == 7
    assert "unpkg.com" not in html
    for url, integrity in found:
        assert url.startswith(base_url), url
        body = httpx.get(url).content
        digest = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        assert digest == integrity, f"{url}: the npm file differs from what unpkg served"


async def test_admin_runs_me_in_graphiql_with_a_bearer_token(
    server: Server, assets: tuple[str, list[str]], artifacts_dir: Path
) -> None:
    from playwright.async_api import Route, async_playwright, expect

    email = "ada.admin@example.com"
    token = sign_in(server.url, email)
    allowed = {urlsplit(server.url).netloc, urlsplit(assets[0]).netloc}
    refused: list[str] = []
    problems: list[str] = []

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc in allowed:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            await context.route("**/*", only_local)
            page = await context.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            await page.goto(f"{server.url}/graphql")

            # The query editor: replace the welcome text with the query, typed as a person would.
            query_editor = page.locator(".graphiql-query-editor .CodeMirror")
            await expect(query_editor).to_be_visible(timeout=20_000)
            await query_editor.click()
            await page.keyboard.press("Control+A")
            await page.keyboard.press("Delete")
            await page.keyboard.type(ME)

            # The headers editor, under "Headers" below the query.
            await page.get_by_role("button", name="Headers").click()
            headers_editor = page.locator(".graphiql-editor-tool .graphiql-editor").nth(1)
            await expect(headers_editor).to_be_visible()
            await headers_editor.click()
            await page.keyboard.type(json.dumps({"Authorization": f"Bearer {token}"}))
            await page.keyboard.press("Home")  # the screenshot shows the header's name
            typed = await page.evaluate(
                """() => [...document.querySelectorAll('.CodeMirror')]
                          .map((el) => el.CodeMirror.getValue())"""
            )
            assert _squash(ME) in [_squash(text) for text in typed], typed
            assert any(token in text for text in typed), typed

            await page.get_by_role("button", name="Execute query").click()
            response = page.locator(".graphiql-response")
            await expect(response).to_contain_text(email, timeout=20_000)
            await expect(response).to_contain_text('"name": "user"')
            await page.screenshot(path=str(artifacts_dir / "graphiql-me.png"), full_page=True)

            # GraphiQL keeps its tabs and query in localStorage, but not the typed headers.
            storage: dict[str, str] = await page.evaluate(
                "() => Object.fromEntries(Object.entries(localStorage))"
            )
            assert any(key.startswith("graphiql:") for key in storage), storage
            leaks = [key for key, value in storage.items() if token in value]
            assert not leaks, f"the token is in localStorage under {leaks}"
            assert "graphiql:headers" not in storage
            history = json.loads(storage["graphiql:queries"])["queries"]
            assert [(_squash(h["query"]), h["headers"]) for h in history] == [(_squash(ME), None)]
            assert token not in page.url

            # A reload starts with an empty headers editor.
            await page.reload()
            await expect(query_editor).to_be_visible(timeout=20_000)
            reloaded = await page.evaluate(
                """() => [...document.querySelectorAll('.CodeMirror')]
                          .map((el) => el.CodeMirror.getValue()).join('\\n')"""
            )
            assert token not in reloaded
        finally:
            await browser.close()

    assert not refused, f"the page reached for other hosts: {refused}"
    assert not problems, problems
    _, requested = assets
    assert any("graphiql@3.8.3/graphiql.min.js" in path for path in requested), requested


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)
