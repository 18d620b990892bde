"""Webhook deliveries per second to a local receiver, and `me`'s p99 while they flow.

    .venv/bin/python -m bench.webhooks [--deliveries 5000] [--concurrency 8]

One `identity serve` (1 worker, PostgreSQL) and a minimal HTTP receiver (a process of its own
that answers 204 on kept-alive connections) on loopback. It measures `me` alone for a few
seconds, then queues `--deliveries` rows for one endpoint in one statement and measures how
long the server's webhook sender takes to deliver them all (signing, posting, recording
each), with `me` running alongside from the same client as before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench.procs import Process, free_port
from bench.seed import create_database, drop_database

REPO = str(Path(__file__).resolve().parents[1])
ADMIN_DSN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "bench admin passphrase"
ME = "{ me { id email roles { name } } }"


async def _receiver(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _me_load(
    url: str, token: str, clients: int, seconds: float = 0, stop: asyncio.Event | None = None
) -> list[float]:
    """`me` from `clients` concurrent callers, for `seconds` or until `stop` is set."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:

        async def one() -> None:
            while not stop.is_set() if stop is not None else time.monotonic() < deadline:
                started = time.perf_counter()
                response = await http.post("/graphql", json={"query": ME}, headers=headers)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
                assert '"me"' in response.text

        await asyncio.gather(*(one() for _ in range(clients)))
    return latencies


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] * 1000


async def main(args: argparse.Namespace) -> None:
    name = f"identity_bench_webhooks_{int(time.time())}"
    await create_database(ADMIN_DSN, name)
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {
        "IDENTITY_DATABASE_URL": f"{base}/{name}",
        "IDENTITY_SECRET_KEY": secrets.token_urlsafe(48),
        "IDENTITY_WEBHOOK_POLL_INTERVAL": "0.2",
        "IDENTITY_WEBHOOK_CONCURRENCY": str(args.concurrency),
        "IDENTITY_LOG_LEVEL": "WARNING",
        "IDENTITY_RATE_LIMIT_LOGIN_ADDRESS": "100000/minute",
    }
    work = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    identity = [sys.executable, "-m", "identity"]
    subprocess.run(  # noqa: ASYNC221 - set-up, before anything is measured
        [*identity, "migrate"], env=env, cwd=work, check=True, capture_output=True
    )
    subprocess.run(  # noqa: ASYNC221
        [*identity, "create-admin", "--email", "admin@example.com"],
        env=env,
        cwd=work,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    receiver_port, port = free_port(), free_port()
    receiver = Process(
        "receiver",
        [sys.executable, "-m", "bench.webhooks", "--receiver", str(receiver_port)],
        {**os.environ, "PYTHONPATH": REPO},
        work,
        receiver_port,
    )
    server = Process("identity", [*identity, "serve", "--port", str(port)], env, work, port)
    try:
        server.wait_ready(lambda url: httpx.get(f"{url}/ready").status_code == 200)
        receiver.wait_ready(lambda url: bool(httpx.post(f"{url}/hook", content=b"{}")))
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            login = await http.post(
                "/graphql",
                json={
                    "query": "mutation($i: LoginInput!) { login(input: $i) "
                    "{ ... on AuthPayload { accessToken } } }",
                    "variables": {"i": {"email": "admin@example.com", "password": PASSWORD}},
                },
            )
            token = login.json()["data"]["login"]["accessToken"]
            created = await http.post(
                "/graphql",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "query": "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint"
                    "(input: $i) { ... on CreateWebhookEndpointSuccess { endpoint { id } } } }",
                    "variables": {
                        "i": {
                            "url": f"http://127.0.0.1:{receiver_port}/hook",
                            "events": ["user.created"],
                        }
                    },
                },
            )
            endpoint_id = created.json()["data"]["createWebhookEndpoint"]["endpoint"]["id"]

        alone = await _me_load(server.url, token, args.clients, seconds=args.seconds)
        if args.alone:  # deliveries with nothing else going on
            args.clients = 0
        conn = await asyncpg.connect(f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}")
        try:
            body = '{"type":"webhook.test","timestamp":"2026-12-02T00:00:00Z","data":{}}'
            started = time.monotonic()
            await conn.execute(
                "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event, body, state,"
                " attempts, next_attempt_at, created_at) SELECT gen_random_uuid(), $1,"
                " gen_random_uuid(), 'webhook.test', $2, 'pending', 0, now(), now()"
                " FROM generate_series(1, $3)",
                uuid.UUID(endpoint_id),
                body,
                args.deliveries,
            )
            stop = asyncio.Event()
            load = asyncio.create_task(_me_load(server.url, token, args.clients, stop=stop))
            deadline = started + 600
            while time.monotonic() < deadline:
                done = await conn.fetchval(
                    "SELECT count(*) FROM webhook_deliveries WHERE state <> 'pending'"
                )
                if done >= args.deliveries:
                    break
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            stop.set()
            during = await load
            delivered = await conn.fetchval(
                "SELECT count(*) FROM webhook_deliveries WHERE state = 'delivered'"
            )
        finally:
            await conn.close()
        if args.json:
            figures = {
                "deliveries_per_s": args.deliveries / elapsed,
                "delivered": delivered,
                "me_rps_alone": len(alone) / args.seconds,
                "me_rps_during": len(during) / elapsed,
                "me_p99_ms": _p99(during) if len(during) > 1 else 0.0,
            }
            print("BENCH_WEBHOOKS " + json.dumps(figures))
        print(
            f"deliveries: {delivered}/{args.deliveries} in {elapsed:.1f} s: "
            f"{args.deliveries / elapsed:.0f} per second (concurrency {args.concurrency})"
        )
        print(
            f"me alone:            {len(alone) / args.seconds:.0f} req/s, "
            f"p50 {statistics.median(alone) * 1000:.1f} ms, p99 {_p99(alone):.1f} ms"
        )
        if during:
            print(
                f"me while delivering: {len(during)} requests, "
                f"p50 {statistics.median(during) * 1000:.1f} ms, p99 {_p99(during):.1f} ms"
            )
    finally:
        server.stop()
        receiver.stop()
        await drop_database(ADMIN_DSN, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4, help="concurrent `me` callers")
    parser.add_argument("--seconds", type=float, default=5, help="`me` alone, before")
    parser.add_argument("--alone", action="store_true", help="no `me` while delivering")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.receiver:
        asyncio.run(_receiver(arguments.receiver))
    else:
        asyncio.run(main(arguments))
