"""The webhook API: endpoints, secrets shown once, validation, permissions, paging, SSRF."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import pytest

from identity.container import Container
from identity.security import webhooks as hooks
from identity.services.events import EVENT_TYPES
from tests.admin_helpers import make_admin, user_with
from tests.conftest import GraphQLClient, row_counts, scalar
from tests.webhook_helpers import (
    CREATE,
    DELETE,
    DELIVERIES,
    ENDPOINTS,
    REDELIVER,
    ROTATE,
    SEND_TEST,
    UPDATE,
    create_endpoint,
)

URL = "http://127.0.0.1:9/hook"  # never connected to: these tests send nothing


async def test_an_endpoint_is_created_with_a_secret_shown_once(
    gql: GraphQLClient, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await make_admin(container, gql)
    types = await gql("{ webhookEventTypes }", token=admin.access_token)
    assert types["data"]["webhookEventTypes"] == list(EVENT_TYPES)

    created = await create_endpoint(gql, admin, URL, ["user.created", "user.created"], " Mine ")
    secret, endpoint = created["secret"], created["endpoint"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert endpoint["events"] == ["user.created"]
    assert endpoint["description"] == "Mine"
    assert endpoint["isActive"] is True
    assert endpoint["disabledReason"] is None

    listed = (await gql(ENDPOINTS, token=admin.access_token))["data"]["webhookEndpoints"]
    assert listed == [endpoint]
    # Nowhere again: not in the database (sealed), the audit log or the logs.
    raw = base64.b64decode(secret.removeprefix("whsec_"))
    sealed = await scalar(container, "SELECT sealed FROM webhook_secrets")
    assert raw not in bytes(sealed)
    assert secret.encode() not in bytes(sealed)
    audit = await scalar(
        container, "SELECT details FROM audit_events WHERE action = 'webhook.endpoint_created'"
    )
    assert secret not in str(audit)
    assert secret not in caplog.text
    assert secret.removeprefix("whsec_") not in caplog.text


BAD_INPUTS: list[tuple[dict[str, Any], str, str]] = [
    ({"url": ""}, "url", "required"),
    ({"url": "ftp://example.com/hook"}, "url", "invalid_url"),
    ({"url": "http://user:pass@example.com/hook"}, "url", "invalid_url"),
    ({"url": "http://0177.0.0.1/hook"}, "url", "invalid_url"),
    ({"url": "http://example.com/" + "a" * 2048}, "url", "too_long"),
    ({"events": []}, "events", "required"),
    ({"events": ["user.created", "user.exploded"]}, "events", "unknown_event"),
    ({"events": ["webhook.test"]}, "events", "unknown_event"),
    ({"description": "x" * 256}, "description", "too_long"),
    ({"description": "line\nbreak"}, "description", "invalid_characters"),
]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("   ", "invalid_url"),
        ("example.com/hook", "invalid_url"),
        ("http:///hook", "invalid_url"),
        ("http://2130706433/hook", "invalid_url"),  # 127.0.0.1, as resolvers read it
        ("http://0x7f.0.0.1/hook", "invalid_url"),
        ("http://0x7f000001/hook", "invalid_url"),
        ("http://0177.0.0.1/hook", "invalid_url"),
        ("http://127.1/hook", "invalid_url"),
        ("http://example.com/a b", "invalid_url"),
        ("http://evil.example\\@127.0.0.1/", "invalid_url"),  # parsers disagree on these
        ("http://127.0.0.1:80\\@evil.example/", "invalid_url"),
        ("http://example.com/a\tb", "invalid_url"),
        ("http://example.com/hook#part", "invalid_url"),
        ("http://example.com:99999/hook", "invalid_url"),
        ("http://example.com:0/hook", "invalid_url"),
        ("http://[::1/hook", "invalid_url"),
        ("http://example.com/" + "a" * 2048, "too_long"),
        ("http://127.0.0.1:8000/hook", None),
        ("http://[::1]:8000/hook", None),
        ("https://hooks.example.com/in?key=1", None),
    ],
)
def test_how_a_url_may_be_written(url: str, code: str | None) -> None:
    problem = hooks.url_problem(url, require_https=False)
    assert (problem.code if problem else None) == code
    https = hooks.url_problem("http://hooks.example.com/", require_https=True)
    assert https is not None
    assert https.code == "https_required"


async def test_bad_endpoint_inputs_are_refused_and_nothing_is_written(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    before = await row_counts(container)
    for change, field, code in BAD_INPUTS:
        data: dict[str, Any] = {"url": URL, "events": ["user.created"], "description": ""}
        data.update(change)
        result = (await gql(CREATE, {"input": data}, token=admin.access_token))["data"]
        answer = result["createWebhookEndpoint"]
        assert answer["__typename"] == "ValidationError", change
        assert [(f["field"], f["code"]) for f in answer["fields"]] == [(field, code)], change
    everything = {"url": "ftp://x", "events": ["nope"], "description": "x" * 300}
    result = (await gql(CREATE, {"input": everything}, token=admin.access_token))["data"]
    fields = [f["field"] for f in result["createWebhookEndpoint"]["fields"]]
    assert fields == ["url", "events", "description"]  # every problem at once
    assert await row_counts(container) == before


async def test_update_changes_what_is_given_and_refuses_nulls(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    endpoint = (await create_endpoint(gql, admin, URL, ["user.created"]))["endpoint"]

    async def update(input: dict[str, Any], id: str = endpoint["id"]) -> dict[str, Any]:
        result = await gql(UPDATE, {"id": id, "input": input}, token=admin.access_token)
        answer: dict[str, Any] = result["data"]["updateWebhookEndpoint"]
        return answer

    changed = await update({"events": ["session.created", "user.deleted"], "description": "d"})
    assert changed["endpoint"]["events"] == ["session.created", "user.deleted"]
    assert changed["endpoint"]["url"] == URL

    off = await update({"isActive": False})
    assert off["endpoint"]["isActive"] is False
    assert off["endpoint"]["disabledReason"] == "Disabled by an admin."
    on = await update({"isActive": True})
    assert on["endpoint"]["disabledReason"] is None

    before = await row_counts(container)
    for field in ("url", "events", "description", "isActive"):
        refused = await update({field: None})
        assert refused["__typename"] == "ValidationError"
        assert [(f["field"], f["code"]) for f in refused["fields"]] == [(field, "required")]
    assert (await update({"url": "gopher://x"}))["fields"][0]["code"] == "invalid_url"
    assert (await update({}, id=str(uuid.uuid4())))["__typename"] == "NotFound"
    assert (await update({}, id="not-an-id"))["__typename"] == "NotFound"
    assert await row_counts(container) == before


async def test_rotation_keeps_one_old_secret_and_delete_takes_everything(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    created = await create_endpoint(gql, admin, URL, ["user.created"])
    endpoint_id = created["endpoint"]["id"]
    secrets = {created["secret"]}
    for _ in range(3):
        rotated = (await gql(ROTATE, {"id": endpoint_id}, token=admin.access_token))["data"]
        secrets.add(rotated["rotateWebhookSecret"]["secret"])
    assert len(secrets) == 4  # a new one each time
    # The current one and the one it replaced; older ones are gone.
    assert await scalar(container, "SELECT count(*) FROM webhook_secrets") == 2
    assert (
        await scalar(container, "SELECT count(*) FROM webhook_secrets WHERE retires_at IS NULL")
        == 1
    )
    missing = (await gql(ROTATE, {"id": str(uuid.uuid4())}, token=admin.access_token))["data"]
    assert missing["rotateWebhookSecret"]["__typename"] == "NotFound"

    await gql(SEND_TEST, {"id": endpoint_id}, token=admin.access_token)
    deleted = (await gql(DELETE, {"id": endpoint_id}, token=admin.access_token))["data"]
    assert deleted["deleteWebhookEndpoint"]["__typename"] == "DeleteWebhookEndpointSuccess"
    for table in ("webhook_endpoints", "webhook_subscriptions", "webhook_secrets"):
        assert await scalar(container, f"SELECT count(*) FROM {table}") == 0
    assert await scalar(container, "SELECT count(*) FROM webhook_deliveries") == 0
    again = (await gql(DELETE, {"id": endpoint_id}, token=admin.access_token))["data"]
    assert again["deleteWebhookEndpoint"]["__typename"] == "NotFound"


async def test_deliveries_are_paged_newest_first(gql: GraphQLClient, container: Container) -> None:
    admin = await make_admin(container, gql)
    container.webhook_wakeup.clear()
    endpoint_id = (await create_endpoint(gql, admin, URL, ["user.created"]))["endpoint"]["id"]
    sent = []
    for _ in range(5):
        container.runtime.clock.advance(1)  # type: ignore[attr-defined]
        result = await gql(SEND_TEST, {"id": endpoint_id}, token=admin.access_token)
        sent.append(result["data"]["sendTestWebhook"]["delivery"]["id"])
    seen, after = [], None
    while True:
        page = (
            await gql(
                DELIVERIES,
                {"id": endpoint_id, "first": 2, "after": after},
                token=admin.access_token,
            )
        )["data"]["webhookDeliveries"]
        assert page["totalCount"] == 5
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sent[::-1]

    for variables in (
        {"id": endpoint_id, "first": 0},
        {"id": endpoint_id, "first": 101},
        {"id": endpoint_id, "after": "forged.cursor"},
        {"id": "not-an-id"},
    ):
        refused = await gql(DELIVERIES, variables, token=admin.access_token, expect_errors=True)
        assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    unknown = await gql(DELIVERIES, {"id": str(uuid.uuid4())}, token=admin.access_token)
    assert unknown["data"]["webhookDeliveries"]["edges"] == []
    missing = await gql(REDELIVER, {"id": str(uuid.uuid4())}, token=admin.access_token)
    assert missing["data"]["redeliverWebhook"]["__typename"] == "NotFound"
    missing = await gql(SEND_TEST, {"id": str(uuid.uuid4())}, token=admin.access_token)
    assert missing["data"]["sendTestWebhook"]["__typename"] == "NotFound"


async def test_an_endpoint_carries_only_data_its_caller_could_read(
    gql: GraphQLClient, container: Container
) -> None:
    admin = await make_admin(container, gql)
    writer = await user_with(gql, admin, "writer@example.com", ["webhooks:write"])
    reader = await user_with(gql, admin, "reader@example.com", ["webhooks:write", "users:read"])
    watcher = await user_with(gql, admin, "watcher@example.com", ["webhooks:read"])
    nobody = await user_with(gql, admin, "nobody@example.com", [])

    def variables(events: list[str]) -> dict[str, Any]:
        return {"input": {"url": URL, "events": events}}

    before = await row_counts(container)
    for who, events in (
        (writer, ["user.created"]),
        (writer, ["session.revoked"]),
        (reader, ["role.assigned"]),  # also needs roles:read
        (watcher, ["user.created"]),  # no webhooks:write
    ):
        refused = await gql(CREATE, variables(events), token=who.access_token, expect_errors=True)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", (who.email, events)
    assert await row_counts(container) == before

    mine = await create_endpoint(gql, reader, URL, ["user.created", "session.created"])
    assert mine["endpoint"]["events"] == ["session.created", "user.created"]
    admins = (await create_endpoint(gql, admin, URL, ["role.assigned"]))["endpoint"]["id"]
    test = await gql(SEND_TEST, {"id": admins}, token=admin.access_token)
    delivery = test["data"]["sendTestWebhook"]["delivery"]["id"]
    # Every operation on the admin's role.* endpoint checks the caller again.
    before = await row_counts(container)
    for query, args in (
        (UPDATE, {"id": admins, "input": {"description": "mine now"}}),
        (ROTATE, {"id": admins}),
        (SEND_TEST, {"id": admins}),
        (REDELIVER, {"id": delivery}),
        (DELETE, {"id": admins}),
    ):
        refused = await gql(query, args, token=reader.access_token, expect_errors=True)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN", query
    # …and an update that would widen the caller's own endpoint beyond what they can read.
    widened = await gql(
        UPDATE,
        {"id": mine["endpoint"]["id"], "input": {"events": ["user.created", "role.revoked"]}},
        token=reader.access_token,
        expect_errors=True,
    )
    assert widened["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(container) == before

    # Reading needs webhooks:read, and only that.
    assert (await gql(ENDPOINTS, token=watcher.access_token))["data"]["webhookEndpoints"]
    for query in (ENDPOINTS, "{ webhookEventTypes }"):
        refused = await gql(query, token=nobody.access_token, expect_errors=True)
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refused = await gql(ENDPOINTS, expect_errors=True)
    assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# Production: https, public hosts only ------------------------------------------------------


class FakeDNS:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if "production" in request.node.name:
        return {"env": "production"}
    return {}


PRODUCTION_REFUSED = [
    ("http://hooks.example.com/hook", "https_required"),
    ("https://[::ffff:127.0.0.1]/hook", "private_address"),
    ("https://169.254.169.254/latest/meta-data", "private_address"),
    ("https://internal.example.com/hook", "private_address"),  # resolves to 10.0.0.7
    ("https://nowhere.example.com/hook", "unresolvable_host"),
]


async def test_production_refuses_http_and_private_hosts(
    gql: GraphQLClient, container: Container
) -> None:
    container.webhooks.resolve = FakeDNS(
        {
            "internal.example.com": ["10.0.0.7"],
            "mixed.example.com": ["93.184.216.34", "192.168.0.9"],
        }
    )
    admin = await make_admin(container, gql)
    before = await row_counts(container)
    for url, code in PRODUCTION_REFUSED:
        variables = {"input": {"url": url, "events": ["user.created"]}}
        answer = (await gql(CREATE, variables, token=admin.access_token))["data"]
        refused = answer["createWebhookEndpoint"]
        assert refused["__typename"] == "ValidationError", refused
        assert [(f["field"], f["code"]) for f in refused["fields"]] == [("url", code)], url
    assert await row_counts(container) == before


async def test_production_takes_an_https_url_of_a_public_host(
    gql: GraphQLClient, container: Container
) -> None:
    dns = FakeDNS({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    container.webhooks.resolve = dns
    admin = await make_admin(container, gql)
    created = await create_endpoint(gql, admin, "https://hooks.example.com/in", ["user.created"])
    assert created["endpoint"]["url"] == "https://hooks.example.com/in"
    assert dns.asked == ["hooks.example.com"]


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("93.184.216.34", False),
        ("2606:2800:220:1:248:1893:25c8:1946", False),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("10.0.0.1", True),
        ("192.0.0.192", True),  # Oracle Cloud's metadata, IETF-reserved
        ("198.18.0.1", True),  # benchmarking
        ("255.255.255.255", True),
        ("::", True),
        ("::1", True),
        ("::127.0.0.1", True),  # IPv4-compatible
        ("::ffff:8.8.8.8", False),
        ("::ffff:192.168.0.1", True),
        ("2001::a00:1", True),  # Teredo
        ("ff02::1", True),
        ("fc00::1", True),
        ("fe80::1", True),
        ("fd00:ec2::254", True),  # AWS metadata over IPv6
        ("::ffff:a9fe:a9fe", True),  # 169.254.169.254, mapped
        ("2002:7f00:1::1", True),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 around 10.0.0.1
        ("0.0.0.0", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),  # shared address space
        ("168.63.129.16", True),  # Azure's host services
        ("224.0.0.1", True),
        ("::ffff:0:7f00:1", True),  # IPv4-translated (SIIT) around 127.0.0.1
        ("fec0::1", True),  # site-local
        ("192.88.99.1", True),
        ("2001:db8::1", True),  # documentation
    ],
)
def test_which_addresses_a_webhook_may_reach(address: str, refused: bool) -> None:
    assert (hooks.refusal(hooks.parse_ip(address)) is not None) is refused


async def test_a_name_is_refused_whole_if_any_address_is_private() -> None:
    dns = FakeDNS({"mixed.example.com": ["93.184.216.34", "192.168.0.9"]})
    with pytest.raises(
        hooks.AddressRefused, match=r"mixed\.example\.com resolves to a private address"
    ):
        await hooks.checked_addresses("mixed.example.com", 443, dns, allow_private=False)
    with pytest.raises(hooks.AddressRefused) as raised:
        await hooks.checked_addresses("gone.example.com", 443, dns, allow_private=False)
    assert raised.value.code == "unresolvable_host"
    assert await hooks.checked_addresses("mixed.example.com", 443, dns, allow_private=True)
