"""What the benchmark measures: each scenario builds a wrk load against a running identity.

Add one to SCENARIOS to measure something new; bench/run.py measures them in order.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import dpop, mfa, oauth, passkeys, procs, seed
from bench.loadgen import Load

ME_QUERY = "{ me { id email roles { name } } }"
USERS_PAGE_QUERY = (
    "{ users(first: 100) { edges { node { id email roles { name permissions { code } } "
    "permissions } } pageInfo { hasNextPage endCursor } } }"
)
LOGIN = (
    "mutation($i: LoginInput!) { login(input: $i) { __typename "
    "... on AuthPayload { accessToken refreshToken } } }"
)
LOGIN_EMAILS_MAX = 100_000  # the login scenario cycles through this many seeded users


@dataclass
class Bench:
    """What the scenarios need: options, the running server, files for the Lua scripts."""

    opts: argparse.Namespace
    work: Path
    server: procs.Process
    schema: str
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    cache: dict[str, Path] = field(default_factory=dict)
    serial: int = 0
    dsn: str = ""
    secret_key: str = ""
    mfa_users: list[mfa.MfaUser] = field(default_factory=list)
    dpop_sessions: list[tuple[dpop.Key, str]] = field(default_factory=list)
    passkey_users: list[passkeys.PasskeyUser] = field(default_factory=list)
    oauth_client: oauth.Client | None = None
    oauth_users: list[oauth.Signer] = field(default_factory=list)

    def file(self, name: str, lines: list[str]) -> Path:
        self.serial += 1
        path = self.work / f"{self.serial:03d}-{name}"
        path.write_text("\n".join(lines) + "\n")
        return path

    def once(self, key: str, make: Callable[[], list[str]]) -> Path:
        if key not in self.cache:
            self.cache[key] = self.file(key, make())
        return self.cache[key]

    def login(self, emails: list[str]) -> list[tuple[str, str]]:
        """(access token, refresh token) for each address, signing in through the API."""

        def one(client: httpx.Client, email: str) -> tuple[str, str]:
            variables = {"i": {"email": email, "password": seed.PASSWORD}}
            body = client.post("/graphql", json={"query": LOGIN, "variables": variables}).json()
            payload = (body.get("data") or {}).get("login") or {}
            if payload.get("__typename") != "AuthPayload":
                raise RuntimeError(f"login {email} failed: {body}")
            return payload["accessToken"], payload["refreshToken"]

        with (
            httpx.Client(base_url=self.server.url, timeout=60) as client,
            ThreadPoolExecutor(8) as pool,
        ):
            return list(pool.map(lambda email: one(client, email), emails))

    def some_users(self, count: int) -> list[str]:
        total = self.opts.users
        return [seed.user_email(i) for i in random.sample(range(total), min(count, total))]


# Scenarios: each builds a wrk load; add one to SCENARIOS to measure something new. ---------


def me_load(b: Bench) -> Load:
    """Access tokens of distinct users, one per connection; the floor gets the same ones."""
    query = b.once("me.graphql", lambda: [ME_QUERY])
    tokens = b.once("me-tokens", lambda: [a for a, _ in b.login(b.some_users(b.opts.connections))])
    return Load("graphql.lua", [str(query), str(tokens), '"me":{"id"'], b.opts.connections)


def login_load(b: Bench) -> Load:
    emails = b.once("login-emails", lambda: b.some_users(LOGIN_EMAILS_MAX))
    return Load("login.lua", [str(emails), seed.PASSWORD], b.opts.login_connections)


def refresh_load(b: Bench) -> Load:
    # Fresh sessions for every run, since a used chain cannot be replayed; a few spare heads
    # because wrk calls request() once before it starts, to look for pipelining.
    sessions = b.login(b.some_users(b.opts.connections + 4))
    tokens = b.file("refresh-tokens", [refresh for _, refresh in sessions])
    return Load("refresh.lua", [str(tokens), str(b.opts.threads)], b.opts.connections)


MFA_RATE_GUESS = 1500  # verifyMfa requests/s to prepare pairs for: more than it reaches


def verify_mfa_load(b: Bench) -> Load:
    """A fresh (mfaToken, code) pair per request, from accounts not used before."""
    if mfa.step_left() < 2 + b.opts.duration / 3:
        time.sleep(mfa.step_left())  # codes of a new step stay good for the whole run
    wanted = int(MFA_RATE_GUESS * b.opts.duration)
    users, b.mfa_users = b.mfa_users[:wanted], b.mfa_users[wanted:]
    if not users:
        raise RuntimeError("no MFA accounts left: raise --mfa-users")
    lines = asyncio.run(mfa.pending_sign_ins(b.dsn, users, b.secret_key))
    pairs = b.file("mfa-pairs", lines)
    return Load("mfa.lua", [str(pairs), str(b.opts.threads)], b.opts.connections)


DPOP_RATE_GUESS = 4000  # DPoP `me` requests/s to make proofs for: more than it reaches


def me_dpop_load(b: Bench) -> Load:
    """`me` with DPoP-bound tokens, one session per connection, a new proof per request."""
    query = b.once("me.graphql", lambda: [ME_QUERY])
    if not b.dpop_sessions:
        b.dpop_sessions = dpop.bound_sessions(
            b.server.url, b.some_users(b.opts.connections), seed.PASSWORD
        )
    per_session = int(DPOP_RATE_GUESS * b.opts.duration / len(b.dpop_sessions)) + 2
    lines = dpop.proof_lines(b.dpop_sessions, f"{b.server.url}/graphql", per_session)
    proofs = b.file("dpop-proofs", lines)
    return Load("dpop.lua", [str(query), str(proofs), str(b.opts.threads)], b.opts.connections)


PASSKEY_USERS = 500
PASSKEY_RATE_GUESS = 1500  # finishPasskeyLogin requests/s to answer challenges for


def passkey_login_load(b: Bench) -> Load:
    """A fresh challenge per request, answered by the accounts' passkeys in turn."""
    wanted = int(PASSKEY_RATE_GUESS * b.opts.duration)
    port = int(b.server.url.rsplit(":", 1)[1])
    bodies = asyncio.run(
        passkeys.answered_challenges(b.dsn, b.passkey_users, wanted, b.secret_key, port)
    )
    path = b.file("passkey-answers", bodies)
    return Load("passkey.lua", [str(path), str(b.opts.threads)], b.opts.connections)


OAUTH_RATE_GUESS = 1500  # code exchanges per second to write codes for: more than it reaches


def oauth_code_load(b: Bench) -> Load:
    """A fresh authorization code per request, exchanged with its PKCE verifier."""
    assert b.oauth_client is not None, "main() registers the client"
    wanted = int(OAUTH_RATE_GUESS * b.opts.duration)
    bodies = asyncio.run(oauth.codes(b.dsn, b.oauth_client, b.oauth_users, wanted, b.secret_key))
    path = b.file("oauth-codes", bodies)
    return Load("oauth-code.lua", [str(path), str(b.opts.threads)], b.opts.connections)


def register_load(b: Bench) -> Load:
    b.serial += 1  # a new tag each run: every address is new
    return Load("register.lua", [f"{b.tag}{b.serial}", seed.PASSWORD], b.opts.login_connections)


def users_page_load(b: Bench) -> Load:
    query = b.once("users.graphql", lambda: [USERS_PAGE_QUERY])
    token = b.once("admin-token", lambda: [b.login([seed.ADMIN_EMAIL])[0][0]])
    return Load("graphql.lua", [str(query), str(token), '"edges"'], b.opts.connections)


def no_users_field(b: Bench) -> str | None:
    if re.search(r"type Query \{[^}]*\busers\(", b.schema):
        return None
    return "skipped: the schema has no `users` field yet (issue 4)"


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    load: Callable[[Bench], Load]
    background: Callable[[Bench], Load] | None = None  # started first, runs beside it
    skip: Callable[[Bench], str | None] = lambda _: None  # a reason to skip, or None
    warmup: bool = True


SCENARIOS = [
    Scenario("me", "`me { id email roles { name } }`", me_load),
    Scenario("login", "`login` (right password)", login_load),
    Scenario("refresh", "`refreshToken` (rotating chains)", refresh_load),
    Scenario(
        "users-page",
        "`users(first: 100)` as admin, with roles and permissions",
        users_page_load,
        skip=no_users_field,
    ),
    Scenario("register", "`register` (a new address each)", register_load),
    Scenario("verify-mfa", "`verifyMfa` with a TOTP code", verify_mfa_load),
    Scenario("me-dpop", "`me` with a DPoP-bound token and a fresh proof", me_dpop_load),
    Scenario("passkey-login", "`finishPasskeyLogin` (a passkey alone)", passkey_login_load),
    Scenario(
        "oauth-code",
        "`/oauth2/token`: an authorization code with PKCE, access and ID token",
        oauth_code_load,
    ),
    Scenario(
        "me-under-login-flood",
        "`me` during a login flood",
        me_load,
        background=login_load,
        warmup=False,
    ),
]
