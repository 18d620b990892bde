"""The `identity` command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from identity.config import Settings
from identity.db.migrate import HEAD
from tests.conftest import PASSWORD, SECRET, Database, make_settings, reset_database

IDENTITY = [sys.executable, "-m", "identity"]
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema.graphql"


@pytest.fixture
async def cli_env(database: Database, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(
        {
            "IDENTITY_DATABASE_URL": database.url,
            "IDENTITY_SECRET_KEY": SECRET,
            "IDENTITY_ARGON2_MEMORY_COST": "1024",
            "IDENTITY_ARGON2_TIME_COST": "1",
        }
    )
    yield env
    await reset_database(make_settings(database.url, tmp_path))


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*IDENTITY, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(values)
    return env


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"IDENTITY_ACCESS_TOKEN_TTL": "soon"}, "IDENTITY_ACCESS_TOKEN_TTL"),
        ({"IDENTITY_ENV": "staging"}, "IDENTITY_ENV"),
        ({"IDENTITY_ENV": "production"}, "IDENTITY_SECRET_KEY"),
        ({"IDENTITY_DATABASE_URL": "mysql://x"}, "IDENTITY_DATABASE_URL"),
        ({"IDENTITY_JWT_ALGORITHM": "HS256"}, "IDENTITY_JWT_ALGORITHM"),
        (
            {"IDENTITY_ENV": "production", "IDENTITY_SECRET_KEY": SECRET},
            "IDENTITY_MAIL_URL",  # the console transport is refused in production
        ),
        (
            {"IDENTITY_PASSWORD_RESET_URL": "https://app/reset?token={token}"},
            "IDENTITY_PASSWORD_RESET_URL",
        ),
        ({"IDENTITY_MAIL_URL": "pigeon://coop"}, "IDENTITY_MAIL_URL"),
    ],
)
def test_bad_configuration_fails_with_one_line(
    env: dict[str, str], setting: str, tmp_path: Path
) -> None:
    result = run(["migrate"], clean_env(**env), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("identity: configuration error:")
    assert setting in lines[0]
    assert "Traceback" not in result.stderr


def test_export_schema_prints_the_checked_in_schema(tmp_path: Path) -> None:
    result = run(["export-schema"], clean_env(), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8")


async def test_create_admin_reads_password_from_stdin_and_is_idempotent(
    cli_env: dict[str, str],
) -> None:
    first = run(
        ["create-admin", "--email", "Root@Example.com"], cli_env, stdin="a long admin passphrase\n"
    )
    assert first.returncode == 0, first.stderr
    assert "created admin root@example.com" in first.stdout
    again = run(["create-admin", "--email", "root@example.com"], cli_env, stdin="")
    assert again.returncode == 0, again.stderr
    assert "already an admin" in again.stdout


async def test_create_admin_promotes_an_existing_user(
    cli_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    from identity.container import Container

    container = Container.create(make_settings(database.url, tmp_path))
    try:
        async with container.unit_of_work() as uow:
            await container.admin.ensure_admin(uow, "boss@example.com", "first passphrase!", "", "")
        async with container.unit_of_work() as uow:
            user = await uow.users.by_email("boss@example.com")
            assert user is not None
            admin = await uow.roles.by_name("admin")
            assert admin is not None
            await uow.roles.take(user.id, admin.id)
            await uow.commit()
    finally:
        await container.close()
    # A password given for an existing account does not replace theirs, and says so.
    result = run(["create-admin", "--email", "boss@example.com"], cli_env, "another passphrase\n")
    assert result.returncode == 0, result.stderr
    assert "boss@example.com is now an admin; their password is unchanged" in result.stdout
    container = Container.create(make_settings(database.url, tmp_path))
    try:
        async with container.reading() as uow:
            user = await uow.users.by_email("boss@example.com")
            assert user is not None
        hasher = container.runtime.hasher
        assert (await hasher.verify(user.password_hash, "first passphrase!")).ok
    finally:
        await container.close()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--email", "not an email"], "a long admin passphrase\n", "email: Enter a valid email"),
        (["--email", "a@example.com"], "password\n", "password: "),
        (["--email", "a@example.com", "--password", "short"], None, "password: Use at least 8"),
    ],
)
async def test_create_admin_refuses_bad_input(
    cli_env: dict[str, str], args: list[str], stdin: str | None, message: str
) -> None:
    result = run(["create-admin", *args], cli_env, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


async def test_keys_rotate_list_revoke(
    cli_env: dict[str, str], database: Database, tmp_path: Path
) -> None:
    # The first key is made at first start; `keys rotate` on an empty table makes a pending one.
    rotated = run(["keys", "rotate", "--activate-in", "0"], cli_env)
    assert rotated.returncode == 0, rotated.stderr
    first = rotated.stdout.split()[3].rstrip(";")
    rotated = run(["keys", "rotate"], cli_env)
    second = rotated.stdout.split()[3].rstrip(";")
    listed = run(["keys", "list"], cli_env)
    assert listed.returncode == 0
    states = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert states == {first: "active", second: "pending"}

    revoked = run(["keys", "revoke", first], cli_env)
    assert revoked.returncode == 0, revoked.stderr
    assert "signs from now on" in revoked.stdout  # the active key was replaced at once
    listed = run(["keys", "list"], cli_env)
    states = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert states[first] == "revoked"
    assert list(states.values()).count("active") == 1

    # Revoking a signer that had replaced an older, still published key makes a new key:
    # the older one never signs again.
    rotated = run(["keys", "rotate", "--activate-in", "0"], cli_env)
    newest = rotated.stdout.split()[3].rstrip(";")
    listed = run(["keys", "list"], cli_env)
    states = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    (retired,) = [kid for kid, state in states.items() if state == "retired"]
    assert states[newest] == "active"
    revoked = run(["keys", "revoke", newest], cli_env)
    assert revoked.returncode == 0, revoked.stderr
    listed = run(["keys", "list"], cli_env)
    states = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    (active,) = [kid for kid, state in states.items() if state == "active"]
    assert active not in (retired, newest, first)
    assert f"identity: {active} signs from now on" in revoked.stdout
    assert states[retired] == "retired"

    unknown = run(["keys", "revoke", "no-such-kid"], cli_env)
    assert unknown.returncode == 1
    # A key id may start with "-" (base64url): it is still the id, not an option.
    dashed = run(["keys", "revoke", "-To053-X5uHcBYr3tXmLtzk7W7Z"], cli_env)
    assert dashed.returncode == 1
    assert "no unrevoked key -To053-X5uHcBYr3tXmLtzk7W7Z" in dashed.stderr


def test_production_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = clean_env(
        IDENTITY_ENV="production",
        IDENTITY_SECRET_KEY=SECRET,
        IDENTITY_MAIL_URL=f"file://{tmp_path / 'mail'}",
        IDENTITY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}",
    )
    result = run(["serve", "--port", "0"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "run `identity migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_workers_on_sqlite(tmp_path: Path) -> None:
    env = clean_env(IDENTITY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    result = run(["serve", "--workers", "2"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "PostgreSQL" in result.stderr


def test_commands_elsewhere_create_no_database_and_no_secret(tmp_path: Path) -> None:
    # The development defaults: ./identity.db and ./.identity-secret in the working folder.
    for command in (["keys", "list"], ["mail", "status"], ["users", "export", "-"]):
        result = run(command, clean_env(), cwd=tmp_path)
        assert result.returncode == 1
        assert "no database at ./identity.db: run this command in the folder" in result.stderr
    result = run(
        ["create-admin", "--email", "ann@example.com"], clean_env(), PASSWORD + "\n", tmp_path
    )
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_migrate_then_commands_work(tmp_path: Path) -> None:
    env = clean_env(
        IDENTITY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        IDENTITY_SECRET_KEY=SECRET,
    )
    before = run(["keys", "list"], env, cwd=tmp_path)
    assert before.returncode == 1
    assert "identity migrate" in before.stderr
    migrated = run(["migrate", "--revision", "0002"], env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "identity: database at 0002 (was empty)" in migrated.stdout
    migrated = run(["migrate"], env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert f"identity: database at {HEAD} (was 0002)" in migrated.stdout
    assert run(["keys", "list"], env, cwd=tmp_path).returncode == 0
    again = run(["migrate"], env, cwd=tmp_path)
    assert f"identity: database at {HEAD}, already up to date" in again.stdout


@pytest.mark.parametrize(
    ("revision", "message"),
    [
        ("0003", f"the database is at {HEAD}, which is not older than 0003: nothing done"),
        ("9999", "cannot migrate to '9999': Can't locate revision identified by '9999'"),
    ],
)
def test_migrate_refuses_older_and_unknown_revisions(
    tmp_path: Path, revision: str, message: str
) -> None:
    env = clean_env(
        IDENTITY_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        IDENTITY_SECRET_KEY=SECRET,
    )
    assert run(["migrate"], env, cwd=tmp_path).returncode == 0
    result = run(["migrate", "--revision", revision], env, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert run(["keys", "list"], env, cwd=tmp_path).returncode == 0  # still at head


def test_development_secret_is_generated_into_a_private_file(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, secret_key_file=tmp_path / "secret")  # type: ignore[call-arg]
    first = settings.secret()
    assert len(first) >= 32
    assert (tmp_path / "secret").stat().st_mode & 0o077 == 0
    assert settings.secret() == first  # kept, not regenerated


async def test_clients_create_list_rotate_delete(cli_env: dict[str, str]) -> None:
    created = run(
        ["clients", "create", "Team wiki", "--redirect-uri", "https://wiki.example.com/cb"],
        cli_env,
    )
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(": ", 1) for line in created.stdout.splitlines())
    client_id, secret = lines["client_id"], lines["client_secret"]
    assert len(secret) >= 43
    assert "shown this once" in created.stderr
    listed = run(["clients", "list"], cli_env)
    assert client_id in listed.stdout
    assert "confidential" in listed.stdout
    assert secret not in listed.stdout

    rotated = run(["clients", "rotate-secret", client_id], cli_env)
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("client_secret: ")
    assert secret not in rotated.stdout

    public = run(
        ["clients", "create", "SPA", "--public", "--redirect-uri", "http://localhost:5173/cb"],
        cli_env,
    )
    assert public.returncode == 0
    assert "client_secret" not in public.stdout
    bad = run(["clients", "create", "Bad", "--redirect-uri", "http://example.com/cb"], cli_env)
    assert bad.returncode == 1
    assert "redirectUris" in bad.stderr

    deleted = run(["clients", "delete", client_id], cli_env)
    assert deleted.returncode == 0, deleted.stderr
    assert client_id not in run(["clients", "list"], cli_env).stdout
    assert run(["clients", "delete", client_id], cli_env).returncode == 1
