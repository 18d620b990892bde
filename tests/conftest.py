"""Fixtures: a real database per backend (SQLite and PostgreSQL), the app over HTTP, a clock.

Every test that uses `client` runs once on SQLite and once on PostgreSQL. PostgreSQL comes
from IDENTITY_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/postgres); each
test session creates its own database there and drops it at the end. Without a reachable
server the PostgreSQL runs are skipped, and said so, unless IDENTITY_TEST_REQUIRE_POSTGRES=1
(as in CI), which makes that an error.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import delete, func, select, text, update
from starlette.applications import Starlette

from identity.app import create_app
from identity.clock import FrozenClock
from identity.config import Settings
from identity.container import Container
from identity.db import migrate, models
from tests import nodetools

POSTGRES_ADMIN = os.environ.get(
    "IDENTITY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("IDENTITY_TEST_REQUIRE_POSTGRES") == "1"
REDIS_URL = os.environ.get("IDENTITY_TEST_REDIS", "redis://127.0.0.1:6379/15")
REQUIRE_REDIS = os.environ.get("IDENTITY_TEST_REQUIRE_REDIS") == "1"
SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery staple"
GENEROUS_LIMITS = (
    "login_account",
    "login_address",
    "register_address",
    "register_email",
    "recovery_address",
    "recovery_email",
    "mfa_account",
    "passkey_address",
    "passkey_credential",
    "external_address",
)

_postgres_problem: str | None = None


def _check_postgres() -> str | None:
    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def pytest_configure(config: pytest.Config) -> None:
    global _postgres_problem
    _postgres_problem = _check_postgres()
    if _postgres_problem and REQUIRE_POSTGRES:
        raise pytest.UsageError(
            f"IDENTITY_TEST_REQUIRE_POSTGRES=1 but PostgreSQL at {POSTGRES_ADMIN} is not "
            f"reachable ({_postgres_problem})"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own summary: the last lines say what was tested and what was not."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    if _postgres_problem:
        reporter.write_line(
            f"PostgreSQL tests were SKIPPED: no server at {POSTGRES_ADMIN} ({_postgres_problem}). "
            "Only SQLite was tested.",
            yellow=True,
            bold=True,
        )
    else:
        reporter.write_line("Database tests ran on SQLite and on PostgreSQL.", green=True)
    for what, problem in nodetools.skipped.items():
        reporter.write_line(f"{what} were SKIPPED: {problem}.", yellow=True, bold=True)


async def _redis_reachable() -> bool:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception:
        return False
    finally:
        await client.aclose()
    return True


@pytest.fixture
async def redis_url() -> str:
    if not await _redis_reachable():
        if REQUIRE_REDIS:
            pytest.fail(f"IDENTITY_TEST_REQUIRE_REDIS=1 but Redis at {REDIS_URL} is not reachable")
        nodetools.skipped["Redis tests"] = f"no Redis at {REDIS_URL}"
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    return REDIS_URL


@dataclass(frozen=True)
class Database:
    backend: str
    url: str


async def create_postgres_database() -> tuple[str, str]:
    name = f"identity_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def drop_postgres_database(name: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Database]:
    if request.param == "postgresql":
        if _postgres_problem:
            pytest.skip(f"PostgreSQL not reachable: {_postgres_problem}")
        name, url = await create_postgres_database()
        try:
            await asyncio.to_thread(migrate.upgrade, url)
            yield Database("postgresql", url)
        finally:
            await drop_postgres_database(name)
    else:
        path = tmp_path_factory.mktemp("sqlite") / "identity.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate.upgrade, url)
        yield Database("sqlite", url)


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": SECRET,
        "secret_key_file": tmp_path / "secret",
        "auto_migrate": False,
        # Cheap hashing keeps the suite fast; the default parameters have their own test.
        "argon2_memory_cost": 1024,
        "argon2_time_cost": 1,
        "password_hash_concurrency": 2,
        "public_url": "http://testserver",
        "database_pool_size": 5,
        "gc_freeze": False,  # many apps start in one test process
        # Many accounts from one address: the rate-limit tests set their own bounds.
        **{f"rate_limit_{rule}": "10000/minute" for rule in GENEROUS_LIMITS},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def limits_clock(clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Make the in-memory rate limits read the test's clock (windows pass without sleeping).

    The clock starts a second into a new hour: the sliding-window counters weigh the previous
    window by how much of it is left, and the tests' arithmetic assumes no window boundary.
    """
    import limits.aio.storage.memory as memory
    import limits.aio.strategies as strategies

    import identity.security.ratelimit as ratelimit

    now = clock.now().timestamp()
    clock.advance(3600 - now % 3600 + 1)
    shim = SimpleNamespace(
        time=lambda: clock.now().timestamp(), monotonic=lambda: clock.now().timestamp()
    )
    for module in (memory, strategies, ratelimit):
        monkeypatch.setattr(module, "time", shim)
    return clock


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with pytest.mark.parametrize) to change settings."""
    return {}


@pytest.fixture
def mail_settings(tmp_path: Path) -> dict[str, Any]:
    """Where mail goes; modules that read mail override this with `settings_with_smtp`."""
    return {"mail_url": f"file://{tmp_path / 'mail'}"}


@pytest.fixture
def settings(
    database: Database,
    tmp_path: Path,
    mail_settings: dict[str, Any],
    settings_overrides: dict[str, Any],
) -> Settings:
    return make_settings(database.url, tmp_path, **{**mail_settings, **settings_overrides})


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Starlette]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application
    await reset_database(settings)


@pytest.fixture
def container(app: Starlette) -> Container:
    result: Container = app.state.container
    return result


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def reset_database(settings: Settings) -> None:
    """Back to the migrated state: seeded roles and permissions, nothing else."""
    container = Container.create(settings)
    try:
        async with container.writes() as db:
            for table in reversed(models.Base.metadata.sorted_tables):
                if table.name in ("permissions", "roles", "role_permissions"):
                    continue
                await db.execute(delete(table))
            await db.execute(delete(models.Role).where(models.Role.is_system.is_(False)))
            await db.execute(update(models.Role).values(requires_mfa=False))
            await db.execute(delete(models.RolePermission))
            admin = await db.scalar(select(models.Role.id).where(models.Role.name == "admin"))
            codes = (await db.execute(select(models.Permission.code))).scalars().all()
            db.add_all(models.RolePermission(role_id=admin, permission_code=c) for c in codes)
            await db.commit()
    finally:
        await container.close()


# Helpers --------------------------------------------------------------------------------


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=all_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if not expect_errors:
            assert "errors" not in body, body["errors"]
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


REGISTER = """
mutation Register($input: RegisterInput!) {
  register(input: $input) {
    __typename
    ... on RegisterSuccess { user { id email firstName lastName isVerified roles { name } } }
    ... on ValidationError { message fields { field code message } }
    ... on Error { message }
  }
}
"""

LOGIN = """
mutation Login($input: LoginInput!) {
  login(input: $input) {
    __typename
    ... on AuthPayload { accessToken refreshToken tokenType expiresIn user { id email } }
    ... on ValidationError { fields { field code } }
    ... on RateLimited { retryAfter }
    ... on Error { message }
  }
}
"""


@dataclass
class SignedIn:
    user_id: str
    email: str
    access_token: str
    refresh_token: str


async def register(
    gql: GraphQLClient, email: str = "ann@example.com", password: str = PASSWORD, **names: str
) -> dict[str, Any]:
    data = {
        "email": email,
        "password": password,
        "firstName": names.get("first_name", "Ann"),
        "lastName": names.get("last_name", "Lee"),
    }
    result = (await gql(REGISTER, {"input": data}))["data"]["register"]
    assert result["__typename"] == "RegisterSuccess", result
    user: dict[str, Any] = result["user"]
    return user


async def login(
    gql: GraphQLClient, email: str = "ann@example.com", password: str = PASSWORD
) -> SignedIn:
    result = (await gql(LOGIN, {"input": {"email": email, "password": password}}))["data"]["login"]
    assert result["__typename"] == "AuthPayload", result
    return SignedIn(
        user_id=result["user"]["id"],
        email=result["user"]["email"],
        access_token=result["accessToken"],
        refresh_token=result["refreshToken"],
    )


async def signed_up(gql: GraphQLClient, email: str = "ann@example.com") -> SignedIn:
    await register(gql, email)
    return await login(gql, email)


async def row_counts(container: Container, *, ignore: tuple[str, ...] = ()) -> dict[str, int]:
    """How many rows each table holds: for "nothing changed" assertions."""
    counts = {}
    async with container.reads() as db:
        for table in models.Base.metadata.sorted_tables:
            if table.name in ignore:
                continue
            counts[table.name] = int(await db.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def scalar(container: Container, sql: str, **params: Any) -> Any:
    async with container.reads() as db:
        return await db.scalar(text(sql), params)


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(os.environ.get("IDENTITY_TEST_ARTIFACTS", "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# Mail ------------------------------------------------------------------------------------


class Inbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = _free_port()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    inbox = Inbox()
    inbox.start()
    yield inbox
    inbox.stop()


@pytest.fixture
def settings_with_smtp(smtp: Inbox) -> dict[str, Any]:
    return {"mail_url": f"smtp://127.0.0.1:{smtp.port}"}


async def wait_for_mail(
    container: Container,
    inbox: Inbox,
    address: str,
    count: int = 1,
    timeout: float = 10,
    subject: str = "",
) -> list[EmailMessage]:
    """Deliver what is due and wait until `address` has `count` messages (about `subject`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await container.mail.deliver_due()
        found = [m for m in inbox.to(address) if subject in m["Subject"]]
        if len(found) >= count:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{address} got {len(found)} of {count} messages")
        await asyncio.sleep(0.05)


async def settle_outbox(container: Container, timeout: float = 10) -> None:
    """Until every outbox entry is done (by this call or the app's own sender, whichever)."""
    pending = "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL AND failed_at IS NULL"
    deadline = asyncio.get_running_loop().time() + timeout
    while await scalar(container, pending):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the outbox did not settle")
        await container.mail.deliver_due()
        await asyncio.sleep(0.05)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def token_in(message: EmailMessage) -> str:
    match = re.search(r"#token=([A-Za-z0-9_-]+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)
