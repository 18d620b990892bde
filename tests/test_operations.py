"""Operating identity: metrics, logs, a database outage, several instances on one PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from identity.app import create_app
from identity.clock import FrozenClock
from identity.container import Container
from identity.db.models import OutboxMessage
from identity.logs import JSONFormatter
from identity.services.mail import MailChannel
from identity.services.outbox import Courier
from tests.conftest import (
    LOGIN,
    PASSWORD,
    REGISTER,
    Database,
    GraphQLClient,
    Inbox,
    make_settings,
    reset_database,
    scalar,
    signed_up,
)
from tests.tcpproxy import TCPProxy
from tests.test_server import Server, server_env
from tests.webhook_helpers import CREATE as CREATE_ENDPOINT
from tests.webhook_helpers import Receiver, sync_receivers_with


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"metrics_token": "metrics-secret-token"}


async def test_metrics_need_the_bearer_token(client: httpx.AsyncClient, gql: GraphQLClient) -> None:
    await signed_up(gql)
    await gql(
        "query Profile { me { id } }", headers={"Authorization": "Bearer nope"}, expect_errors=True
    )
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    response = await client.get(
        "/metrics", headers={"Authorization": "Bearer metrics-secret-token"}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    text = response.text
    assert 'identity_logins_total{outcome="success"}' in text
    assert 'identity_graphql_request_duration_seconds_count{operation="Login",outcome="ok"}' in text
    assert 'operation="Profile",outcome="UNAUTHENTICATED"' in text
    assert "identity_db_pool_connections" in text
    assert "identity_outbox_pending" in text


async def test_operation_names_cannot_flood_the_metrics(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        await gql(f"query Weird_{uuid.uuid4().hex} {{ me {{ id }} }}")
    await gql("query Evil { me { id } }", headers={})
    # A name that names no operation of the document is no label either.
    for n in range(3):
        body = {"query": "{ __typename }", "operationName": f"Junk{n}"}
        assert (await client.post("/graphql", json=body)).status_code == 200
    response = await client.get(
        "/metrics", headers={"Authorization": "Bearer metrics-secret-token"}
    )
    assert 'operation="Evil"' in response.text
    assert "Junk" not in response.text
    from identity import metrics

    assert metrics.operation_label("x" * 65) == "other"
    assert metrics.operation_label('a"b') == "other"


async def test_access_log_names_operation_user_and_outcome(
    gql: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    user = await signed_up(gql)
    caplog.set_level(logging.INFO, logger="identity.access")
    await gql(
        "query Profile { me { id } }", token=user.access_token, headers={"X-Request-ID": "trace-1"}
    )
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == "trace-1")
    assert record.operation == "Profile"  # type: ignore[attr-defined]
    assert record.outcome == "ok"  # type: ignore[attr-defined]
    assert record.user_id == user.user_id  # type: ignore[attr-defined]
    assert record.client == "203.0.113.7"  # type: ignore[attr-defined]
    assert user.access_token not in caplog.text
    await gql(LOGIN, {"input": {"email": user.email, "password": "not it at all"}})
    assert any(getattr(r, "outcome", None) == "InvalidCredentials" for r in caplog.records)


def test_json_log_lines_keep_extras_and_drop_terminal_colours() -> None:
    record = logging.makeLogRecord(
        {
            "name": "uvicorn.error",
            "levelname": "INFO",
            "msg": "Uvicorn running on %s",
            "args": ("http://127.0.0.1:8000",),
            "color_message": "Uvicorn running on \x1b[1m%s\x1b[0m",
            "request_id": "trace-2",
        }
    )
    line = orjson.loads(JSONFormatter().format(record))
    assert line["message"] == "Uvicorn running on http://127.0.0.1:8000"
    assert line["request_id"] == "trace-2"
    assert line["level"] == "info"
    assert "color_message" not in line


async def test_database_errors_never_carry_the_bound_values(container: Container) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as raised:
        async with container.reads() as db:
            await db.execute(
                text("SELECT * FROM no_such_table WHERE secret = :s"),
                {"s": "$argon2id$v=19$a-password-hash"},
            )
    assert "no_such_table" in str(raised.value)
    assert "a-password-hash" not in str(raised.value)


# A database outage --------------------------------------------------------------------------


async def test_database_outage_answers_cleanly_and_recovers(
    database: Database, tmp_path: Path
) -> None:
    if database.backend != "postgresql":
        pytest.skip("the outage is staged with a TCP proxy in front of PostgreSQL")
    host_port = database.url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TCPProxy(host, int(port))
    await proxy.start()
    proxied = database.url.replace(host_port, f"127.0.0.1:{proxy.port}")
    settings = make_settings(
        proxied, tmp_path, database_pool_size=4, mail_url=f"file://{tmp_path}/m"
    )
    app = create_app(settings)
    acknowledged: list[str] = []
    outcomes: list[str] = []

    async def register_one(http: httpx.AsyncClient, i: int) -> None:
        email = f"load{i}@example.com"
        variables = {
            "input": {"email": email, "password": PASSWORD, "firstName": "", "lastName": ""}
        }
        try:
            response = await http.post(
                "/graphql", json={"query": REGISTER, "variables": variables}, timeout=20
            )
        except httpx.HTTPError:
            outcomes.append("transport error")
            return
        assert "Traceback" not in response.text
        body = response.json()
        if body.get("data") and body["data"]["register"]["__typename"] == "RegisterSuccess":
            acknowledged.append(email)
            outcomes.append("ok")
        else:
            error = body["errors"][0]
            assert error["message"] == "Unexpected error."  # masked, with a request id
            assert error["extensions"]["requestId"]
            outcomes.append("error")

    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                assert (await http.get("/ready")).status_code == 200
                load = [asyncio.create_task(register_one(http, i)) for i in range(10)]
                await asyncio.sleep(0)
                await proxy.cut()  # under load
                more = [asyncio.create_task(register_one(http, i)) for i in range(10, 20)]
                await asyncio.gather(*load, *more)
                assert (await http.get("/ready")).status_code == 503
                assert "error" in outcomes
                await proxy.restore()
                for _ in range(50):  # recovers by itself, no restart
                    if (await http.get("/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                assert (await http.get("/ready")).status_code == 200
                await register_one(http, 99)
                assert acknowledged[-1] == "load99@example.com"
        # Every acknowledged write is there.
        check = Container.create(make_settings(database.url, tmp_path))
        try:
            async with check.reading() as uow:
                for email in acknowledged:
                    assert await uow.users.by_email(email) is not None, email
        finally:
            await check.close()
    finally:
        await proxy.cut()
        await reset_database(make_settings(database.url, tmp_path))


# Several instances --------------------------------------------------------------------------


@pytest.fixture
async def two_servers(database: Database, redis_url: str, smtp: Inbox, tmp_path: Path) -> Any:
    if database.backend != "postgresql":
        pytest.skip("several instances share PostgreSQL")
    env = server_env(
        database.url,
        IDENTITY_REDIS_URL=redis_url,
        IDENTITY_RATE_LIMIT_KEY_PREFIX=f"identity-test-{uuid.uuid4().hex}",
        IDENTITY_RATE_LIMIT_LOGIN_ADDRESS="6/minute",
        IDENTITY_RATE_LIMIT_RECOVERY_EMAIL="100/minute",
        IDENTITY_RATE_LIMIT_RECOVERY_ADDRESS="100/minute",
        IDENTITY_RATE_LIMIT_REGISTER_ADDRESS="100/minute",
        IDENTITY_MAIL_URL=f"smtp://127.0.0.1:{smtp.port}",
        IDENTITY_KEY_REFRESH_INTERVAL="1",
        IDENTITY_MAIL_POLL_INTERVAL="0.2",
        IDENTITY_AUTO_MIGRATE="false",
    )
    servers = [Server(env, tmp_path), Server(env, tmp_path)]
    try:
        yield servers, env
    finally:
        for server in servers:
            server.stop()
        await reset_database(make_settings(database.url, tmp_path))


def call(url: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    return httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}).json()


REFRESH = "mutation($t: String) { refreshToken(input: {refreshToken: $t}) { __typename ... on AuthPayload { refreshToken } } }"


class SlowMailer:
    """Records what it sends; each send takes 14 s of the frozen clock (under half a lease)."""

    def __init__(self, clock: FrozenClock, after_third: Any = None) -> None:
        self.clock, self.after_third, self.sent = clock, after_third, list[str]()

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(str(message["To"]))
        self.clock.advance(seconds=14)
        if len(self.sent) == 3 and self.after_third is not None:
            await self.after_third()


def courier_with(container: Container, mailer: Any) -> Courier[OutboxMessage]:
    """Another sender on the same database, as a second instance would run it."""
    mine = container.mail_channel
    channel = MailChannel(mine.rt, mine.tokens, mailer, mine.renderer, mine.unit_of_work)
    return Courier(mine.rt, channel, mine.unit_of_work, poll_interval=3600)


@pytest.mark.parametrize("settings_overrides", [{"mail_poll_interval": 3600}])
async def test_a_slow_smtp_server_does_not_make_two_instances_send_one_message(
    container: Container, clock: FrozenClock
) -> None:
    """A batch is claimed at once and sent one by one: once a slow SMTP server has outlasted
    the batch's lease, another instance claims the rest, and the first must skip them."""
    # The app's own sender makes one pass at start-up: let it end (it then waits for a
    # wake-up, the poll being an hour), or it may take a row of this test's first.
    for _ in range(500):
        if container.mail_wakeup._waiters:  # no public way to see that it waits
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the app's mail sender never went idle")
    async with container.unit_of_work() as uow:
        for n in range(4):  # queued directly: the app's own sender is not woken up
            at = clock.now() + timedelta(seconds=n)
            uow.outbox_messages.add(
                OutboxMessage(
                    id=uuid.uuid4(),
                    created_at=at,
                    template="password_changed",
                    recipient=f"u{n}@example.com",
                    context={"first_name": "U"},
                    attempts=0,
                    next_attempt_at=at,
                )
            )
        await uow.commit()
    clock.advance(seconds=4)
    b_mailer = SlowMailer(clock)
    b = courier_with(container, b_mailer)
    a_mailer = SlowMailer(clock, after_third=b.deliver_due)  # B polls 42 s in
    a = courier_with(container, a_mailer)
    await a.deliver_due()
    assert sorted(a_mailer.sent + b_mailer.sent) == [f"u{n}@example.com" for n in range(4)]
    assert b_mailer.sent == ["u3@example.com"]  # the one A had not reached
    unsent = "SELECT count(*) FROM outbox_messages WHERE sent_at IS NULL"
    assert await scalar(container, unsent) == 0


async def test_two_instances_share_sessions_limits_keys_and_outbox(
    two_servers: Any, smtp: Inbox
) -> None:
    (a, b), env = two_servers
    data = {"email": "multi@example.com", "password": PASSWORD, "firstName": "", "lastName": ""}
    assert (
        call(a.url, REGISTER, {"input": data})["data"]["register"]["__typename"]
        == "RegisterSuccess"
    )
    login = call(b.url, LOGIN, {"input": {"email": "multi@example.com", "password": PASSWORD}})[
        "data"
    ]["login"]

    # A refresh token rotated on one instance is a replay on the other.
    rotated = call(a.url, REFRESH, {"t": login["refreshToken"]})["data"]["refreshToken"]
    assert rotated["__typename"] == "AuthPayload"
    time.sleep(0.05)
    call(a.url, REFRESH, {"t": rotated["refreshToken"]})
    replay = call(b.url, REFRESH, {"t": login["refreshToken"]})["data"]["refreshToken"]
    assert replay["__typename"] == "InvalidToken"
    newest = call(a.url, LOGIN, {"input": {"email": "multi@example.com", "password": PASSWORD}})
    assert newest["data"]["login"]["__typename"] == "AuthPayload"  # the account itself is fine

    # The sign-in limit counts attempts made on both (6 per minute per address; 2 used above).
    kinds = [
        call(server.url, LOGIN, {"input": {"email": "nobody@example.com", "password": "a guess!"}})[
            "data"
        ]["login"]["__typename"]
        for server in (a, b, a, b, a)
    ]
    assert kinds == ["InvalidCredentials"] * 4 + ["RateLimited"]

    # A key rotated through one (the CLI, on its database) is served by both JWKS endpoints.
    rotate = subprocess.run(
        [sys.executable, "-m", "identity", "keys", "rotate", "--activate-in", "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    kid = rotate.stdout.split()[3].rstrip(";")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        served = [
            {key["kid"] for key in httpx.get(f"{s.url}/.well-known/jwks.json").json()["keys"]}
            for s in (a, b)
        ]
        if all(kid in kids for kids in served):
            break
        time.sleep(0.2)
    assert all(kid in kids for kids in served)

    # Each outbox message is delivered once, whichever instance's sender picks it up.
    before = len(smtp.messages)
    for i in range(12):
        server = (a, b)[i % 2]
        call(
            server.url,
            "mutation($e: String!) { requestPasswordReset(input: {email: $e}) { __typename } }",
            {"e": "multi@example.com"},
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(smtp.messages) < before + 12:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # a duplicate would arrive now
    resets = [m for m in smtp.messages[before:] if "Reset your" in m["Subject"]]
    assert len(resets) == 12
    assert len({m["Message-ID"] for m in resets}) == 12


async def test_two_instances_deliver_each_webhook_event_once(
    two_servers: Any, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    (a, b), env = two_servers
    sync_receivers_with(clock, monkeypatch)  # the servers' clocks are the real one
    receiver = Receiver()
    await receiver.start()
    try:
        admin = subprocess.run(
            [sys.executable, "-m", "identity", "create-admin", "--email", "ops@example.com"],
            env=env,
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        assert "created admin" in admin.stdout
        async with httpx.AsyncClient(timeout=20) as http:

            async def call_on(server: Server, query: str, variables: Any, token: str = "") -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                body = {"query": query, "variables": variables}
                response = await http.post(f"{server.url}/graphql", json=body, headers=headers)
                answer = response.json()
                assert "errors" not in answer, answer
                return answer["data"]

            signed_in = await call_on(
                a, LOGIN, {"input": {"email": "ops@example.com", "password": PASSWORD}}
            )
            token = signed_in["login"]["accessToken"]
            created = await call_on(
                b,
                CREATE_ENDPOINT,
                {"input": {"url": receiver.url, "events": ["user.created"]}},
                token,
            )
            receiver.secrets.append(created["createWebhookEndpoint"]["secret"])
            for i in range(20):
                user = {
                    "email": f"hook{i}@example.com",
                    "password": PASSWORD,
                    "firstName": "",
                    "lastName": "",
                }
                done = await call_on((a, b)[i % 2], REGISTER, {"input": user})
                assert done["register"]["__typename"] == "RegisterSuccess", done
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(receiver.received) < 20:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # a duplicate would arrive now
    finally:
        await receiver.stop()
    assert len(receiver.received) == 20
    assert len({r.id for r in receiver.received}) == 20
    assert {r.payload["data"]["email"] for r in receiver.received} == {
        f"hook{i}@example.com" for i in range(20)
    }
    assert all(r.verified_by == receiver.secrets for r in receiver.received)
