"""Password hashing (argon2id, off the event loop) and the password policy (NIST 800-63B).

Imported bcrypt and PBKDF2 hashes are verified too (security/foreign.py) and upgraded on login.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import sys
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from identity.security import foreign

MIN_LENGTH = 8
MAX_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    # The hash was made with other parameters (or another scheme): store a new one.
    needs_rehash: bool = False


class PasswordHasher:
    """argon2id in a small pool of low-priority threads.

    argon2 releases the GIL, so hashing runs in parallel with the event loop; the pool size
    bounds how many run at once (a burst of logins queues instead of starving other
    requests), and the threads run at a lower CPU priority than the event loop.
    """

    def __init__(
        self, *, memory_cost: int, time_cost: int, parallelism: int, concurrency: int = 0
    ) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        workers = concurrency or os.cpu_count() or 1
        _reuse_hash_buffers(memory_cost, workers)
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_sync(
        self, password_hash: str, password: str, as_typed: str | None = None
    ) -> Verification:
        """Check `password` (NFKC-normalized) against a stored hash.

        Hashes imported from other systems (bcrypt, Django's PBKDF2) are checked with their
        own scheme and always reported for re-hashing with argon2id. Those systems may not
        have normalized passwords, so the password `as_typed` is tried too when it differs.
        """
        kind = foreign.scheme(password_hash)
        if kind is not None and kind != foreign.ARGON2ID:
            candidates = [password]
            if as_typed is not None and as_typed != password:
                candidates.append(as_typed)
            ok = any(foreign.verify(kind, password_hash, c) for c in candidates)
            return Verification(ok=ok, needs_rehash=ok)
        try:
            self._hasher.verify(password_hash, password)
        except VerifyMismatchError:
            return Verification(ok=False)
        except (VerificationError, InvalidHashError):
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(password_hash))

    def _dummy(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            return self._dummy_hash

    def _verify_dummy_sync(self, password: str) -> Verification:
        self.verify_sync(self._dummy(), password)
        return Verification(ok=False)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.hash_sync, password
        )

    async def verify(
        self, password_hash: str | None, password: str, *, as_typed: str | None = None
    ) -> Verification:
        """Check a password; without a hash (unknown user, no password set) it costs the same.

        `as_typed` is the password before normalization, tried only for imported hashes.
        """
        loop = asyncio.get_running_loop()
        if password_hash is None:
            return await loop.run_in_executor(self._pool, self._verify_dummy_sync, password)
        return await loop.run_in_executor(
            self._pool, self.verify_sync, password_hash, password, as_typed
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reuse_hash_buffers(memory_cost_kib: int, hashing_threads: int) -> None:
    """Each hash allocates and frees a memory_cost-sized buffer (19 MiB by default).

    (This tunes glibc's malloc for the whole process, which suits a server; it does nothing
    elsewhere.)

    A buffer that glibc serves by mmap comes back zeroed page by page on every hash: about
    5,000 page faults that made each verification cost 45 % more CPU (25.8 against 17.9 ms
    here). So buffers up to 32 MiB (glibc's largest threshold) come from the heap, and the
    heap keeps them for the next hash instead of trimming them. Memory held: one buffer per
    hashing thread, which a burst of sign-ins reaches anyway.

    Arenas: room for one per hashing thread, the main one and one for every other thread.
    With two in all, hashing threads shared arenas and peak RSS grew by a third buffer (162
    against 143 MB in the benchmark); the default (8 per core) lets every thread keep
    memory of its own.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    largest = 32 * 1024 * 1024
    buffer = memory_cost_kib * 1024
    threshold = min(largest, buffer + 1024 * 1024)
    libc.mallopt(m_mmap_threshold, threshold)
    # Trimming the heap's free top (the freed buffer) would fault it in again next time.
    libc.mallopt(m_trim_threshold, 4 * threshold)
    libc.mallopt(m_arena_max, hashing_threads + 2)


def _lower_priority() -> None:
    # On Linux, setpriority on a thread id renices that thread only.
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@cache
def common_passwords() -> frozenset[str]:
    text = files("identity.security").joinpath("common-passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def normalize_password(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def password_problem(password: str) -> tuple[str, str] | None:
    """(code, message) when the NFKC-normalized password breaks the policy, else None."""
    length = len(password)
    if length < MIN_LENGTH:
        return "too_short", f"Use at least {MIN_LENGTH} characters."
    if length > MAX_LENGTH:
        return "too_long", f"Use at most {MAX_LENGTH} characters."
    if password.casefold() in common_passwords():
        return "too_common", "This password is too common; choose another."
    return None
