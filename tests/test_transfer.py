"""Moving users in and out: import with each hash kind, sign-in upgrades, re-imports, export.

Every test runs on SQLite and on PostgreSQL (the `container` and `gql` fixtures).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import orjson
import pytest
from sqlalchemy import delete, select

from identity.container import Container
from identity.db.models import Session, User
from identity.repositories.transfer import TransferRepository
from identity.services.transfer import BadLine, ImportFailed, ImportReport
from tests.admin_helpers import make_admin
from tests.conftest import (
    LOGIN,
    PASSWORD,
    SECRET,
    Database,
    GraphQLClient,
    login,
    register,
    row_counts,
    scalar,
)
from tests.test_foreign_hashes import bcrypt_hash, django_pbkdf2

UPGRADED = "$argon2id$v=19$m=1024,t=1,p=1$"  # the test settings' parameters

AUDIT = ("audit_events",)


def weak_argon2(password: str) -> str:
    return argon2.PasswordHasher(memory_cost=256, time_cost=1, parallelism=1).hash(password)


HASHERS = {
    "bcrypt-2a": lambda pw: bcrypt_hash(pw, "$2a$"),
    "bcrypt-2b": lambda pw: bcrypt_hash(pw, "$2b$"),
    "bcrypt-2y": lambda pw: bcrypt_hash(pw, "$2y$"),
    "django-pbkdf2": django_pbkdf2,
    "argon2-other-parameters": weak_argon2,
}


def user_line(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, **fields}


async def import_lines(
    container: Container, lines: list[dict[str, Any] | str], **options: Any
) -> tuple[ImportReport, list[BadLine]]:
    bad: list[BadLine] = []
    raw = [orjson.dumps(line) if isinstance(line, dict) else line.encode() for line in lines]
    async with container.unit_of_work() as uow:
        report = await container.transfer.import_users(uow, raw, on_bad_line=bad.append, **options)
    return report, bad


async def export_lines(container: Container) -> list[dict[str, Any]]:
    async with container.snapshots() as db:
        return [orjson.loads(line) async for line in container.transfer.export_lines(db)]


async def stored_hash(container: Container, email: str) -> str | None:
    result: str | None = await scalar(
        container, "SELECT password_hash FROM users WHERE email = :e", e=email
    )
    return result


async def role_names(container: Container, email: str) -> list[str]:
    async with container.reads() as db:
        repo = TransferRepository(db)
        by_email = await repo.existing([email])
    async with container.unit_of_work() as uow:
        return [r.name for r in await uow.roles.of_user(by_email[email].id)]


async def is_active(container: Container, email: str) -> bool:
    return bool(await scalar(container, "SELECT is_active FROM users WHERE email = :e", e=email))


async def login_result(gql: GraphQLClient, email: str, password: str) -> str:
    data = await gql(LOGIN, {"input": {"email": email, "password": password}})
    typename: str = data["data"]["login"]["__typename"]
    return typename


# Signing in with an imported hash --------------------------------------------------------


@pytest.mark.parametrize("kind", list(HASHERS))
async def test_imported_user_signs_in_and_the_hash_becomes_argon2id(
    gql: GraphQLClient, container: Container, kind: str
) -> None:
    imported = HASHERS[kind](PASSWORD)
    report, bad = await import_lines(
        container, [user_line("mover@example.com", passwordHash=imported)]
    )
    assert (report.created, bad) == (1, [])

    assert await login_result(gql, "mover@example.com", "not the password") == "InvalidCredentials"
    assert await stored_hash(container, "mover@example.com") == imported

    signed_in = await login(gql, "mover@example.com", PASSWORD)
    upgraded = await stored_hash(container, "mover@example.com")
    assert upgraded is not None
    assert upgraded.startswith(UPGRADED)
    assert upgraded != imported
    me = await gql("{ me { email roles { name } } }", token=signed_in.access_token)
    assert me["data"]["me"] == {"email": "mover@example.com", "roles": [{"name": "user"}]}
    # From now on the argon2id hash answers; it is not re-hashed again.
    await login(gql, "mover@example.com", PASSWORD)
    assert await stored_hash(container, "mover@example.com") == upgraded


async def test_bcrypt_user_with_a_password_over_72_bytes(
    gql: GraphQLClient, container: Container
) -> None:
    password = "correct horse battery staple " * 4  # 116 bytes
    # The old system's bcrypt read only the first 72 bytes, so that is what its hash holds.
    imported = bcrypt_hash(password.encode()[:72])
    await import_lines(container, [user_line("long@example.com", passwordHash=imported)])

    await login(gql, "long@example.com", password)  # bcrypt 5 would raise on 116 bytes
    assert (await stored_hash(container, "long@example.com") or "").startswith(UPGRADED)
    # Upgraded: argon2id reads the whole password, so the old truncation is gone.
    same_prefix = password[:72] + "x" * 44
    assert await login_result(gql, "long@example.com", same_prefix) == "InvalidCredentials"
    await login(gql, "long@example.com", password)


async def test_the_72_byte_rule_never_touches_argon2_users(gql: GraphQLClient) -> None:
    password = "correct horse battery staple " * 4
    await register(gql, "native@example.com", password)
    same_prefix = password[:72] + "x" * 44
    assert await login_result(gql, "native@example.com", same_prefix) == "InvalidCredentials"
    await login(gql, "native@example.com", password)


async def test_a_password_the_old_system_did_not_normalize_still_signs_in(
    gql: GraphQLClient, container: Container
) -> None:
    typed = "\ufb01ve \ufb02ying \ufb01sh"  # ligatures; NFKC makes "five flying fish"
    imported = bcrypt_hash(typed)
    await import_lines(container, [user_line("liga@example.com", passwordHash=imported)])

    await login(gql, "liga@example.com", typed)
    assert (await stored_hash(container, "liga@example.com") or "").startswith(UPGRADED)
    # The new hash is of the normalized password, like every other user's.
    await login(gql, "liga@example.com", typed)
    await login(gql, "liga@example.com", "five flying fish")


async def test_a_user_imported_without_a_hash_cannot_sign_in(
    gql: GraphQLClient, container: Container
) -> None:
    lines: list[dict[str, Any] | str] = [
        user_line("nohash@example.com", passwordHash=None),
        user_line("django-unusable@example.com", passwordHash="!x7Gq2"),
        user_line("absent@example.com"),
    ]
    report, bad = await import_lines(container, lines)
    assert (report.created, bad) == (3, [])
    for line in lines:
        assert isinstance(line, dict)
        assert await stored_hash(container, line["email"]) is None
        assert await login_result(gql, line["email"], PASSWORD) == "InvalidCredentials"


# Re-importing ------------------------------------------------------------------------------


def three_users() -> list[dict[str, Any] | str]:
    return [
        user_line(
            f"user{i}@example.com",
            firstName=f"First{i}",
            lastName="Mover",
            isVerified=i == 0,
            isActive=True,
            roles=["user"],
            createdAt=f"2024-0{i + 1}-15T08:30:00Z",
            passwordHash=bcrypt_hash(PASSWORD),
        )
        for i in range(3)
    ]


async def test_reimport_updates_profile_fields_and_never_duplicates(
    gql: GraphQLClient, container: Container
) -> None:
    lines = three_users()
    first, _ = await import_lines(container, lines)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    counts = await row_counts(container, ignore=AUDIT)  # each import is audited

    again, _ = await import_lines(container, lines)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
    assert await row_counts(container, ignore=AUDIT) == counts

    edited = [dict(line) for line in lines if isinstance(line, dict)]
    edited[1] |= {"email": "USER1@Example.com", "firstName": "Renamed", "isVerified": True}
    third, _ = await import_lines(container, [*edited])
    assert (third.created, third.updated, third.unchanged) == (0, 1, 2)
    assert await row_counts(container, ignore=AUDIT) == counts
    row = await scalar(
        container,
        "SELECT first_name || '/' || last_name FROM users WHERE email = 'user1@example.com'",
    )
    assert row == "Renamed/Mover"
    assert await scalar(
        container, "SELECT is_verified FROM users WHERE email = 'user1@example.com'"
    )
    assert await scalar(container, "SELECT count(*) FROM users") == 3


async def test_reimport_keeps_a_new_password_a_deactivation_and_a_lost_role(
    gql: GraphQLClient, container: Container
) -> None:
    line = user_line(
        "kept@example.com",
        firstName="Kept",
        isActive=True,
        roles=["user", "admin"],
        passwordHash=bcrypt_hash(PASSWORD),
    )
    await import_lines(container, [line])
    await login(gql, "kept@example.com", PASSWORD)  # the hash is now argon2id
    upgraded = await stored_hash(container, "kept@example.com")
    await deactivate_and_take_admin(container, "kept@example.com")

    report, _ = await import_lines(container, [line | {"firstName": "Still Kept"}])
    assert report.updated == 1
    assert await stored_hash(container, "kept@example.com") == upgraded
    assert not await is_active(container, "kept@example.com")
    assert await role_names(container, "kept@example.com") == ["user"]
    first = await scalar(container, "SELECT first_name FROM users WHERE email = 'kept@example.com'")
    assert first == "Still Kept"
    assert await login_result(gql, "kept@example.com", PASSWORD) == "AccountDisabled"


async def deactivate_and_take_admin(container: Container, email: str) -> None:
    async with container.unit_of_work() as uow:
        user = await uow.users.by_email(email)
        admin = await uow.roles.by_name("admin")
        assert user is not None
        assert admin is not None
        user.is_active = False
        assert await uow.roles.take(user.id, admin.id)
        await uow.commit()


async def test_overwrite_makes_the_file_win(gql: GraphQLClient, container: Container) -> None:
    async with container.unit_of_work() as uow:  # so that no line here is the last admin's
        await container.admin.ensure_admin(uow, "root@example.com", PASSWORD, "", "")
    imported = bcrypt_hash(PASSWORD)
    line = user_line("restored@example.com", isActive=True, roles=["user", "admin"])
    await import_lines(container, [line | {"passwordHash": imported}])
    session = await login(gql, "restored@example.com", PASSWORD)
    await deactivate_and_take_admin(container, "restored@example.com")
    # A second user whose line says nothing about hash, active flag or roles.
    await import_lines(
        container, [user_line("quiet@example.com", roles=["admin"], passwordHash=imported)]
    )
    await deactivate_and_take_admin(container, "quiet@example.com")

    report, bad = await import_lines(
        container,
        [line | {"passwordHash": imported}, user_line("quiet@example.com", firstName="Q")],
        overwrite=True,
    )
    assert bad == []
    assert (report.updated, report.sessions_ended) == (2, 1)
    assert await stored_hash(container, "restored@example.com") == imported
    assert await is_active(container, "restored@example.com")
    assert await role_names(container, "restored@example.com") == ["admin", "user"]
    # The new password (the file's) ended the session that was signed in with the other.
    assert await session_ended_by(container, session.user_id) == "import"
    # What a line leaves out stays as it is, even with --overwrite.
    assert await stored_hash(container, "quiet@example.com") == imported
    assert not await is_active(container, "quiet@example.com")
    assert await role_names(container, "quiet@example.com") == []

    # And an explicit null hash or empty role list is the file's word too.
    report, _ = await import_lines(
        container,
        [user_line("restored@example.com", passwordHash=None, roles=[], isActive=False)],
        overwrite=True,
    )
    assert report.updated == 1
    assert await stored_hash(container, "restored@example.com") is None
    assert await role_names(container, "restored@example.com") == []


async def session_ended_by(container: Container, user_id: str) -> str | None:
    async with container.reads() as db:
        stmt = select(Session.revoked_reason).where(Session.user_id == uuid.UUID(user_id))
        reason: str | None = await db.scalar(stmt)
        return reason


async def test_overwrite_never_removes_the_last_active_admin(
    container: Container, gql: GraphQLClient
) -> None:
    async with container.unit_of_work() as uow:
        await container.admin.ensure_admin(uow, "root@example.com", PASSWORD, "", "")
    before = await row_counts(container)
    lines: list[dict[str, Any] | str] = [
        user_line("new@example.com"),
        user_line("root@example.com", roles=["user"]),
    ]
    with pytest.raises(ImportFailed) as failed:
        await import_lines(container, lines, overwrite=True)
    assert (failed.value.first_line, failed.value.last_line) == (1, 2)
    message = str(failed.value)
    assert message.startswith("lines 1 to 2 were not imported (rolled back): LastAdmin: ")
    assert "last active admin" in message
    assert not message.endswith(".")  # the CLI goes on after a semicolon
    with pytest.raises(ImportFailed) as failed:
        await import_lines(container, lines[1:], overwrite=True)
    assert str(failed.value).startswith("line 1 was not imported (rolled back): LastAdmin: ")
    assert await role_names(container, "root@example.com") == ["admin"]
    assert await row_counts(container) == before  # new@ rolled back with its batch
    # Without --overwrite the line is a profile update and the role stays.
    report, _ = await import_lines(container, lines)
    assert report.created == 1
    assert await role_names(container, "root@example.com") == ["admin"]


async def test_overwrite_and_the_api_cannot_together_remove_the_last_admin(
    gql: GraphQLClient, container: Container, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import's last-admin check and the API's take the same lock (found by review)."""
    if database.backend != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL")
    a = await make_admin(container, gql, "a@example.com")
    b = await make_admin(container, gql, "b@example.com")
    checked, go = asyncio.Event(), asyncio.Event()
    count_holders = TransferRepository.active_holders

    calls: list[int] = []

    async def paused(self: TransferRepository, role_name: str) -> int:
        holders = await count_holders(self, role_name)
        calls.append(holders)
        if len(calls) == 2:  # the check in the batch's transaction, before its commit
            checked.set()
            await go.wait()
        return holders

    monkeypatch.setattr(TransferRepository, "active_holders", paused)
    deactivate_a = user_line("a@example.com", isActive=False)
    importing = asyncio.create_task(import_lines(container, [deactivate_a], overwrite=True))
    await checked.wait()
    deactivate_b = asyncio.create_task(
        gql(
            "mutation($id: ID!) { updateUser(id: $id, input: {isActive: false}) { __typename } }",
            {"id": b.user_id},
            token=a.access_token,
        )
    )
    await asyncio.sleep(0.5)  # without the lock, the API call would finish meanwhile
    go.set()
    await importing
    answer = await deactivate_b
    assert answer["data"]["updateUser"]["__typename"] == "LastAdmin"
    active_admins = await scalar(
        container,
        "SELECT count(*) FROM users u JOIN user_roles ur ON ur.user_id = u.id "
        "JOIN roles r ON r.id = ur.role_id WHERE r.name = 'admin' AND u.is_active",
    )
    assert active_admins == 1


# Bad lines, batches, streaming -------------------------------------------------------------


async def test_bad_lines_are_reported_with_their_numbers_and_good_lines_land(
    container: Container,
) -> None:
    good = bcrypt_hash(PASSWORD)
    lines: list[dict[str, Any] | str] = [
        user_line("one@example.com", passwordHash=good),  # 1
        '{"email": "broken@example.com",',  # 2
        user_line("not an address"),  # 3
        user_line("roles@example.com", roles=["user", "wizard"]),  # 4
        user_line("hash@example.com", passwordHash="md5$x$y"),  # 5
        "[1, 2, 3]",  # 6
        user_line("typo@example.com", first_name="Ann"),  # 7
        user_line("when@example.com", createdAt="yesterday"),  # 8
        user_line("ONE@example.com"),  # 9: the same address as line 1, in the same batch
        "",  # 10: blank lines are skipped
        user_line("flags@example.com", isActive="yes", firstName="x" * 101),  # 11
        user_line("two@example.com", firstName="Two", roles=["admin"]),  # 12
    ]
    report, bad = await import_lines(container, lines)
    problems = {b.line: " | ".join(b.problems) for b in bad}
    assert sorted(problems) == [2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert "not valid JSON" in problems[2]
    assert "email: Enter a valid email address." in problems[3]
    assert "no such role: wizard" in problems[4]
    assert "unknown hash format" in problems[5]
    assert "not a JSON object" in problems[6]
    assert "unknown field: first_name" in problems[7]
    assert "createdAt" in problems[8]
    assert "line 1" in problems[9]
    assert "isActive: must be true or false" in problems[11]
    assert "firstName: Use at most 100 characters." in problems[11]  # every problem at once
    assert (report.lines, report.created, report.bad) == (11, 2, 9)
    emails = await scalar(container, "SELECT count(*) FROM users")
    assert emails == 2
    assert await role_names(container, "two@example.com") == ["admin"]


async def test_a_failed_batch_leaves_no_half_batch(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[dict[str, Any] | str] = [
        user_line(f"b{i}@example.com", roles=["user"]) for i in range(1, 6)
    ]
    real_grant = TransferRepository.grant
    calls = 0

    async def failing_grant(self: TransferRepository, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second batch: its users are already upserted when this fails
            raise RuntimeError("disk full")
        await real_grant(self, *args)

    monkeypatch.setattr(TransferRepository, "grant", failing_grant)
    with pytest.raises(ImportFailed) as failed:
        await import_lines(container, lines, batch_size=2)
    assert (failed.value.first_line, failed.value.last_line) == (3, 4)
    assert "RuntimeError: disk full" in str(failed.value)
    assert failed.value.report.created == 2
    stored = await scalar(container, "SELECT count(*) FROM users")
    assert stored == 2  # lines 1-2; nothing of lines 3-4, and line 5 was never reached
    assert await scalar(container, "SELECT count(*) FROM user_roles") == 2

    monkeypatch.setattr(TransferRepository, "grant", real_grant)
    report, _ = await import_lines(container, lines, batch_size=2)
    assert (report.created, report.unchanged) == (3, 2)
    assert await scalar(container, "SELECT count(*) FROM user_roles") == 5


async def test_import_streams_and_commits_batch_by_batch(container: Container) -> None:
    consumed = 0
    at_commit: list[int] = []

    def source() -> Iterator[bytes]:
        nonlocal consumed
        for i in range(35):
            consumed += 1
            yield orjson.dumps(user_line(f"s{i}@example.com"))

    async with container.unit_of_work() as uow:
        real_commit = uow.commit

        async def commit() -> None:
            at_commit.append(consumed)
            await real_commit()

        uow.commit = commit  # type: ignore[method-assign]
        report = await container.transfer.import_users(uow, source(), batch_size=10)
    assert report.created == 35
    # Each batch was written as soon as it was full, before the next line was read.
    assert at_commit[-4:] == [10, 20, 30, 35]


# Export -------------------------------------------------------------------------------------


async def test_export_then_import_is_a_round_trip(gql: GraphQLClient, container: Container) -> None:
    await register(gql, "native@example.com")
    lines: list[dict[str, Any] | str] = [
        user_line(
            "bcrypt@example.com",
            firstName="Bé",
            lastName="Crypt",
            isVerified=True,
            roles=["admin", "user"],
            createdAt="2019-03-04T05:06:07.123456+02:00",
            passwordHash=bcrypt_hash(PASSWORD),
        ),
        user_line("inactive@example.com", isActive=False, roles=[], passwordHash=None),
        user_line("django@example.com", passwordHash=django_pbkdf2(PASSWORD)),
    ]
    await import_lines(container, lines)
    exported = await export_lines(container)
    assert exported[0]["email"] == "bcrypt@example.com"  # the oldest first
    assert len(exported) == 4
    by_email = {u["email"]: u for u in exported}
    assert by_email["bcrypt@example.com"] == {
        "email": "bcrypt@example.com",
        "firstName": "Bé",
        "lastName": "Crypt",
        "isVerified": True,
        "isActive": True,
        "roles": ["admin", "user"],
        "createdAt": "2019-03-04T03:06:07.123456Z",
        "passwordHash": lines[0]["passwordHash"],  # type: ignore[index]
        "appMetadata": {},
        "userMetadata": {},
    }
    assert by_email["native@example.com"]["passwordHash"].startswith(UPGRADED)
    assert by_email["inactive@example.com"]["roles"] == []

    async with container.writes() as db:  # roles, sessions and all go with the users
        await db.execute(delete(User))
        await db.commit()
    assert await scalar(container, "SELECT count(*) FROM user_roles") == 0
    report, bad = await import_lines(container, [*exported])
    assert (report.created, bad) == (4, [])
    again = await export_lines(container)
    assert sorted(again, key=lambda u: u["email"]) == sorted(exported, key=lambda u: u["email"])
    await login(gql, "native@example.com", PASSWORD)
    await login(gql, "bcrypt@example.com", PASSWORD)


# The command line, as a real process --------------------------------------------------------


@pytest.fixture
def cli_env(database: Database) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(
        {
            "IDENTITY_DATABASE_URL": database.url,
            "IDENTITY_SECRET_KEY": SECRET,
            "IDENTITY_ARGON2_MEMORY_COST": "1024",
            "IDENTITY_ARGON2_TIME_COST": "1",
        }
    )
    return env


def identity(
    args: list[str], env: dict[str, str], cwd: Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "identity", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_users_import_and_export_commands(
    cli_env: dict[str, str], tmp_path: Path, gql: GraphQLClient, container: Container
) -> None:
    # The CLI runs on a thread: the app under test (with its background tasks) keeps running
    # meanwhile, as it would beside a real `identity` command.
    source = tmp_path / "users.jsonl"
    source.write_bytes(
        orjson.dumps(
            user_line("cli@example.com", firstName="Cli", passwordHash=bcrypt_hash(PASSWORD))
        )
        + b'\n{"email": "nobody"}\n'
        + orjson.dumps(user_line("cli2@example.com", passwordHash=django_pbkdf2(PASSWORD)))
        + b"\n"
    )
    result = await asyncio.to_thread(identity, ["users", "import", str(source)], cli_env, tmp_path)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr  # a bad line was skipped
    assert "identity: line 2: email: Enter a valid email address." in stderr
    assert "1 bad line skipped" in stderr
    assert "2 created, 0 updated, 0 unchanged; 1 bad lines" in result.stdout.decode()
    assert "Traceback" not in stderr

    await login(gql, "cli@example.com", PASSWORD)  # the running app sees the import
    assert (await stored_hash(container, "cli@example.com") or "").startswith(UPGRADED)

    to_stdout = await asyncio.to_thread(identity, ["users", "export", "-"], cli_env, tmp_path)
    assert to_stdout.returncode == 0, to_stdout.stderr.decode()
    exported = [orjson.loads(line) for line in to_stdout.stdout.splitlines()]
    assert sorted(u["email"] for u in exported) == ["cli2@example.com", "cli@example.com"]
    assert "exported 2 users" in to_stdout.stderr.decode()

    backup = tmp_path / "backup.jsonl"
    to_file = await asyncio.to_thread(identity, ["users", "export", str(backup)], cli_env, tmp_path)
    assert to_file.returncode == 0, to_file.stderr.decode()
    assert backup.stat().st_mode & 0o077 == 0  # it holds password hashes
    assert backup.read_bytes() == to_stdout.stdout
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []

    again = await asyncio.to_thread(
        identity, ["users", "import", "-"], cli_env, tmp_path, stdin=backup.read_bytes()
    )
    assert again.returncode == 0, again.stderr.decode()
    assert "0 created, 0 updated, 2 unchanged; 0 bad lines" in again.stdout.decode()

    missing = await asyncio.to_thread(
        identity, ["users", "import", str(tmp_path / "nope.jsonl")], cli_env, tmp_path
    )
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr.decode()


async def test_the_guides_example_line_imports(gql: GraphQLClient, container: Container) -> None:
    guide = Path(__file__).resolve().parents[1] / "docs" / "guides" / "moving-users.md"
    section = guide.read_text(encoding="utf-8")
    example = next(line for line in section.splitlines() if line.startswith('{"email"'))
    report, bad = await import_lines(container, [example])
    assert (report.created, bad) == (1, [])
    exported = await export_lines(container)
    assert exported == [orjson.loads(example)]
    # The guide names the password behind the example's bcrypt hash.
    password = section.split("is bcrypt's for `", 1)[1].split("`", 1)[0]
    answer = await gql(LOGIN, {"input": {"email": "ann@example.com", "password": password}})
    assert answer["data"]["login"]["__typename"] == "AuthPayload"
