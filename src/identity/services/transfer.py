"""Moving users in and out: JSON Lines import (batched, idempotent) and export (streamed).

A line is one user:

    {"email": "ann@example.com", "firstName": "Ann", "lastName": "Lee", "isVerified": true,
     "isActive": true, "roles": ["user"], "createdAt": "2024-05-01T09:30:00Z",
     "passwordHash": "$2b$12$…", "appMetadata": {"plan": "pro"}, "userMetadata": {}}

Only `email` is required. A user who is not there yet is created from the line. For one who
is, the line updates the profile (names, verified flag) and nothing else: a re-run never
undoes what happened since (a new password, a deactivation, a role taken away). With
`overwrite` the file wins for the password hash, the active flag and the roles too. Either
way a field the line leaves out (or sets to null) stays as it is, as in the API's updates;
only `"passwordHash": null` says "no password" (the user then resets it). The two metadata
objects are profile fields, checked like the API's (JSON objects of at most 4 KiB).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from identity.repositories.transfer import TransferRepository
from identity.security import foreign
from identity.services.errors import LastAdmin
from identity.services.rules import ADMIN_ROLE, USER_ROLE
from identity.services.runtime import Runtime
from identity.services.uow import UnitOfWork
from identity.services.validation import Checker

FIELDS = (
    "email",
    "firstName",
    "lastName",
    "isVerified",
    "isActive",
    "roles",
    "createdAt",
    "passwordHash",
    "appMetadata",
    "userMetadata",
)
# Columns a line may change on an existing user: always, and only with overwrite.
PROFILE = ("first_name", "last_name", "is_verified", "app_metadata", "user_metadata")
GUARDED = ("password_hash", "is_active")
BATCH_SIZE = 1000
MAX_BATCH_SIZE = 2000  # bound parameters per statement stay under every driver's limit
MAX_HASH_LENGTH = 512  # the column's size
SESSIONS_ENDED = "import"


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    email: str
    first_name: str
    last_name: str
    is_verified: bool
    is_active: bool
    roles: tuple[str, ...] | None  # None: not given
    created_at: datetime | None
    password_hash: str | None
    given: frozenset[str]  # the columns of PROFILE and GUARDED the line sets
    app_metadata: dict[str, Any] = field(default_factory=dict)
    user_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ImportReport:
    lines: int = 0  # lines read, blank ones aside
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    sessions_ended: int = 0

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged


class ImportFailed(Exception):
    """A batch could not be written: it was rolled back whole; batches before it are kept."""

    def __init__(self, first_line: int, last_line: int, report: ImportReport, reason: str):
        lines = (
            f"line {first_line} was"
            if first_line == last_line
            else f"lines {first_line} to {last_line} were"
        )
        super().__init__(f"{lines} not imported (rolled back): {reason.rstrip('.')}")
        self.first_line = first_line
        self.last_line = last_line
        self.report = report


@dataclass(frozen=True, slots=True)
class _Written:
    created: int
    updated: int
    sessions_ended: int


class Transfer:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    # Import -----------------------------------------------------------------------------

    async def import_users(
        self,
        uow: UnitOfWork,
        lines: Iterable[bytes | str],
        *,
        overwrite: bool = False,
        batch_size: int = BATCH_SIZE,
        on_bad_line: Callable[[BadLine], None] = lambda bad: None,
    ) -> ImportReport:
        """Read JSON Lines as they come and write them in batches, one transaction each.

        A bad line is reported and skipped. A batch that fails in the database is rolled back
        whole and stops the import (ImportFailed); running it again is safe.
        """
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be 1 to {MAX_BATCH_SIZE}")
        report = ImportReport()
        role_ids = await uow.transfer.role_ids()
        admins_before = await uow.transfer.active_holders(ADMIN_ROLE) if overwrite else 0
        await uow.release()

        batch: dict[str, ImportRow] = {}
        for number, raw in enumerate(lines, start=1):
            parsed = parse_line(number, raw, role_ids)
            if parsed is None:
                continue
            report.lines += 1
            if isinstance(parsed, ImportRow) and parsed.email in batch:
                earlier = batch[parsed.email].line
                parsed = BadLine(number, (f"email: the same address is on line {earlier}",))
            if isinstance(parsed, BadLine):
                report.bad += 1
                on_bad_line(parsed)
                continue
            batch[parsed.email] = parsed
            if len(batch) >= batch_size:
                await self._write(
                    uow, [*batch.values()], role_ids, overwrite, admins_before, report
                )
                batch = {}
        if batch:
            await self._write(uow, [*batch.values()], role_ids, overwrite, admins_before, report)
        return report

    async def _write(
        self,
        uow: UnitOfWork,
        rows: list[ImportRow],
        role_ids: dict[str, uuid.UUID],
        overwrite: bool,
        admins_before: int,
        report: ImportReport,
    ) -> None:
        try:
            written = await self._write_batch(uow, rows, role_ids, overwrite, admins_before)
        except Exception as exc:
            await uow.rollback()
            raise ImportFailed(rows[0].line, rows[-1].line, report, _reason(exc)) from exc
        report.created += written.created
        report.updated += written.updated
        report.unchanged += len(rows) - written.created - written.updated
        report.sessions_ended += written.sessions_ended

    async def _write_batch(
        self,
        uow: UnitOfWork,
        rows: list[ImportRow],
        role_ids: dict[str, uuid.UUID],
        overwrite: bool,
        admins_before: int,
    ) -> _Written:
        """One batch, one transaction, a handful of statements whatever its size."""
        now = self.rt.clock.now()
        repo = uow.transfer
        if overwrite:  # the API's last-admin guard takes the same lock
            await uow.locks.hold("admins")
        await repo.plan_for_each_batch()
        # Only overwrite needs to know who was there and how: their sessions and roles.
        before = await repo.existing([r.email for r in rows]) if overwrite else {}

        # Lines that set the same columns share one upsert (usually the whole batch does).
        updatable = PROFILE + GUARDED if overwrite else PROFILE
        new_ids: dict[str, uuid.UUID] = {}
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            new_ids[r.email] = uuid.uuid4()
            update = tuple(name for name in updatable if name in r.given)
            groups[update].append(_values(r, new_ids[r.email], now))
        changed: dict[str, uuid.UUID] = {}
        for update, values in groups.items():
            changed |= await repo.upsert_users(values, update=update)
        created = {user_id for email, user_id in changed.items() if user_id == new_ids[email]}
        updated = set(changed.values()) - created
        ids = {email: found.id for email, found in before.items()} | changed
        missing = [r.email for r in rows if r.email not in ids] if overwrite else []
        if missing:  # registered between the two statements, with nothing to change
            ids |= {email: found.id for email, found in (await repo.existing(missing)).items()}

        # Roles: what the line says for a new user (the default role if it says nothing);
        # for an existing one only with overwrite, so a role taken away is not given back.
        grant: set[tuple[uuid.UUID, uuid.UUID]] = set()
        synced: set[tuple[uuid.UUID, uuid.UUID]] = set()
        synced_users: set[uuid.UUID] = set()
        for r in rows:
            user_id = ids.get(r.email)
            if user_id in created:
                names = r.roles if r.roles is not None else _default_roles(role_ids)
                grant.update((user_id, role_ids[name]) for name in names)
            elif user_id is not None and overwrite and r.roles is not None:
                synced_users.add(user_id)
                synced.update((user_id, role_ids[name]) for name in r.roles)
        if synced_users:
            held = await repo.roles_of(synced_users)
            await repo.take(held - synced)
            grant |= synced - held
            updated |= {user_id for user_id, _ in held ^ synced}
        await repo.grant(grant, now)

        ended: set[uuid.UUID] = set()
        if overwrite:
            # A new password or a deactivation ends the user's sessions, as in the API.
            for r in rows:
                old = before.get(r.email)
                if old is None:
                    continue
                if ("password_hash" in r.given and old.password_hash != r.password_hash) or (
                    "is_active" in r.given and old.is_active and not r.is_active
                ):
                    ended.add(old.id)
            await repo.end_sessions(ended, now, SESSIONS_ENDED)
            if admins_before and not await repo.active_holders(ADMIN_ROLE):
                raise LastAdmin()
        uow.audit.record(
            "cli.users_imported",
            first_line=rows[0].line,
            last_line=rows[-1].line,
            created=len(created),
            updated=len(updated),
            sessions_ended=len(ended),
            overwrite=overwrite,
        )
        await uow.commit()
        return _Written(created=len(created), updated=len(updated), sessions_ended=len(ended))

    # Export -----------------------------------------------------------------------------

    async def export_lines(self, db: AsyncSession) -> AsyncIterator[bytes]:
        """Every user as one JSON line, in creation order, streamed from one snapshot."""
        repo = TransferRepository(db)
        current: Any = None
        roles: list[str] = []
        async for row in repo.stream_users():
            if current is not None and row.id != current.id:
                yield _line(current, roles)
                roles = []
            current = row
            if row.role is not None:
                roles.append(row.role)
        if current is not None:
            yield _line(current, roles)


def _values(row: ImportRow, user_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    return {
        "id": user_id,
        "email": row.email,
        "password_hash": row.password_hash,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "is_active": row.is_active,
        "is_verified": row.is_verified,
        "created_at": row.created_at or now,
        "updated_at": now,
        "password_changed_at": None,
        "app_metadata": row.app_metadata,
        "user_metadata": row.user_metadata,
    }


def _default_roles(role_ids: dict[str, uuid.UUID]) -> tuple[str, ...]:
    return (USER_ROLE,) if USER_ROLE in role_ids else ()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _line(row: Any, roles: list[str]) -> bytes:
    data = {
        "email": row.email,
        "firstName": row.first_name,
        "lastName": row.last_name,
        "isVerified": row.is_verified,
        "isActive": row.is_active,
        "roles": roles,
        "createdAt": row.created_at.astimezone(UTC),
        "passwordHash": row.password_hash,
        "appMetadata": row.app_metadata or {},
        "userMetadata": row.user_metadata or {},
    }
    return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


# Parsing and validation ---------------------------------------------------------------------


def parse_line(
    number: int, raw: bytes | str, role_ids: dict[str, uuid.UUID]
) -> ImportRow | BadLine | None:
    """One line checked on its own: every problem at once; None for a blank line."""
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf") if isinstance(raw, bytes) else raw.lstrip("\ufeff")
    if not raw.strip():
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return BadLine(number, (f"not valid JSON ({exc})",))
    if not isinstance(data, dict):
        return BadLine(number, ("not a JSON object",))

    problems: list[str] = []
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field: {', '.join(unknown)}")
    check = Checker()
    given: set[str] = set()

    email = data.get("email")
    if isinstance(email, str):
        email = check.email("email", email)
    else:
        problems.append("email: required, a string")
        email = ""

    names = {}
    for key, column in (("firstName", "first_name"), ("lastName", "last_name")):
        value = data.get(key)
        if value is None:
            value = ""
        elif isinstance(value, str):
            given.add(column)
        else:
            problems.append(f"{key}: must be a string")
            value = ""
        names[column] = check.name(key, value)

    flags = {}
    for key, column, default in (
        ("isVerified", "is_verified", False),
        ("isActive", "is_active", True),
    ):
        value = data.get(key)
        if value is None:
            value = default
        elif isinstance(value, bool):
            given.add(column)
        else:
            problems.append(f"{key}: must be true or false")
        flags[column] = bool(value)

    roles = _roles(data.get("roles"), role_ids, problems)
    created_at = _created_at(data.get("createdAt"), problems)
    if "passwordHash" in data:
        given.add("password_hash")
    password_hash = _password_hash(data.get("passwordHash"), problems)
    metadata = {}
    for key, column in (("appMetadata", "app_metadata"), ("userMetadata", "user_metadata")):
        if data.get(key) is not None:
            given.add(column)
            metadata[column] = check.metadata(key, data[key])

    problems.extend(f"{p.field}: {p.message}" for p in check.problems)
    if problems:
        return BadLine(number, tuple(problems))
    return ImportRow(
        line=number,
        email=email,
        first_name=names["first_name"],
        last_name=names["last_name"],
        is_verified=flags["is_verified"],
        is_active=flags["is_active"],
        roles=roles,
        created_at=created_at,
        password_hash=password_hash,
        given=frozenset(given),
        app_metadata=metadata.get("app_metadata", {}),
        user_metadata=metadata.get("user_metadata", {}),
    )


def _roles(
    value: Any, role_ids: dict[str, uuid.UUID], problems: list[str]
) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        problems.append("roles: must be a list of role names")
        return None
    unknown = sorted({name for name in value if name not in role_ids})
    if unknown:
        problems.append(f"roles: no such role: {', '.join(unknown)}")
    return tuple(dict.fromkeys(value))


def _created_at(value: Any, problems: list[str]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            # A time without a zone is taken as UTC.
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    problems.append("createdAt: must be an ISO 8601 date and time")
    return None


def _password_hash(value: Any, problems: list[str]) -> str | None:
    # No hash (or Django's mark of an unusable password, "!…"): the user resets the password.
    if value is None or value == "" or (isinstance(value, str) and value.startswith("!")):
        return None
    if not isinstance(value, str):
        problems.append("passwordHash: must be a string or null")
        return None
    if len(value) > MAX_HASH_LENGTH:
        problems.append(f"passwordHash: longer than {MAX_HASH_LENGTH} characters")
        return None
    problem = foreign.problem(value)
    if problem is not None:
        problems.append(f"passwordHash: {problem}")
        return None
    return value
