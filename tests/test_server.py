"""End to end: a real `identity serve` process, driven over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SECRET, Database, make_settings, reset_database

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, env: dict[str, str], cwd: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "identity", "serve", "--port", str(self.port)],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.log.read_text()


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(
        {
            "IDENTITY_DATABASE_URL": database_url,
            "IDENTITY_SECRET_KEY": SECRET,
            "IDENTITY_ARGON2_MEMORY_COST": "1024",
            "IDENTITY_ARGON2_TIME_COST": "1",
            "IDENTITY_PUBLIC_URL": "http://identity.test",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
async def server(database: Database, tmp_path: Path) -> AsyncIterator[Server]:
    running = Server(server_env(database.url), tmp_path)
    try:
        yield running
    finally:
        running.stop()
        await reset_database(make_settings(database.url, tmp_path))


def call(
    url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { __typename ... on RegisterSuccess { user { id email } } } }"""
LOGIN = """mutation($i: LoginInput!) { login(input: $i) { __typename ... on AuthPayload { accessToken refreshToken user { email } } } }"""
ME = "{ me { email firstName lastName roles { name } } }"
UPDATE_ME = """mutation($i: UpdateMeInput!) { updateMe(input: $i) { __typename ... on UpdateMeSuccess { user { firstName } } } }"""
REFRESH = """mutation($t: String) { refreshToken(input: {refreshToken: $t}) { __typename ... on AuthPayload { accessToken refreshToken } } }"""
CHANGE = """mutation($i: ChangePasswordInput!) { changePassword(input: $i) { __typename } }"""
LOGOUT = """mutation($t: String) { logout(input: {refreshToken: $t}) { __typename } }"""


async def test_walkthrough_against_a_running_server(server: Server) -> None:
    url = server.url
    new_user = {
        "email": "walk@example.com",
        "password": "walking passphrase",
        "firstName": "W",
        "lastName": "K",
    }
    assert (
        call(url, REGISTER, {"i": new_user})["data"]["register"]["__typename"] == "RegisterSuccess"
    )
    signed_in = call(
        url, LOGIN, {"i": {"email": "walk@example.com", "password": "walking passphrase"}}
    )
    tokens = signed_in["data"]["login"]
    assert call(url, ME, token=tokens["accessToken"])["data"]["me"]["email"] == "walk@example.com"
    updated = call(url, UPDATE_ME, {"i": {"firstName": "Walker"}}, token=tokens["accessToken"])
    assert updated["data"]["updateMe"]["user"]["firstName"] == "Walker"

    first = call(url, REFRESH, {"t": tokens["refreshToken"]})["data"]["refreshToken"]
    second = call(url, REFRESH, {"t": first["refreshToken"]})["data"]["refreshToken"]
    assert second["__typename"] == "AuthPayload"
    # Replaying the first refresh token (two rotations ago) is theft: the session ends.
    replay = call(url, REFRESH, {"t": tokens["refreshToken"]})["data"]["refreshToken"]
    assert replay["__typename"] == "InvalidToken"
    body = call(url, ME, token=second["accessToken"])
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    again = call(url, LOGIN, {"i": {"email": "walk@example.com", "password": "walking passphrase"}})
    tokens = again["data"]["login"]
    change = {"currentPassword": "walking passphrase", "newPassword": "running passphrase"}
    assert (
        call(url, CHANGE, {"i": change}, token=tokens["accessToken"])["data"]["changePassword"][
            "__typename"
        ]
        == "ChangePasswordSuccess"
    )
    assert (
        call(url, LOGOUT, {"t": tokens["refreshToken"]})["data"]["logout"]["__typename"]
        == "LogoutSuccess"
    )
    body = call(url, ME, token=tokens["accessToken"])
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    final = call(url, LOGIN, {"i": {"email": "walk@example.com", "password": "running passphrase"}})
    assert final["data"]["login"]["__typename"] == "AuthPayload"

    jwks = httpx.get(f"{url}/.well-known/jwks.json")
    assert jwks.headers["cache-control"].startswith("public, max-age=")
    assert httpx.get(f"{url}/ready").status_code == 200

    log = server.stop()
    for secret in (
        "walking passphrase",
        "running passphrase",
        tokens["refreshToken"],
        tokens["accessToken"],
    ):
        assert secret not in log


def test_development_serve_on_a_new_sqlite_file_migrates_and_generates_a_secret(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update({"IDENTITY_ARGON2_MEMORY_COST": "1024", "IDENTITY_ARGON2_TIME_COST": "1"})
    running = Server(env, tmp_path)
    try:
        assert (tmp_path / "identity.db").exists()
        assert (tmp_path / ".identity-secret").exists()
        new_user = {
            "email": "a@example.com",
            "password": "a fine passphrase",
            "firstName": "",
            "lastName": "",
        }
        assert (
            call(running.url, REGISTER, {"i": new_user})["data"]["register"]["__typename"]
            == "RegisterSuccess"
        )
        assert (
            httpx.get(f"{running.url}/graphql", headers={"Accept": "text/html"}).status_code == 200
        )
    finally:
        running.stop()


def test_production_serve_after_migrate_hides_graphiql_and_introspection(tmp_path: Path) -> None:
    env = server_env(
        f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}",
        IDENTITY_ENV="production",
        IDENTITY_MAIL_URL=f"file://{tmp_path / 'mail'}",
    )
    subprocess.run(
        [sys.executable, "-m", "identity", "migrate"], env=env, check=True, capture_output=True
    )
    running = Server(env, tmp_path)
    try:
        page = httpx.get(f"{running.url}/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 404
        body = call(running.url, "{ __schema { types { name } } }")
        assert "introspection" in body["errors"][0]["message"].lower()
        suggestion = call(running.url, "{ mee { id } }")
        assert "Did you mean" not in suggestion["errors"][0]["message"]
        # Variables are coerced at execution: no suggestions there either.
        typo = call(running.url, LOGIN, {"i": {"email": "a@b.co", "pasword": "x"}})
        assert "unknown field 'pasword'" in str(typo["errors"])
        assert "Did you mean" not in str(typo["errors"])
    finally:
        log = running.stop()
    assert '"level": "info"' in log or '"level":"info"' in log  # JSON lines in production


def test_shutdown_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    import signal
    import threading

    # A costly hash keeps the sign-in in flight while the server is told to stop.
    env = server_env(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        IDENTITY_ARGON2_MEMORY_COST="262144",
        IDENTITY_ARGON2_TIME_COST="4",
    )
    running = Server(env, tmp_path)
    new_user = {
        "email": "late@example.com",
        "password": "a fine passphrase",
        "firstName": "",
        "lastName": "",
    }
    assert (
        call(running.url, REGISTER, {"i": new_user})["data"]["register"]["__typename"]
        == "RegisterSuccess"
    )
    answers: list[Any] = []

    def sign_in() -> None:
        answers.append(
            call(
                running.url,
                LOGIN,
                {"i": {"email": "late@example.com", "password": "a fine passphrase"}},
            )
        )

    thread = threading.Thread(target=sign_in)
    thread.start()
    time.sleep(0.3)  # the hash is running now
    running.process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal: the process ends by SIGTERM.
    assert running.process.wait(timeout=60) in (0, -signal.SIGTERM)
    assert answers[0]["data"]["login"]["__typename"] == "AuthPayload"
    log = running.log.read_text()
    assert "mail sender stopped" in log
    assert "Traceback" not in log
