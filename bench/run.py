"""One command: a fresh PostgreSQL database, seeded users, identity on it, wrk against it.

    .venv/bin/python -m bench [--users 10000] [--duration 10] [--profile]

It prints a Markdown table (requests/s, p50, p99, server CPU per request, peak RSS per
scenario), the two references measured in the same run (raw argon2id verify rate on every
core; a hand-written Starlette `me` in bench/floor_app.py) and the ratios against the targets
of issue 6, and writes the same to bench/results/<timestamp>.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from bench import dpop, loadgen, mfa, passkeys, procs, profile_summary, references, report, seed
from bench.loadgen import Load, Result
from identity.config import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

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
        "me-under-login-flood",
        "`me` during a login flood",
        me_load,
        background=login_load,
        warmup=False,
    ),
]


# Measuring ---------------------------------------------------------------------------------


NOISY = 0.1  # CPUs' worth used by other processes that makes a measurement suspect


def measure(b: Bench, s: Scenario, url: str, monitor: procs.Monitor) -> Result:
    """Warm up, wait for a quiet machine, measure; again (up to --retries) if it was noisy."""
    opts = b.opts
    if s.warmup and opts.warmup > 0:
        loadgen.run(s.load(b), url, opts.warmup, opts.threads)
    tries = 1
    result = _measure_once(b, s, url, monitor)
    while result.others > NOISY and tries <= opts.retries:
        print(f"bench:   noisy ({result.others:.2f} CPUs used by others), again", flush=True)
        tries += 1
        result = _measure_once(b, s, url, monitor)
    if tries > 1:
        result.note = "; ".join(filter(None, [f"measured {tries} times", result.note]))
    return result


def _measure_once(b: Bench, s: Scenario, url: str, monitor: procs.Monitor) -> Result:
    opts = b.opts
    busy_before = procs.wait_until_quiet(opts.wait_quiet)
    load = s.load(b)  # after the wait: some loads hold codes that are good for a minute
    flood = None
    if s.background is not None:
        # It starts first and outlasts the measured run, so hashing is saturated throughout.
        flood = loadgen.start(s.background(b), url, opts.duration + 3, opts.threads)
        time.sleep(2)
    with monitor.window() as window:
        result = loadgen.run(load, url, opts.duration, opts.threads)
    result.rss_mb = window.rss_mb
    result.cpu_ms = 1000 * window.cpu_s / max(1, result.requests)
    result.busy = window.busy
    result.others = window.others
    notes = []
    if busy_before > 0.15:
        notes.append(f"machine {100 * busy_before:.0f} % busy before it")
    if window.others > NOISY:
        notes.append(f"NOISY: other processes used {window.others:.2f} CPUs")
    if flood is not None:
        beside = loadgen.finish(flood)
        notes.append(f"login beside it: {beside.rps:.1f} req/s, {beside.failures} failed")
    result.note = "; ".join(notes)
    return result


def measure_argon2(b: Bench, monitor: procs.Monitor) -> tuple[float, str]:
    """Reference 1, again (up to --retries) if other processes were busy meanwhile."""
    opts = b.opts
    tries = 0
    while True:
        tries += 1
        procs.wait_until_quiet(opts.wait_quiet)
        with monitor.window() as window:
            rate = references.argon2_verify_rate(opts.argon2, opts.argon2_seconds)
        if window.others <= NOISY or tries > opts.retries:
            break
        print(f"bench:   noisy ({window.others:.2f} CPUs used by others), again", flush=True)
    notes = [f"measured {tries} times"] if tries > 1 else []
    if window.others > NOISY:
        notes.append(f"NOISY: other processes used {window.others:.2f} CPUs")
    return rate, "; ".join(notes)


def profile(b: Bench, s: Scenario) -> str | None:
    """Run the scenario again under py-spy (the table keeps the unprofiled figures)."""
    out = RESULTS / f"{b.opts.stamp}-{s.key}.folded"
    time.sleep(3)  # requests still queued from the previous scenario drain
    procs.wait_until_quiet(b.opts.wait_quiet)
    flood = None
    if s.background is not None:
        flood = loadgen.start(s.background(b), b.server.url, b.opts.duration + 3, 1)
        time.sleep(2)
    load = s.load(b)
    spy = subprocess.Popen(
        [
            *(b.opts.py_spy, "record", "--pid", str(b.server.pid)),
            *("--duration", str(max(1, round(b.opts.duration))), "--rate", "200"),
            *("--nonblocking", "--threads", "--format", "raw", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)  # py-spy attaches
    loadgen.run(load, b.server.url, b.opts.duration, b.opts.threads)
    spy.wait(timeout=b.opts.duration + 30)
    if flood is not None:
        loadgen.finish(flood)
    if not out.exists():
        return None
    print(f"bench:   profile in {out.relative_to(ROOT)}", flush=True)
    return f"From `{out.relative_to(ROOT)}`.\n\n" + profile_summary.summarize(out.read_text())


def measure_floor(b: Bench, env: dict[str, str], dsn: str) -> Result:
    """Reference 2: the hand-written `me`, on the same database, with identity's tokens."""
    port = procs.free_port()
    floor_env = env | {
        "BENCH_FLOOR_DSN": dsn,
        "BENCH_FLOOR_ISSUER": env["IDENTITY_PUBLIC_URL"],
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    floor = procs.Process("floor", command, floor_env, b.work, port)
    try:
        floor.wait_ready(lambda url: httpx.post(f"{url}/graphql", content=b"{}").is_success)
        monitor = procs.Monitor(floor.pid)
        try:
            return measure(b, Scenario("floor", "floor", me_load), floor.url, monitor)
        finally:
            monitor.close()
    finally:
        floor.stop()


def show(r: Result) -> str:
    return (
        f"{r.rps:,.1f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
        f"{r.cpu_ms:.2f} CPU ms/req, {r.failures} failed"
    )


def run(b: Bench, env: dict[str, str], dsn: str, out: report.Run) -> None:
    opts = b.opts
    monitor = procs.Monitor(b.server.pid)
    out.idle_rss_mb = procs.status_kib(b.server.pid, "VmRSS") / 1024
    try:
        if not opts.no_references:
            print("bench: reference 1, raw argon2id verify rate", flush=True)
            out.argon2_rate, out.argon2_note = measure_argon2(b, monitor)
            print(f"bench:   {out.argon2_rate:.1f} verifications/s", flush=True)
            print("bench: reference 2, hand-written Starlette me (floor)", flush=True)
            out.floor = measure_floor(b, env, dsn)
            print(f"bench:   {show(out.floor)}", flush=True)
        for s in SCENARIOS:
            if s.key not in opts.only:
                continue
            out.rows.append((s.key, s.title))
            reason = s.skip(b)
            if reason is not None:
                out.skipped[s.key] = reason
                print(f"bench: {s.key}: {reason}", flush=True)
                continue
            print(f"bench: {s.key}", flush=True)
            out.results[s.key] = measure(b, s, b.server.url, monitor)
            print(f"bench:   {show(out.results[s.key])}", flush=True)
        out.peak_rss_mb = monitor.peak_rss_mb()
        for s in SCENARIOS:
            if s.key in opts.profile and s.key in out.results:
                print(f"bench: profiling {s.key}", flush=True)
                summary = profile(b, s)
                if summary:
                    out.profiles[s.key] = summary
    finally:
        monitor.close()


# Main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--users", type=int, default=10_000, help="seeded users (10 000)")
    add(
        "--mfa-users",
        type=int,
        default=50_000,
        help="extra users with an authenticator app, each signs in once (50 000)",
    )
    add("--duration", type=float, default=10, help="seconds per scenario (10)")
    add("--warmup", type=float, default=2, help="seconds of warm-up before each (2)")
    add("--connections", type=int, default=16, help="wrk connections (16)")
    add("--login-connections", type=int, default=16, help="for login and register (16)")
    add("--threads", type=int, default=1, help="wrk threads (1)")
    add("--only", help="comma-separated: " + ",".join(s.key for s in SCENARIOS))
    add(
        "--profile",
        nargs="?",
        const="me,refresh,login",
        default="",
        help="profile these scenarios with py-spy after measuring (default: me,refresh,login)",
    )
    add("--no-references", action="store_true", help="skip the argon2 and floor references")
    add("--argon2-seconds", type=float, default=5, help="argon2 reference run (5)")
    add("--wait-quiet", type=float, default=60, help="wait up to this for an idle machine (60)")
    add("--retries", type=int, default=2, help="measure a noisy run again, this often (2)")
    add(
        "--jwt-algorithm",
        default=Settings.model_fields["jwt_algorithm"].default,
        choices=["RS256", "ES256", "EdDSA"],
    )
    add(
        "--admin-dsn",
        default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="the PostgreSQL server to create the database on (BENCH_POSTGRES)",
    )
    add("--keep-db", action="store_true", help="do not drop the database afterwards")
    add(
        "--serve-wrapper",
        help="what-if experiments: a Python file that starts identity instead of "
        "`python -m identity` (it patches something, then calls identity.cli.main())",
    )
    opts = parser.parse_args(argv)
    opts.only = set(opts.only.split(",")) if opts.only else {s.key for s in SCENARIOS}
    opts.profile = set(filter(None, opts.profile.split(",")))
    opts.stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    opts.command = " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)])
    fields = Settings.model_fields  # identity's defaults, so the benchmark follows them
    opts.argon2 = seed.Argon2Params(
        memory_cost=fields["argon2_memory_cost"].default,
        time_cost=fields["argon2_time_cost"].default,
        parallelism=fields["argon2_parallelism"].default,
    )
    return opts


def preflight(opts: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed: apt-get install wrk")
    if opts.profile:
        opts.py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(opts.py_spy).exists():
            sys.exit("bench: --profile needs py-spy: pip install py-spy")

    async def version() -> str:
        conn = await asyncpg.connect(opts.admin_dsn, timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        opts.postgres = "PostgreSQL " + asyncio.run(version()).split()[0]
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"bench: PostgreSQL is not reachable at {opts.admin_dsn}: {exc}")


def server_env(opts: argparse.Namespace, dsn: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(
        {
            "IDENTITY_ENV": "production",
            "IDENTITY_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            "IDENTITY_SECRET_KEY": secrets.token_urlsafe(48),
            "IDENTITY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "IDENTITY_ARGON2_MEMORY_COST": str(opts.argon2.memory_cost),
            "IDENTITY_ARGON2_TIME_COST": str(opts.argon2.time_cost),
            "IDENTITY_ARGON2_PARALLELISM": str(opts.argon2.parallelism),
            "IDENTITY_JWT_ALGORITHM": opts.jwt_algorithm,
            # All benchmark traffic comes from 127.0.0.1: the per-address limits are raised so
            # the benchmark measures hashing, not refusals. Per-account limits stay as they are.
            "IDENTITY_RATE_LIMIT_LOGIN_ADDRESS": "1000000/minute",
            "IDENTITY_RATE_LIMIT_REGISTER_ADDRESS": "1000000/minute",
            "IDENTITY_RATE_LIMIT_PASSKEY_ADDRESS": "1000000/minute",
            # A few hundred passkeys answer every challenge: each signs in often.
            "IDENTITY_RATE_LIMIT_PASSKEY_CREDENTIAL": "1000000/minute",
            "IDENTITY_WEBAUTHN_RP_ID": passkeys.RP_ID,
            "IDENTITY_WEBAUTHN_ORIGINS": passkeys.origin(port),
            # Production refuses the console transport; registrations queue verification mail.
            "IDENTITY_MAIL_URL": f"file://{tempfile.gettempdir()}/identity-bench-mail-{port}",
        }
    )
    return env


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    preflight(opts)
    RESULTS.mkdir(exist_ok=True)
    database = f"identity_bench_{opts.stamp.replace('-', '_')}"
    dsn = f"{opts.admin_dsn.rsplit('/', 1)[0]}/{database}"
    port = procs.free_port()
    env = server_env(opts, dsn, port)
    identity = [sys.executable, "-m", "identity"]
    print(f"bench: database {database}", flush=True)
    asyncio.run(seed.create_database(opts.admin_dsn, database))
    server: procs.Process | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="identity-bench-") as tmp:
            work = Path(tmp)
            with (work / "migrate.log").open("w") as log:
                subprocess.run(
                    [*identity, "migrate"], env=env, cwd=work, check=True, stdout=log, stderr=log
                )
            print(f"bench: seeding {opts.users:,} users", flush=True)
            seconds = asyncio.run(seed.seed_users(dsn, opts.users, opts.argon2))
            mfa_users: list[mfa.MfaUser] = []
            if "verify-mfa" in opts.only:
                print(f"bench: seeding {opts.mfa_users:,} users with an authenticator app")
                password_hash = opts.argon2.hasher().hash(seed.PASSWORD)
                mfa_users = asyncio.run(
                    mfa.seed_mfa_users(
                        dsn, opts.mfa_users, password_hash, env["IDENTITY_SECRET_KEY"]
                    )
                )
            passkey_users: list[passkeys.PasskeyUser] = []
            if "passkey-login" in opts.only:
                print(f"bench: seeding {PASSKEY_USERS} users with a passkey")
                password_hash = opts.argon2.hasher().hash(seed.PASSWORD)
                passkey_users = asyncio.run(
                    passkeys.seed_passkey_users(dsn, PASSKEY_USERS, password_hash)
                )
            schema = subprocess.run(
                [*identity, "export-schema"], env=env, cwd=work, check=True, capture_output=True
            ).stdout.decode()
            serve = [sys.executable, opts.serve_wrapper] if opts.serve_wrapper else identity
            command = [*serve, "serve", "--port", str(port)]
            server = procs.Process("identity", command, env, work, port)
            server.wait_ready(lambda url: httpx.get(f"{url}/health").status_code == 200)
            out = report.Run(
                stamp=opts.stamp,
                command=opts.command,
                machine=procs.machine(ROOT) | {"postgres": opts.postgres},
                setup=(
                    f"Setup: {opts.users:,} users (+1 admin) seeded in {seconds:.1f} s; identity "
                    f"`serve`, 1 worker, IDENTITY_ENV=production, argon2id "
                    f"m={opts.argon2.memory_cost} t={opts.argon2.time_cost} "
                    f"p={opts.argon2.parallelism}, JWT {opts.jwt_algorithm}; wrk -t{opts.threads}, "
                    f"{opts.connections} connections ({opts.login_connections} for login and "
                    f"register), {opts.duration:g} s per scenario after {opts.warmup:g} s of "
                    "warm-up; server, PostgreSQL and wrk on the same cores."
                    + (f" Server started by {opts.serve_wrapper}." if opts.serve_wrapper else "")
                ),
            )
            try:
                bench = Bench(opts, work, server, schema, dsn=dsn)
                bench.secret_key, bench.mfa_users = env["IDENTITY_SECRET_KEY"], mfa_users
                bench.passkey_users = passkey_users
                run(bench, env, dsn, out)
            except BaseException:
                print(f"bench: identity log tail:\n{server.tail()}", file=sys.stderr)
                raise
            finally:
                server.stop()
    finally:
        if opts.keep_db:
            print(f"bench: kept database {database}")
        else:
            asyncio.run(seed.drop_database(opts.admin_dsn, database))
    text = report.render(out)
    path = RESULTS / f"{opts.stamp}.md"
    path.write_text(text)
    print(f"\n{text}\nbench: written to {path.relative_to(ROOT)}")
