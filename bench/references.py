"""The physical limit for logins: raw argon2id verifications per second on every core."""

from __future__ import annotations

import multiprocessing
import os
import time

from bench.seed import PASSWORD, Argon2Params


def _verify_loop(params: Argon2Params, seconds: float) -> float:
    hasher = params.hasher()
    password_hash = hasher.hash(PASSWORD)
    hasher.verify(password_hash, PASSWORD)  # warm: the first call allocates
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        hasher.verify(password_hash, PASSWORD)
        count += 1
    return count / (time.perf_counter() - started)


def argon2_verify_rate(params: Argon2Params, seconds: float, processes: int = 0) -> float:
    """Verifications per second summed over `processes` (default: one per CPU) processes."""
    processes = processes or os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        rates = pool.starmap(_verify_loop, [(params, seconds)] * processes)
    return sum(rates)
