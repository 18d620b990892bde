"""The consumer guides' code, run for real: services that verify identity's access tokens.

examples/consumers/python (PyJWT's PyJWKClient, and a Starlette service) and
examples/consumers/node (jose's createRemoteJWKSet and jwtVerify, and a node:http service)
are the files docs/guides/verifying-tokens.md includes. Here they verify the tokens of a real
`identity serve` process, follow a key rotation made with `identity keys rotate` and a
revocation made with `identity keys revoke`, and refuse forged tokens: each forgery is
signed by a key of a small JWKS server of the test's own (wrong audience, no `typ`,
`alg: none`, HS256 with the public key, …). The Node.js half needs Node.js 20+ and npm
(see tests/nodetools.py).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.clock import SystemClock
from tests.dpop_helpers import Holder
from tests.forged_tokens import ISSUER, Forger, forgeries
from tests.nodetools import EXAMPLES, npm_ci, require_node
from tests.test_server import Server, server_env

pytestmark = pytest.mark.slow

PYTHON_EXAMPLE = EXAMPLES / "consumers" / "python"
NODE_EXAMPLE = EXAMPLES / "consumers" / "node"
HARNESS = Path(__file__).with_name("consumer_check.mjs")
NODE_MIN = 20
PASSWORD = "consumer guide passphrase"

REGISTER = """mutation($i: RegisterInput!) {
  register(input: $i) { __typename ... on RegisterSuccess { user { id } } }
}"""
LOGIN = """mutation($i: LoginInput!) {
  login(input: $i) { __typename ... on AuthPayload { accessToken refreshToken } }
}"""
VERIFY_USER = """mutation($id: ID!) { verifyUser(id: $id) { __typename } }"""
START_TOTP = """mutation {
  startTotpEnrollment(input: {}) {
    __typename ... on StartTotpEnrollmentSuccess { enrollmentToken secret }
  }
}"""
CONFIRM_TOTP = """mutation($t: String!, $c: String!) {
  confirmTotpEnrollment(input: {enrollmentToken: $t, code: $c}) { __typename }
}"""
REFRESH = """mutation($t: String) {
  refreshToken(input: {refreshToken: $t}) { __typename ... on AuthPayload { accessToken } }
}"""
ME = "{ me { id } }"


# ---- the examples, as a service would use them --------------------------------------------


def _load(path: Path, name: str) -> ModuleType:
    if str(PYTHON_EXAMPLE) not in sys.path:
        sys.path.insert(0, str(PYTHON_EXAMPLE))  # service.py imports identity_tokens
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


tokens_module = _load(PYTHON_EXAMPLE / "identity_tokens.py", "identity_tokens")
service_module = _load(PYTHON_EXAMPLE / "service.py", "consumer_service")


@dataclass
class Verdict:
    ok: bool
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    aal: int | None = None
    amr: tuple[str, ...] = ()
    error: str = ""


Verify = Callable[..., Verdict]  # (token, dpop={"proof", "method", "url"} or None)


def python_verifier(**options: Any) -> Verify:
    verifier = tokens_module.TokenVerifier(**options)

    def verify(token: str, dpop: dict[str, str] | None = None) -> Verdict:
        try:
            access = verifier.verify(token, None if dpop is None else tokens_module.Dpop(**dpop))
        except (tokens_module.InvalidToken, tokens_module.KeysUnavailable) as exc:
            return Verdict(False, error=f"{type(exc).__name__}: {exc}")
        return Verdict(
            True, access.user_id, tuple(sorted(access.roles)), access.aal, tuple(sorted(access.amr))
        )

    return verify


@pytest.fixture(scope="module")
def node_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Node.js example and the harness, beside jose installed from the lock file."""
    require_node("Node.js consumer tests", NODE_MIN)
    folder = tmp_path_factory.mktemp("consumer-node")
    for file in NODE_EXAMPLE.glob("*.mjs"):
        shutil.copy2(file, folder / file.name)
    shutil.copy2(HARNESS, folder / HARNESS.name)
    (folder / "node_modules").symlink_to(npm_ci(NODE_EXAMPLE) / "node_modules")
    return folder


class NodeVerifier:
    """verify.mjs in one long-lived node process, so its JWKS cache lives across calls."""

    def __init__(self, workspace: Path, **options: Any) -> None:
        names = {"jwks_url": "jwksUrl", "jwks_cache_seconds": "jwksCacheSeconds"}
        config = {names.get(k, k): v for k, v in options.items()}
        self.process = subprocess.Popen(
            ["node", HARNESS.name, json.dumps(config)],
            cwd=workspace,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, token: str, dpop: dict[str, str] | None = None) -> Verdict:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"token": token, "dpop": dpop}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"node exited with {self.process.wait(timeout=10)}"
        answer = json.loads(line)
        if answer["ok"]:
            roles, amr = tuple(answer["roles"]), tuple(answer["amr"])
            return Verdict(True, answer["userId"], roles, answer["aal"], amr)
        return Verdict(False, error=f"{answer['error']}: {answer['message']}")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture(params=["python", "node"])
def make_verifier(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Verify]]:
    """A factory of verifiers in the language of the parameter."""
    if request.param == "python":
        yield python_verifier
        return
    workspace = request.getfixturevalue("node_workspace")
    started: list[NodeVerifier] = []

    def make(**options: Any) -> Verify:
        started.append(NodeVerifier(workspace, **options))
        return started[-1]

    yield make
    for verifier in started:
        verifier.close()


# ---- a real identity ----------------------------------------------------------------------


@dataclass
class Identity:
    server: Server
    env: dict[str, str]
    folder: Path

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}/.well-known/jwks.json"

    def graphql(
        self,
        query: str,
        variables: dict[str, Any],
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
        response = httpx.post(
            f"{self.server.url}/graphql",
            json={"query": query, "variables": variables},
            headers=headers,
        )
        return response.json()

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, "-m", "identity", *args],
            env=self.env,
            cwd=self.folder,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def user(self, email: str) -> str:
        data = {"email": email, "password": PASSWORD, "firstName": "", "lastName": ""}
        answer = self.graphql(REGISTER, {"i": data})["data"]["register"]
        assert answer["__typename"] == "RegisterSuccess", answer
        user_id: str = answer["user"]["id"]
        return user_id

    def sign_in(self, email: str) -> str:
        return self.tokens(email)[0]

    def tokens(self, email: str) -> tuple[str, str]:
        """(access token, refresh token) of a new session."""
        answer = self.graphql(LOGIN, {"i": {"email": email, "password": PASSWORD}})
        login = answer["data"]["login"]
        assert login["__typename"] == "AuthPayload", login
        return login["accessToken"], login["refreshToken"]

    def second_factor(self, email: str, user_id: str, admin_token: str) -> str:
        """An access token at aal 2: the user adds an authenticator app (their first factor
        raises their session) and refreshes."""
        assert self.graphql(VERIFY_USER, {"id": user_id}, admin_token)["data"]["verifyUser"]
        access, refresh = self.tokens(email)
        started = self.graphql(START_TOTP, {}, access)["data"]["startTotpEnrollment"]
        code = pyotp.TOTP(started["secret"]).now()
        variables = {"t": started["enrollmentToken"], "c": code}
        confirmed = self.graphql(CONFIRM_TOTP, variables, access)["data"]["confirmTotpEnrollment"]
        assert confirmed["__typename"] == "ConfirmTotpEnrollmentSuccess", confirmed
        refreshed = self.graphql(REFRESH, {"t": refresh})["data"]["refreshToken"]
        token: str = refreshed["accessToken"]
        return token


def start_identity(folder: Path) -> Identity:
    # Signing keys are reloaded every second, so a rotation reaches the server quickly.
    env = server_env(f"sqlite+aiosqlite:///{folder / 'identity.db'}")
    env["IDENTITY_KEY_REFRESH_INTERVAL"] = "1"
    # The rotation tests sign in every 0.2 s until the new key signs, from one address.
    env["IDENTITY_RATE_LIMIT_LOGIN_ADDRESS"] = "10000/minute"
    env["IDENTITY_RATE_LIMIT_LOGIN_ACCOUNT"] = "10000/minute"
    return Identity(Server(env, folder), env, folder)


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Identity]:
    running = start_identity(tmp_path_factory.mktemp("identity"))
    try:
        yield running
    finally:
        running.server.stop()


@pytest.fixture(scope="module")
def people(identity: Identity) -> dict[str, tuple[str, str]]:
    """email -> (user id, access token): a user, an admin, and a user with a second factor."""
    ann = identity.user("ann@example.com")
    admin = identity.user("ada@example.com")
    identity.cli("create-admin", "--email", "ada@example.com")
    ada_token = identity.sign_in("ada@example.com")
    mia = identity.user("mia@example.com")
    return {
        "ann@example.com": (ann, identity.sign_in("ann@example.com")),
        "ada@example.com": (admin, ada_token),
        "mia@example.com": (mia, identity.second_factor("mia@example.com", mia, ada_token)),
    }


def kid_of(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


# ---- verifying identity's tokens ----------------------------------------------------------


def test_a_consumer_accepts_identitys_tokens_and_reads_roles_and_assurance(
    identity: Identity, people: dict[str, tuple[str, str]], make_verifier: Callable[..., Verify]
) -> None:
    verify = make_verifier(issuer=ISSUER, audience="identity", jwks_url=identity.jwks_url)
    ann_id, ann_token = people["ann@example.com"]
    assert verify(ann_token) == Verdict(True, ann_id, ("user",), aal=1, amr=("pwd",))
    mia_id, mia_token = people["mia@example.com"]
    assert verify(mia_token) == Verdict(True, mia_id, ("user",), aal=2, amr=("mfa", "otp", "pwd"))
    ada_id, ada_token = people["ada@example.com"]
    verdict = verify(ada_token)
    assert verdict.ok
    assert verdict.user_id == ada_id
    assert "admin" in verdict.roles


def test_a_consumer_of_another_audience_or_issuer_refuses_them(
    identity: Identity, people: dict[str, tuple[str, str]], make_verifier: Callable[..., Verify]
) -> None:
    _, token = people["ann@example.com"]
    other_audience = make_verifier(issuer=ISSUER, audience="billing", jwks_url=identity.jwks_url)
    assert not other_audience(token).ok
    other_issuer = make_verifier(
        issuer="http://elsewhere.test", audience="identity", jwks_url=identity.jwks_url
    )
    assert not other_issuer(token).ok


def test_the_python_service_answers_by_token_and_role(
    identity: Identity, people: dict[str, tuple[str, str]]
) -> None:
    verifier = tokens_module.TokenVerifier(
        issuer=ISSUER, audience="identity", jwks_url=identity.jwks_url
    )
    app = service_module.create_app(verifier, SERVICE_ORIGIN)
    bound = dpop_session(identity, "ann@example.com")

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            await check_service(client, people, bound)

    asyncio.run(run())


def test_the_node_service_answers_by_token_and_role(
    identity: Identity, people: dict[str, tuple[str, str]], node_workspace: Path
) -> None:
    env = {
        "PATH": str(Path(shutil.which("node") or "node").parent),
        "IDENTITY_ISSUER": ISSUER,
        "IDENTITY_JWKS_URL": identity.jwks_url,
        "PUBLIC_ORIGIN": SERVICE_ORIGIN,
        "PORT": "0",
    }
    bound = dpop_session(identity, "ann@example.com")
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=node_workspace, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        url = line.split()[-1]

        async def run() -> None:
            async with httpx.AsyncClient(base_url=url) as client:
                await check_service(client, people, bound)

        asyncio.run(run())
    finally:
        process.terminate()
        process.wait(timeout=10)


SERVICE_ORIGIN = "https://api.example.com"  # where the services say clients call them


def dpop_session(identity: Identity, email: str) -> tuple[Holder, str]:
    """A key and an access token bound to it."""
    holder = Holder(SystemClock())
    variables = {"i": {"email": email, "password": PASSWORD}}
    headers = {"DPoP": holder.proof(htu=f"{ISSUER}/graphql")}
    token: str = identity.graphql(LOGIN, variables, headers=headers)["data"]["login"]["accessToken"]
    return holder, token


async def check_service(
    client: httpx.AsyncClient, people: dict[str, tuple[str, str]], bound: tuple[Holder, str]
) -> None:
    ann_id, ann = people["ann@example.com"]
    ada_id, ada = people["ada@example.com"]
    anonymous = await client.get("/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    garbage = await client.get("/me", headers={"Authorization": "Bearer not.a.token"})
    assert garbage.status_code == 401
    me = await client.get("/me", headers={"Authorization": f"Bearer {ann}"})
    assert me.status_code == 200
    assert me.json() == {"userId": ann_id, "roles": ["user"], "aal": 1}
    refused = await client.get("/report", headers={"Authorization": f"Bearer {ann}"})
    assert refused.status_code == 403
    report = await client.get("/report", headers={"Authorization": f"Bearer {ada}"})
    assert report.status_code == 200
    assert report.json()["userId"] == ada_id
    # A second factor where money moves: ann signed in with a password only, mia with two.
    one_factor = await client.get("/payouts", headers={"Authorization": f"Bearer {ann}"})
    assert one_factor.status_code == 401
    assert one_factor.headers["www-authenticate"] == (
        'Bearer error="insufficient_user_authentication"'
    )
    mia_id, mia = people["mia@example.com"]
    payouts = await client.get("/payouts", headers={"Authorization": f"Bearer {mia}"})
    assert payouts.status_code == 200
    assert payouts.json() == {"payouts": [], "userId": mia_id, "aal": 2}
    # A DPoP-bound token: with a fresh proof for this service's /me, and nothing less.
    holder, token = bound
    proof = holder.proof(token, htm="GET", htu=f"{SERVICE_ORIGIN}/me")
    dpop = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert (await client.get("/me", headers=dpop)).json()["userId"] == ann_id
    assert (await client.get("/me", headers=dpop)).status_code == 401  # used already
    stolen = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert stolen.status_code == 401
    elsewhere = holder.proof(token, htm="GET", htu="https://other.example.com/me")
    other = {"Authorization": f"DPoP {token}", "DPoP": elsewhere, "Host": "other.example.com"}
    assert (await client.get("/me", headers=other)).status_code == 401


# ---- forged tokens ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forger() -> Iterator[Forger]:
    running = Forger()
    yield running
    running.close()


def test_a_consumer_refuses_what_identity_did_not_issue_for_it(
    forger: Forger, make_verifier: Callable[..., Verify]
) -> None:
    verify = make_verifier(issuer=ISSUER, audience="identity", jwks_url=forger.jwks_url)
    # The same key signs a good token, so every refusal below is for the reason named.
    assert verify(forger.sign(forger.claims())).ok
    accepted = [name for name, token in forgeries(forger).items() if verify(token).ok]
    assert not accepted, f"accepted: {accepted}"


def test_an_unknown_kid_waits_for_the_jwks_cache(
    forger: Forger, make_verifier: Callable[..., Verify]
) -> None:
    """A key that signs as soon as it is published (`identity keys revoke` makes one) is
    refused until the consumer's JWKS cache expires: within 30 s of a fetch, PyJWT (2.14+) and
    jose do not refetch for an unknown kid."""
    verify = make_verifier(
        issuer=ISSUER, audience="identity", jwks_url=forger.jwks_url, jwks_cache_seconds=2
    )
    assert verify(forger.sign(forger.claims())).ok
    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger.published["forge-2"] = fresh
    try:
        token = forger.sign(forger.claims(), kid="forge-2", key=fresh)
        refused = verify(token)
        assert not refused.ok
        wait_for(lambda: verify(token).ok, "the cache expires and the new kid is fetched", 10)
    finally:
        del forger.published["forge-2"]


# ---- DPoP-bound tokens --------------------------------------------------------------------


def test_a_dpop_bound_token_needs_a_fresh_proof_by_its_key(
    identity: Identity, make_verifier: Callable[..., Verify], request: pytest.FixtureRequest
) -> None:
    email = f"dpop-{request.node.callspec.id}@example.com"
    identity.user(email)
    holder, thief = Holder(SystemClock()), Holder(SystemClock())
    variables = {"i": {"email": email, "password": PASSWORD}}
    proof = holder.proof(htu=f"{ISSUER}/graphql")
    login = identity.graphql(LOGIN, variables, headers={"DPoP": proof})["data"]["login"]
    token = login["accessToken"]
    verify = make_verifier(issuer=ISSUER, audience="identity", jwks_url=identity.jwks_url)
    api = "https://api.example.com/me"  # where the service is called

    def dpop(proof: str) -> dict[str, str]:
        return {"proof": proof, "method": "GET", "url": api}

    assert not verify(token).ok  # as a bearer token: what a thief would try
    fresh = holder.proof(token, htm="GET", htu=api)
    assert verify(token, dpop(fresh)).ok
    assert "used already" in verify(token, dpop(fresh)).error
    refused = {
        "another key": thief.proof(token, htm="GET", htu=api),
        "no ath": holder.proof(htm="GET", htu=api),
        "another method": holder.proof(token, htm="POST", htu=api),
        "another URL": holder.proof(token, htm="GET", htu="https://other.example.com/me"),
        "stale": holder.proof(token, htm="GET", htu=api, age=300),
    }
    verdicts = {case: verify(token, dpop(bad)) for case, bad in refused.items()}
    assert not any(verdict.ok for verdict in verdicts.values()), verdicts
    # A bearer token is not accepted with the DPoP scheme either.
    plain = identity.sign_in(email)
    assert not verify(plain, dpop(holder.proof(plain, htm="GET", htu=api))).ok
    assert verify(plain).ok


# ---- key rotation and revocation ----------------------------------------------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


def test_a_rotation_reaches_the_consumer_before_the_new_key_signs(
    identity: Identity, make_verifier: Callable[..., Verify], request: pytest.FixtureRequest
) -> None:
    # Last in this module: it revokes the key that signed the tokens of the tests above.
    email = f"rotation-{request.node.callspec.id}@example.com"
    user_id = identity.user(email)
    old_token = identity.sign_in(email)
    # A JWKS cache of one second stands in for the default five minutes, which is
    # IDENTITY_JWKS_MAX_AGE: the time a new key is published before it signs.
    verify = make_verifier(
        issuer=ISSUER, audience="identity", jwks_url=identity.jwks_url, jwks_cache_seconds=1
    )
    assert verify(old_token).ok

    out = identity.cli("keys", "rotate", "--activate-in", "8")
    new_kid = out.split("published key ")[1].split(";")[0]

    def published() -> bool:
        keys = httpx.get(identity.jwks_url).json()["keys"]
        return new_kid in {key["kid"] for key in keys}

    wait_for(published, "the new key is in the JWKS")
    # Published, not signing yet: the consumers' caches have time to pick it up.
    assert kid_of(identity.sign_in(email)) == kid_of(old_token)

    new_tokens: list[str] = []

    def signs() -> bool:
        new_tokens.append(identity.sign_in(email))
        return kid_of(new_tokens[-1]) == new_kid

    wait_for(signs, "the new key signs")
    assert verify(new_tokens[-1]) == Verdict(True, user_id, ("user",), aal=1, amr=("pwd",))
    # The old key stays published until its last token has expired.
    assert verify(old_token).ok

    identity.cli("keys", "revoke", kid_of(old_token))
    # identity refuses the old key's tokens at once; the consumer once its JWKS cache has
    # expired and the revoked key is gone from the JWKS.
    answer = identity.graphql(ME, {}, old_token)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    wait_for(lambda: not verify(old_token).ok, "the consumer refuses the revoked key")
    assert verify(new_tokens[-1]).ok
