"""Sign-in with another provider against a certified OpenID Provider (panva's oidc-provider,
examples/oidc-upstream), without a browser: its sign-in form is posted with httpx.

This proves the protocol with other people's code: discovery, the authorization request
(oidc-provider requires PKCE and checks the redirect URI exactly), client_secret_basic at the
token endpoint, the RS256 ID token with its nonce, the RFC 9207 `iss` in the response, and
userinfo (oidc-provider puts the scope's claims there, not in the ID token). The browser test
(tests/test_external_browser.py) drives the same provider through the example app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.conftest import GraphQLClient, scalar
from tests.external_helpers import finish, fragment, new_verifier, start
from tests.mfa_helpers import claims
from tests.nodetools import require_node
from tests.upstream import Upstream

pytestmark = pytest.mark.slow
RETURN_TO = "http://app.example.test/signed-in"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    require_node("oidc-provider tests")
    running = Upstream(
        tmp_path_factory.mktemp("upstream"),
        ["http://testserver/login/external/upstream/callback"],
    )
    yield running
    running.stop()


@pytest.fixture
def settings_overrides(upstream: Upstream) -> dict[str, Any]:
    return {"oidc_providers": [upstream.settings()], "oidc_return_urls": [RETURN_TO]}


async def through_upstream(upstream: Upstream, url: str, login: str | None) -> str:
    """A person at the provider: signs in as `login` (unless the provider remembers them)
    and is sent back; the callback URL at identity."""
    async with httpx.AsyncClient(timeout=10) as browser:
        browser.cookies = upstream_cookies.setdefault(upstream.issuer, httpx.Cookies())
        response = await browser.get(url)
        for _ in range(10):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith("http://testserver/"):
                    upstream_cookies[upstream.issuer] = browser.cookies  # its session
                    return target
                response = await browser.get(target)
                continue
            assert response.status_code == 200, response.text
            assert login is not None, "the provider asked to sign in again"
            assert 'name="login"' in response.text
            action = response.text.split('action="')[1].split('"')[0]
            response = await browser.post(urljoin(str(response.url), action), data={"login": login})
    raise AssertionError("the provider did not send the browser back")


upstream_cookies: dict[str, httpx.Cookies] = {}


async def sign_in(gql: GraphQLClient, upstream: Upstream, login: str | None) -> dict[str, Any]:
    verifier = new_verifier()
    started = await start(gql, verifier, provider="upstream", return_to=RETURN_TO)
    assert started["__typename"] == "StartExternalLoginSuccess", started
    callback = await through_upstream(upstream, started["authorizationUrl"], login)
    back = fragment(await gql.http.get(callback))
    assert "code" in back, back
    return await finish(gql, back["code"], verifier)


async def test_a_new_user_signs_in_through_oidc_provider(
    gql: GraphQLClient, upstream: Upstream, container: Any
) -> None:
    upstream_cookies.clear()
    upstream.add("carol", "carol@example.com", given_name="Carol", family_name="Upstream")
    done = await sign_in(gql, upstream, "carol")
    assert done["__typename"] == "AuthPayload", done
    assert done["user"]["email"] == "carol@example.com"
    assert (done["user"]["firstName"], done["user"]["isVerified"]) == ("Carol", True)
    token = claims(done["accessToken"])
    assert (token["amr"], token["aal"]) == (["fed"], 1)
    # The provider remembers Carol: the next sign-in goes straight through, to the same user.
    again = await sign_in(gql, upstream, None)
    assert again["__typename"] == "AuthPayload"
    assert again["user"]["id"] == done["user"]["id"]
    subject = await scalar(container, "SELECT subject FROM external_accounts")
    assert subject == "carol"  # oidc-provider's sub is the account id


async def test_an_unverified_address_at_oidc_provider_is_refused(
    gql: GraphQLClient, upstream: Upstream, container: Any
) -> None:
    upstream_cookies.clear()
    upstream.add("dave", "dave@example.com", verified=False)
    done = await sign_in(gql, upstream, "dave")
    assert done["__typename"] == "EmailNotVerified"
    assert await scalar(container, "SELECT count(*) FROM users") == 0


def test_the_upstream_example_is_a_real_oidc_provider(upstream: Upstream, tmp_path: Path) -> None:
    document = httpx.get(f"{upstream.issuer}/.well-known/openid-configuration").json()
    assert document["issuer"] == upstream.issuer
    assert document["authorization_response_iss_parameter_supported"] is True
    assert "RS256" in document["id_token_signing_alg_values_supported"]
