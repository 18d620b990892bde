"""Webhook deliveries to a real receiver on loopback, which verifies every one with the
`standardwebhooks` package: events of every use case, retries on the injectable clock,
410 and five days of failures, secret rotation, redelivery, and the sender's defences."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import jsonschema
import pytest
from sqlalchemy import update

from identity import webhooks as schemas
from identity.clock import FrozenClock
from identity.container import Container
from identity.db.models import WebhookDelivery
from identity.security import webhooks as hooks
from identity.services.webhook_sender import DELAYS
from tests.admin_helpers import ASSIGN, REVOKE, make_admin, role_id, user_with
from tests.conftest import (
    LOGIN,
    PASSWORD,
    GraphQLClient,
    Inbox,
    login,
    register,
    scalar,
    signed_up,
    token_in,
    wait_for_mail,
)
from tests.mfa_helpers import enroll, set_verified
from tests.test_cli import run
from tests.test_recovery import CONFIRM_CHANGE, REQUEST_CHANGE, REQUEST_RESET, RESET
from tests.webhook_helpers import (
    REDELIVER,
    ROTATE,
    SEND_TEST,
    UPDATE,
    Receiver,
    create_endpoint,
    deliveries,
    settle_webhooks,
    sync_receivers_with,
)

EVERY_EVENT = [
    "user.created",
    "user.updated",
    "user.deleted",
    "user.email_changed",
    "user.password_changed",
    "user.locked_out",
    "user.mfa_enabled",
    "user.mfa_disabled",
    "session.created",
    "session.revoked",
    "role.assigned",
    "role.revoked",
]
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER


@pytest.fixture
def mail_settings(settings_with_smtp: dict[str, Any]) -> dict[str, Any]:
    return settings_with_smtp


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_login_account": "3/15minutes"}


@pytest.fixture
async def receiver(clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    sync_receivers_with(clock, monkeypatch)
    running = Receiver()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def check_schema(payload: dict[str, Any]) -> None:
    jsonschema.validate(payload, schemas.schema(payload["type"]), format_checker=FORMATS)


async def subscribe(
    gql: GraphQLClient, container: Container, receiver: Receiver, events: list[str]
) -> tuple[Any, str]:
    admin = await make_admin(container, gql)
    created = await create_endpoint(gql, admin, receiver.url, events)
    receiver.secrets.append(created["secret"])
    return admin, created["endpoint"]["id"]


async def test_every_use_case_sends_its_event_signed_and_as_documented(
    gql: GraphQLClient, container: Container, receiver: Receiver, smtp: Inbox, clock: FrozenClock
) -> None:
    admin, _ = await subscribe(gql, container, receiver, EVERY_EVENT)
    ann = await signed_up(gql, "ann@example.com")  # user.created, session.created
    await set_verified(container, "ann@example.com")
    app = await enroll(gql, ann, clock)  # user.mfa_enabled
    await gql(  # user.mfa_disabled
        "mutation($id: ID!) { removeFactor(id: $id, input: {}) { __typename } }",
        {"id": app.factor_id},
        token=ann.access_token,
    )
    await gql(
        "mutation($i: UpdateMeInput!) { updateMe(input: $i) { __typename } }",
        {"i": {"firstName": "Annie", "userMetadata": {"theme": "dark"}}},
        token=ann.access_token,
    )
    await gql(  # user.updated (appMetadata, by an admin)
        "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { __typename } }",
        {"id": ann.user_id, "i": {"appMetadata": {"plan": "pro"}}},
        token=admin.access_token,
    )
    await login(gql, "ann@example.com")  # another device
    await gql(  # user.password_changed, session.revoked (the other device's)
        "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { __typename } }",
        {"i": {"currentPassword": PASSWORD, "newPassword": "another long passphrase"}},
        token=ann.access_token,
    )
    await gql(
        REQUEST_CHANGE,
        {"email": "ann.lee@example.com", "password": "another long passphrase"},
        token=ann.access_token,
    )
    confirm = (await wait_for_mail(container, smtp, "ann.lee@example.com"))[0]
    await gql(CONFIRM_CHANGE, {"token": token_in(confirm)})  # user.email_changed
    await login(gql, "ann.lee@example.com", "another long passphrase")
    await gql(REQUEST_RESET, {"email": "ann.lee@example.com"})
    mail = await wait_for_mail(container, smtp, "ann.lee@example.com", subject="Reset your")
    await gql(RESET, {"token": token_in(mail[-1]), "password": PASSWORD, "confirm": PASSWORD})
    bo = await signed_up(gql, "bo@example.com")
    for _ in range(3):  # user.locked_out
        await gql(LOGIN, {"input": {"email": "bo@example.com", "password": "not the password"}})
    user_role = await role_id(gql, admin, "user")
    await gql(REVOKE, {"user": bo.user_id, "role": user_role}, token=admin.access_token)
    await gql(ASSIGN, {"user": bo.user_id, "role": user_role}, token=admin.access_token)
    await gql(
        "mutation($t: String) { logout(input: {refreshToken: $t}) { __typename } }",
        {"t": bo.refresh_token},
    )
    await gql(
        "mutation($id: ID!) { deleteUser(id: $id) { __typename } }",
        {"id": bo.user_id},
        token=admin.access_token,
    )
    await settle_webhooks(container)

    got = receiver.accepted()
    assert {r.payload["type"] for r in got} == set(EVERY_EVENT)
    for r in got:
        assert receiver.secrets[0] in r.verified_by, r.payload["type"]  # standardwebhooks says so
        check_schema(r.payload)
        assert r.payload["data"].get("userId") in (ann.user_id, bo.user_id, admin.user_id)
        # Never a secret: no hash, no token, no password.
        text = r.body.decode()
        for secret in ("$argon2", ann.access_token, ann.refresh_token, PASSWORD, "passwordHash"):
            assert secret not in text
        assert re.fullmatch(r"v1,[A-Za-z0-9+/]+={0,2}", r.headers["webhook-signature"])
    assert len({r.id for r in got}) == len(got)  # one id per event
    updates = [r.payload["data"] for r in got if r.payload["type"] == "user.updated"]
    assert ["appMetadata"] in [u["changes"] for u in updates]
    assert {"theme": "dark"} in [u["userMetadata"] for u in updates]
    revoked = {r.payload["data"]["reason"] for r in got if r.payload["type"] == "session.revoked"}
    assert {"password_changed", "password_reset", "logout"} <= revoked
    enabled = next(r.payload["data"] for r in got if r.payload["type"] == "user.mfa_enabled")
    assert (enabled["factorId"], enabled["kind"], enabled["actorId"]) == (
        app.factor_id,
        "totp",
        None,
    )
    disabled = next(r.payload["data"] for r in got if r.payload["type"] == "user.mfa_disabled")
    assert disabled["reason"] == "factor_removed"
    deleted = next(r.payload["data"] for r in got if r.payload["type"] == "user.deleted")
    assert deleted == {
        "userId": bo.user_id,
        "email": "bo@example.com",
        "deletedBy": "admin",
        "actorId": admin.user_id,
    }


async def test_nothing_is_written_for_events_nobody_subscribed_to(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    await subscribe(gql, container, receiver, ["user.deleted"])
    await signed_up(gql, "ann@example.com")
    assert await scalar(container, "SELECT count(*) FROM webhook_deliveries") == 0
    # A refresh is not a session start.
    await settle_webhooks(container)
    assert receiver.received == []


async def test_a_receiver_down_then_up_gets_the_event_once(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock
) -> None:
    _, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    await receiver.stop()
    admin = await login(gql, "root@example.com")
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    [waiting] = await deliveries(gql, admin, endpoint_id)
    assert waiting["status"] == "pending"
    assert waiting["attempts"] == 1
    assert waiting["lastResponseStatus"] is None
    assert "ConnectError" in waiting["lastError"]
    assert datetime.fromisoformat(waiting["nextAttemptAt"]) == clock.now() + timedelta(seconds=5)

    await receiver.start()
    clock.advance(4)
    await settle_webhooks(container)
    assert receiver.received == []  # not due yet
    clock.advance(1)
    await settle_webhooks(container)
    [got] = receiver.received
    assert got.id == waiting["eventId"]
    [done] = await deliveries(gql, admin, endpoint_id)
    assert done["status"] == "delivered"
    assert done["attempts"] == 2
    assert done["lastResponseStatus"] == 200
    assert done["lastError"] is None
    assert done["nextAttemptAt"] is None
    clock.advance(3600)
    await settle_webhooks(container)
    assert len(receiver.received) == 1


async def test_a_500_is_retried_with_the_same_id_and_body(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    receiver.statuses = [500]
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    [failed] = await deliveries(gql, admin, endpoint_id)
    assert (failed["status"], failed["lastResponseStatus"], failed["lastError"]) == (
        "pending",
        500,
        "HTTP 500",
    )
    clock.advance(5)
    await settle_webhooks(container)
    first, second = receiver.received
    assert (first.status, second.status) == (500, 200)
    assert first.id == second.id
    assert first.body == second.body
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert second.verified_by == receiver.secrets


async def test_the_retry_schedule_ends_abandoned_and_a_redelivery_sends_it_again(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    receiver.statuses = [503] * 10
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    waits = []
    for _ in DELAYS:
        admin = await login(gql, "root@example.com")  # access tokens live 15 minutes
        [row] = await deliveries(gql, admin, endpoint_id)
        due = datetime.fromisoformat(row["nextAttemptAt"])
        waits.append(due - clock.now())
        clock.advance((due - clock.now()).total_seconds() - 1)
        await settle_webhooks(container)  # a second early: nothing
        clock.advance(1)
        await settle_webhooks(container)
    assert waits == list(DELAYS)  # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h
    admin = await login(gql, "root@example.com")
    [row] = await deliveries(gql, admin, endpoint_id)
    assert (row["status"], row["attempts"], row["nextAttemptAt"]) == ("abandoned", 10, None)
    assert len(receiver.received) == 10
    assert len({r.id for r in receiver.received}) == 1

    again = await gql(REDELIVER, {"id": row["id"]}, token=admin.access_token)
    redelivery = again["data"]["redeliverWebhook"]["delivery"]
    assert redelivery["eventId"] == row["eventId"]
    assert redelivery["id"] != row["id"]
    await settle_webhooks(container)
    assert receiver.received[-1].id == row["eventId"]
    assert receiver.received[-1].body == receiver.received[0].body
    assert receiver.received[-1].status == 200


async def test_a_410_disables_the_endpoint_and_tells_the_admins(
    gql: GraphQLClient, container: Container, receiver: Receiver, smtp: Inbox
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    receiver.statuses = [410]
    container.webhook_wakeup.clear()
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    [gone] = await deliveries(gql, admin, endpoint_id)
    assert (gone["status"], gone["lastResponseStatus"]) == ("failed", 410)
    endpoints = (
        await gql("{ webhookEndpoints { isActive disabledReason } }", token=admin.access_token)
    )["data"]["webhookEndpoints"]
    assert endpoints == [
        {"isActive": False, "disabledReason": "The receiver answered HTTP 410 Gone."}
    ]
    notice = await wait_for_mail(container, smtp, "root@example.com", subject="disabled")
    assert receiver.url in notice[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    await register(gql, "bo@example.com")  # no longer fanned out to it
    assert await scalar(container, "SELECT count(*) FROM webhook_deliveries") == 1
    assert len(receiver.received) == 1


async def test_five_days_of_failures_disable_the_endpoint(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock, smtp: Inbox
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    receiver.statuses = [500] * 1000
    for day in range(6):
        await register(gql, f"u{day}@example.com")
        await settle_webhooks(container)
        admin = await login(gql, "root@example.com")
        state = (await gql("{ webhookEndpoints { isActive } }", token=admin.access_token))["data"]
        assert state["webhookEndpoints"][0]["isActive"] is (day < 5), day
        clock.advance(days=1)
    admin = await login(gql, "root@example.com")
    reason = "Every delivery failed for 5 days."
    endpoints = await gql("{ webhookEndpoints { disabledReason } }", token=admin.access_token)
    assert endpoints["data"]["webhookEndpoints"][0]["disabledReason"] == reason
    rows = await deliveries(gql, admin, endpoint_id)
    assert {r["status"] for r in rows} == {"failed"}  # nothing left waiting
    await wait_for_mail(container, smtp, "root@example.com", subject="disabled")
    # Back on: the failures are counted afresh, and a redelivery goes out.
    await gql(UPDATE, {"id": endpoint_id, "input": {"isActive": True}}, token=admin.access_token)
    receiver.statuses = []
    await gql(REDELIVER, {"id": rows[-1]["id"]}, token=admin.access_token)
    await settle_webhooks(container)
    assert receiver.received[-1].status == 200


async def test_a_rotated_secret_signs_alongside_the_new_one_for_a_day(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    old = receiver.secrets[0]
    rotated = await gql(ROTATE, {"id": endpoint_id}, token=admin.access_token)
    new = rotated["data"]["rotateWebhookSecret"]["secret"]
    receiver.secrets.append(new)
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    overlap = receiver.received[-1]
    assert overlap.verified_by == [old, new]
    assert re.fullmatch(r"v1,\S+ v1,\S+", overlap.headers["webhook-signature"])

    clock.advance(hours=24, seconds=-1)
    await register(gql, "bo@example.com")
    await settle_webhooks(container)
    assert receiver.received[-1].verified_by == [old, new]
    clock.advance(seconds=1)
    await register(gql, "cy@example.com")
    await settle_webhooks(container)
    alone = receiver.received[-1]
    assert alone.verified_by == [new]  # the old secret no longer verifies
    assert re.fullmatch(r"v1,\S+", alone.headers["webhook-signature"])


async def test_a_test_event_goes_out_on_demand(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    admin, endpoint_id = await subscribe(gql, container, receiver, ["user.deleted"])
    sent = await gql(SEND_TEST, {"id": endpoint_id}, token=admin.access_token)
    delivery = sent["data"]["sendTestWebhook"]["delivery"]
    assert (delivery["event"], delivery["status"]) == ("webhook.test", "pending")
    await settle_webhooks(container)
    [got] = receiver.received
    assert got.id == delivery["eventId"]
    assert got.payload["type"] == "webhook.test"
    check_schema(got.payload)

    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {
        "IDENTITY_DATABASE_URL": container.settings.database_url,
        "IDENTITY_SECRET_KEY": container.settings.secret().decode(),
    }
    status = run(["webhooks", "status"], env)
    assert status.returncode == 0, status.stderr
    totals, line = status.stdout.splitlines()
    assert totals == "pending 0  delivered 1  failed 0  abandoned 0  oldest-pending -"
    assert line.startswith(f"{endpoint_id} {receiver.url} active pending=0 delivered=1 ")
    assert line.endswith("events=user.deleted")


# The sender's defences ---------------------------------------------------------------------


async def _raw_server(handler: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_redirects_are_not_followed(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    hits: list[bytes] = []

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append(await reader.readuntil(b"\r\n\r\n"))
        target = f"http://127.0.0.1:{receiver.port}/hook".encode()
        writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + target)
        writer.write(b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server, port = await _raw_server(redirect)
    async with server:
        admin = await make_admin(container, gql)
        created = await create_endpoint(
            gql, admin, f"http://127.0.0.1:{port}/hook", ["user.created"]
        )
        await register(gql, "ann@example.com")
        await settle_webhooks(container)
    [row] = await deliveries(gql, admin, created["endpoint"]["id"])
    assert row["lastResponseStatus"] == 307
    assert row["lastError"] == "HTTP 307: redirects are not followed"
    assert len(hits) == 1
    assert receiver.received == []


async def test_huge_and_slow_answers_are_cut_short(container: Container) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        try:
            for _ in range(100_000):
                writer.write(b"x" * 1000)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(30)

    client = hooks.WebhookClient(allow_private=True, timeout=0.5)
    try:
        server, port = await _raw_server(huge)
        async with server:
            started = asyncio.get_running_loop().time()
            answer = await client.post(f"http://127.0.0.1:{port}/", {}, "{}")
            assert answer.status == 200
            assert asyncio.get_running_loop().time() - started < 0.5  # 64 KiB, not 100 MB
        server, port = await _raw_server(silent)
        async with server:
            with pytest.raises(TimeoutError):
                await client.post(f"http://127.0.0.1:{port}/", {}, "{}")
    finally:
        await client.close()


async def test_the_connection_goes_to_the_address_that_was_checked(receiver: Receiver) -> None:
    """Resolved once per connection, checked, connected to: a second, different answer
    (DNS rebinding) is never asked for, and the Host header keeps the name."""
    answers = [["127.0.0.1"], ["10.9.8.7"]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked) - 1, 1)]

    client = hooks.WebhookClient(allow_private=True, resolve=rebinding)
    url = f"http://hooks.test:{receiver.port}/hook"
    try:
        body = json.dumps({"type": "webhook.test"})
        assert (await client.post(url, {"webhook-id": "a"}, body)).status == 200
        assert (await client.post(url, {"webhook-id": "b"}, body)).status == 200
    finally:
        await client.close()
    assert asked == ["hooks.test"]  # one connection, kept alive: resolved once
    assert [r.headers["host"] for r in receiver.received] == [f"hooks.test:{receiver.port}"] * 2


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
async def test_in_production_a_name_that_rebinds_to_loopback_is_refused_at_send(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    registration = {"hooks.example.com": ["93.184.216.34"]}
    at_send = {"hooks.example.com": ["127.0.0.1"]}  # then the name points home
    asked: list[str] = []

    async def registration_dns(host: str, port: int) -> list[str]:
        return registration[host]

    async def send_dns(host: str, port: int) -> list[str]:
        asked.append(host)
        return at_send[host]

    container.webhooks.resolve = registration_dns
    await container.webhook_channel.client.close()
    container.webhook_channel.client = hooks.WebhookClient(allow_private=False, resolve=send_dns)
    admin = await make_admin(container, gql)
    url = f"https://hooks.example.com:{receiver.port}/hook"
    created = await create_endpoint(gql, admin, url, ["user.created"])
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    [row] = await deliveries(gql, admin, created["endpoint"]["id"])
    assert row["status"] == "pending"
    assert row["lastError"] == ("refused: hooks.example.com resolves to a loopback address")
    assert asked == ["hooks.example.com"]
    assert receiver.received == []  # nothing reached the loopback receiver
    # A literal private address in a URL changed under the sender's feet is refused too.
    with pytest.raises(hooks.AddressRefused):
        await container.webhook_channel.client.post(receiver.url, {}, "{}")
    assert receiver.received == []


async def test_deliveries_flow_through_two_kinds_of_endpoint(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    """Each subscribed endpoint gets its own delivery of an event, under its own secret."""
    admin, _ = await subscribe(gql, container, receiver, ["user.created"])
    other = Receiver()
    await other.start()
    try:
        reader = await user_with(gql, admin, "hooks@example.com", ["webhooks:write", "users:read"])
        created = await create_endpoint(gql, reader, other.url, ["user.created"])
        other.secrets.append(created["secret"])
        receiver.received.clear()
        await register(gql, "ann@example.com")
        await settle_webhooks(container)
        mine = [r for r in receiver.received if r.payload["data"]["email"] == "ann@example.com"]
        theirs = [r for r in other.received if r.payload["data"]["email"] == "ann@example.com"]
        assert len(mine) == len(theirs) == 1
        assert mine[0].id == theirs[0].id  # one event, one id
        assert mine[0].verified_by == receiver.secrets
        assert theirs[0].verified_by == other.secrets
    finally:
        await other.stop()


@pytest.mark.parametrize("settings_overrides", [{"metrics_token": "metrics-token"}])
async def test_metrics_count_outcomes_and_show_the_queue(
    gql: GraphQLClient,
    container: Container,
    receiver: Receiver,
    clock: FrozenClock,
    client: Any,
) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    delivered = sample("identity_webhook_deliveries_total", outcome="delivered")
    retried = sample("identity_webhook_deliveries_total", outcome="retried")
    await subscribe(gql, container, receiver, ["user.created"])
    receiver.statuses = [500]
    await register(gql, "ann@example.com")
    await settle_webhooks(container)
    clock.advance(4)
    await container.webhook_sender.deliver_due()  # not due: only measures
    assert sample("identity_webhook_deliveries_pending") == 1
    assert sample("identity_webhook_oldest_pending_seconds") == 4
    clock.advance(1)
    await settle_webhooks(container)
    assert sample("identity_webhook_deliveries_total", outcome="retried") == retried + 1
    assert sample("identity_webhook_deliveries_total", outcome="delivered") == delivered + 1
    assert sample("identity_webhook_deliveries_pending") == 0
    assert sample("identity_webhook_oldest_pending_seconds") == 0
    text = (await client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})).text
    for name in (
        'identity_webhook_deliveries_total{outcome="delivered"}',
        "identity_webhook_deliveries_pending",
        "identity_webhook_oldest_pending_seconds",
    ):
        assert name in text


async def test_deliveries_sent_together_are_recorded_together_once_each(
    gql: GraphQLClient, container: Container, receiver: Receiver
) -> None:
    """The sender posts many at once and records their successes in shared transactions:
    every delivery still ends `delivered` after one attempt, and each reached the receiver
    once."""
    await subscribe(gql, container, receiver, ["user.created"])
    receiver.received.clear()
    emails = [f"burst{i}@example.com" for i in range(30)]
    await asyncio.gather(*(register(gql, email) for email in emails))
    await settle_webhooks(container)
    ids = [r.id for r in receiver.received if r.payload["data"]["email"] in emails]
    assert len(ids) == len(set(ids)) == len(emails)
    states = "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered' AND attempts = 1"
    assert await scalar(container, states) == len(emails)
    assert await scalar(container, "SELECT count(*) FROM webhook_deliveries") == len(emails)


async def test_a_success_recorded_with_others_leaves_a_row_taken_over_to_its_new_claim(
    gql: GraphQLClient, container: Container, receiver: Receiver, clock: FrozenClock
) -> None:
    """Recording successes together names each row's claim: a row another instance claimed
    meanwhile (this sender stalled) keeps that claim, its outcome that claim's to write."""
    _, endpoint_id = await subscribe(gql, container, receiver, ["user.created"])
    later = clock.now() + timedelta(hours=1)  # not due for the app's own sender
    async with container.unit_of_work() as uow:
        for _ in range(3):
            uow.db.add(
                WebhookDelivery(
                    id=uuid.uuid4(),
                    endpoint_id=uuid.UUID(endpoint_id),
                    event_id=uuid.uuid4(),
                    event="user.created",
                    body="{}",
                    state="pending",
                    attempts=0,
                    next_attempt_at=later,
                    created_at=clock.now(),
                )
            )
        await uow.commit()
        rows = await uow.webhook_deliveries.claim_due(
            later, uuid.uuid4(), later + timedelta(seconds=30), 10
        )
        await uow.commit()
    assert len(rows) == 3
    taken, other_claim = rows[0], uuid.uuid4()
    async with container.unit_of_work() as uow:
        await uow.db.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == taken.id).values(claim=other_claim)
        )
        await uow.commit()
    channel = container.webhook_channel
    endpoint = (await channel.prepare(rows))[uuid.UUID(endpoint_id)].endpoint
    answers = await asyncio.gather(*(channel.delivered.record(r, endpoint, 204) for r in rows))
    assert answers == [False, True, True]
    left = await scalar(
        container,
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'pending' AND claim IS NOT NULL",
    )
    assert left == 1
    done = "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered' AND attempts = 1"
    assert await scalar(container, done) == 2
