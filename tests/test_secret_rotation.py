"""Rotating the server secret with real processes: a wrong secret at start-up, `identity
secret check | reencrypt`, and the three-phase rotation on two instances without sign-out
(the walk-through of docs/guides/secret-rotation.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from identity.container import Container
from identity.db import migrate
from identity.repositories.sealed import SEALED_COLUMNS
from tests.conftest import (
    PASSWORD,
    Database,
    Inbox,
    make_settings,
    reset_database,
    scalar,
    token_in,
)
from tests.test_cli import clean_env, run
from tests.test_server import Server, server_env

pytestmark = pytest.mark.slow

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40
OTHER = "other-secret-" + "x" * 40

REGISTER = """mutation($e: String!, $p: String!) { register(input: {email: $e, password: $p,
  firstName: "", lastName: ""}) { __typename } }"""
LOGIN = """mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) {
  __typename ... on AuthPayload { accessToken refreshToken } } }"""
REFRESH = """mutation($t: String) { refreshToken(input: {refreshToken: $t}) {
  __typename ... on AuthPayload { accessToken refreshToken } } }"""
ME = "{ me { email } }"
REQUEST_RESET = "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { __typename } }"
RESET = """mutation($t: String!) { resetPassword(input: {token: $t, password: "a new passphrase!",
  passwordConfirm: "a new passphrase!"}) { __typename } }"""


def call(url: str, query: str, variables: dict[str, Any] | None = None, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"query": query, "variables": variables or {}}
    response = httpx.post(f"{url}/graphql", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return next(iter(data.values()))


def secrets_env(env: dict[str, str], current: str, *fallbacks: str) -> dict[str, str]:
    return {
        **env,
        "IDENTITY_SECRET_KEY": current,
        "IDENTITY_SECRET_KEY_FALLBACKS": ",".join(fallbacks),
    }


def serve_fails(env: dict[str, str], cwd: Path) -> str:
    """Start `identity serve`, expect it to stop at once: its standard error."""
    process = subprocess.run(
        [sys.executable, "-m", "identity", "serve", "--port", "0"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 2, process.stderr
    assert process.stdout == ""
    return process.stderr


def assert_one_line_naming_the_problem(stderr: str) -> None:
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("identity: configuration error: ")
    assert "IDENTITY_SECRET_KEY" in stderr
    assert "IDENTITY_SECRET_KEY_FALLBACKS" in stderr
    assert "Traceback" not in stderr
    for secret in (OLD, NEW, OTHER):
        assert secret not in stderr


# A wrong secret at start-up ---------------------------------------------------------------------


async def migrate_revision(url: str, tmp_path: Path) -> str | None:
    container = Container.create(make_settings(url, tmp_path))
    try:
        return await migrate.current_revision(container.engine)
    finally:
        await container.close()


async def keys_sealed_under(database_url: str, tmp_path: Path, secret: str, count: int) -> None:
    """Signing keys made by a process whose secret is `secret` (in this one, to save time)."""
    container = Container.create(make_settings(database_url, tmp_path, secret_key=secret))
    try:
        for _ in range(count):
            async with container.unit_of_work() as uow:
                await container.keys.rotate(uow, activate_in=0)
    finally:
        await container.close()


async def test_a_secret_that_opens_no_signing_key_stops_the_server_with_one_line(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await asyncio.to_thread(migrate.upgrade, url, "0004")  # a migration behind: no data keys
    await keys_sealed_under(url, tmp_path, OLD, 1)
    env = clean_env(IDENTITY_DATABASE_URL=url)
    # Checked before the migration a development server would run.
    behind = serve_fails(secrets_env(env, NEW), tmp_path)
    assert_one_line_naming_the_problem(behind)
    assert await migrate_revision(url, tmp_path) == "0004"  # nothing was migrated
    await asyncio.to_thread(migrate.upgrade, url)

    for wrong in (secrets_env(env, NEW), secrets_env(env, NEW, OTHER)):
        stderr = serve_fails(wrong, tmp_path)
        assert_one_line_naming_the_problem(stderr)
        assert "open none of the 1 signing keys in the database" in stderr
        assert "`identity secret check`" in stderr
        # Other commands that need the keys say the same kind of line.
        listed = run(["keys", "list"], wrong, cwd=tmp_path)
        assert listed.returncode == 2
        assert_one_line_naming_the_problem(listed.stderr)
    # In production too (no migration at start, JSON logs).
    production = {
        **secrets_env(env, NEW),
        "IDENTITY_ENV": "production",
        "IDENTITY_MAIL_URL": f"file://{tmp_path / 'mail'}",
    }
    assert_one_line_naming_the_problem(serve_fails(production, tmp_path))


# `identity secret check | reencrypt` -------------------------------------------------------------


@pytest.fixture
async def cli_env(database: Database, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    env = clean_env(
        IDENTITY_DATABASE_URL=database.url,
        IDENTITY_ARGON2_MEMORY_COST="1024",
        IDENTITY_ARGON2_TIME_COST="1",
    )
    yield env
    await reset_database(make_settings(database.url, tmp_path))


def table(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    header = lines[0].split("  ")
    assert header[0].startswith("SEALED")
    rows = {}
    for line in lines[1:]:
        if line.startswith("identity:"):
            break
        name, *counts = line.rsplit(None, len([h for h in header[1:] if h.strip()]))
        rows[name.strip()] = counts
    return rows


async def test_secret_check_and_reencrypt(
    cli_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    await keys_sealed_under(database.url, tmp_path, OLD, 3)
    outputs = []

    alone = run(["secret", "check"], secrets_env(cli_env, NEW))
    outputs.append(alone)
    assert alone.returncode == 1
    assert alone.stdout.split("\n")[0].split() == ["SEALED", "ROWS", "CURRENT", "NONE"]
    assert table(alone.stdout)["signing keys"] == ["3", "0", "3"]
    assert "3 sealed values open with no secret given" in alone.stderr

    # Fallbacks are named by their place in IDENTITY_SECRET_KEY_FALLBACKS, never shown.
    phase_2 = secrets_env(cli_env, NEW, OTHER, OLD)
    checked = run(["secret", "check"], phase_2)
    outputs.append(checked)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.split("\n")[0].split("  ")[-3:] == ["FALLBACK 1", "FALLBACK 2", "NONE"]
    assert table(checked.stdout)["signing keys"] == ["3", "0", "0", "3", "0"]
    assert "3 open only with a fallback: run `identity secret reencrypt`" in checked.stdout

    resealed = run(["secret", "reencrypt", "--batch-size", "2"], phase_2)  # two batches
    outputs.append(resealed)
    assert resealed.returncode == 0, resealed.stderr
    assert "signing keys: 3 re-sealed under IDENTITY_SECRET_KEY, 0 were already" in resealed.stdout
    again = run(["secret", "reencrypt"], phase_2)  # idempotent
    outputs.append(again)
    assert "signing keys: 0 re-sealed under IDENTITY_SECRET_KEY, 3 were already" in again.stdout

    after = run(["secret", "check"], secrets_env(cli_env, NEW))
    outputs.append(after)
    assert after.returncode == 0
    assert table(after.stdout)["signing keys"] == ["3", "3", "0"]

    stranded = run(["secret", "reencrypt"], secrets_env(cli_env, OLD))
    outputs.append(stranded)
    assert stranded.returncode == 1
    assert "3 sealed values open with no secret given: left as they are" in stranded.stderr
    for output in outputs:
        for secret in (OLD, NEW, OTHER):
            assert secret not in output.stdout + output.stderr

    bad = run(["secret", "reencrypt", "--batch-size", "0"], secrets_env(cli_env, NEW))
    assert bad.returncode == 2
    assert "must be at least 1" in bad.stderr


async def test_reencrypt_leaves_a_value_a_server_changed_meanwhile(container: Container) -> None:
    """The compare-and-set: a value replaced after it was read is not overwritten."""
    column = SEALED_COLUMNS[0]
    async with container.unit_of_work() as uow:
        [row] = await uow.sealed.page(column, None, 10)
        was = row.private_key
        await uow.release()
    async with container.unit_of_work() as uow:  # a server writes a newer value
        assert await uow.sealed.store(column, row, b"newer", was=was)
        await uow.commit()
    async with container.unit_of_work() as uow:  # the re-sealing read the older one
        assert not await uow.sealed.store(column, row, b"re-sealed older", was=was)
        await uow.commit()
    stored = await scalar(container, "SELECT private_key FROM signing_keys")
    assert bytes(stored) == b"newer"
    async with container.unit_of_work() as uow:  # put the key back for the app's shutdown
        assert await uow.sealed.store(column, row, was, was=b"newer")
        await uow.commit()


# The three phases on two instances -------------------------------------------------------------


class User:
    """A signed-in user who keeps refreshing, on whichever instance answers."""

    def __init__(self, url: str, email: str) -> None:
        assert call(url, REGISTER, {"e": email, "p": PASSWORD})["__typename"] == "RegisterSuccess"
        signed_in = call(url, LOGIN, {"e": email, "p": PASSWORD})
        self.email = email
        self.access, self.refresh = signed_in["accessToken"], signed_in["refreshToken"]

    def keeps_working(self, *urls: str) -> None:
        for url in urls:
            rotated = call(url, REFRESH, {"t": self.refresh})
            assert rotated["__typename"] == "AuthPayload", (url, rotated)
            self.access, self.refresh = rotated["accessToken"], rotated["refreshToken"]
            for other in urls:
                assert call(other, ME, token=self.access)["email"] == self.email


async def test_three_phase_rotation_on_two_instances_signs_nobody_out(
    database: Database, smtp: Inbox, tmp_path: Path
) -> None:
    if database.backend != "postgresql":
        pytest.skip("several instances share PostgreSQL")
    base = server_env(
        database.url,
        IDENTITY_MAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
        IDENTITY_MAIL_POLL_INTERVAL="0.2",
        IDENTITY_KEY_REFRESH_INTERVAL="1",
        IDENTITY_AUTO_MIGRATE="false",
    )
    logs: list[str] = []
    servers: dict[str, Server] = {}

    def restart(name: str, current: str, *fallbacks: str) -> str:
        """One step of a rolling restart: this instance only, the other keeps serving."""
        old = servers.get(name)
        port = None
        if old is not None:
            logs.append(old.stop())
            port = old.port
        servers[name] = Server(secrets_env(base, current, *fallbacks), tmp_path, port=port)
        return servers[name].url

    def mailed_link(url: str, email: str, count: int) -> str:
        assert call(url, REQUEST_RESET, {"e": email})["__typename"] == (
            "RequestPasswordResetSuccess"
        )
        for _ in range(200):
            messages = [m for m in smtp.to(email) if "Reset your" in m["Subject"]]
            if len(messages) >= count:
                return token_in(messages[-1])
            httpx.get(f"{url}/health")  # a moment for the sender, without sleeping blind
        raise AssertionError(f"no reset mail for {email}")

    try:
        a, b = restart("a", OLD), restart("b", OLD)
        active = User(a, "active@example.com")
        idle = User(b, "idle@example.com")  # signs in once, then never comes back
        User(a, "reader@example.com")
        User(a, "forgetful@example.com")
        read_in_phase_2 = mailed_link(a, "reader@example.com", 1)
        never_used = mailed_link(b, "forgetful@example.com", 1)
        active.keeps_working(a, b)

        # Phase 1: the new secret as a fallback everywhere, one instance at a time.
        a = restart("a", OLD, NEW)
        active.keeps_working(a, b)
        b = restart("b", OLD, NEW)
        active.keeps_working(b, a)

        # Phase 2: the new secret current, the old one a fallback. While it rolls, each
        # instance opens what the other makes.
        a = restart("a", NEW, OLD)
        active.keeps_working(a, b, a)
        b = restart("b", NEW, OLD)
        active.keeps_working(b, a)
        # A link mailed before the rotation still works.
        assert call(b, RESET, {"t": read_in_phase_2})["__typename"] == "ResetPasswordSuccess"

        # Before phase 3: the signing keys are still sealed under the old secret, so an
        # instance without it would not start.
        phase_3 = secrets_env(base, NEW)
        stderr = serve_fails(phase_3, tmp_path)
        assert "open none of the 1 signing keys" in stderr, stderr
        checked = run(["secret", "check"], secrets_env(base, NEW, OLD))
        assert table(checked.stdout)["signing keys"] == ["1", "0", "1", "0"]
        resealed = run(["secret", "reencrypt"], secrets_env(base, NEW, OLD))
        assert "1 re-sealed under IDENTITY_SECRET_KEY" in resealed.stdout, resealed.stderr
        active.keeps_working(a, b)  # re-sealing while both run changes nothing for them

        # Phase 3: the old secret dropped.
        a = restart("a", NEW)
        active.keeps_working(a, b)
        b = restart("b", NEW)
        active.keeps_working(b, a, b)

        # What phase 3 ends: what the old secret made and phase 2 did not renew.
        assert call(a, REFRESH, {"t": idle.refresh})["__typename"] == "InvalidToken"
        assert call(b, RESET, {"t": never_used})["__typename"] == "InvalidToken"
        # Their owners are not locked out: they sign in again, or ask for a new link.
        assert call(b, LOGIN, {"e": idle.email, "p": PASSWORD})["__typename"] == "AuthPayload"
        fresh = mailed_link(a, "forgetful@example.com", 2)
        assert call(b, RESET, {"t": fresh})["__typename"] == "ResetPasswordSuccess"
    finally:
        for server in servers.values():
            logs.append(server.stop())
        await reset_database(make_settings(database.url, tmp_path))
    for log in logs:
        assert "Traceback" not in log
        for secret in (OLD, NEW):
            assert secret not in log
