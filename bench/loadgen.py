"""wrk runs: a Lua script from bench/wrk, its arguments, and the figures it reports."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_DIR = Path(__file__).resolve().parent / "wrk"


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk run: a script in bench/wrk, its arguments, how many connections."""

    script: str
    args: list[str]
    connections: int


@dataclass(slots=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int  # socket errors, timeouts, non-2xx, and 200s without the expected answer
    sample: str = ""  # the first unexpected answer
    rss_mb: float = 0.0  # peak resident memory of the server during the run
    cpu_ms: float = 0.0  # server CPU time per request (all its threads)
    busy: float = 0.0  # fraction of the machine busy during the run
    others: float = 0.0  # CPUs' worth used by other processes during the run (noise)
    note: str = ""


def start(load: Load, url: str, duration: float, threads: int) -> subprocess.Popen[str]:
    command = [
        "wrk",
        f"-t{min(threads, load.connections)}",
        f"-c{load.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / load.script),
        f"{url}/graphql",
        "--",
        *load.args,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> Result:
    output, _ = process.communicate()
    lines = output.splitlines()
    line = next((x for x in lines if x.startswith("BENCH {")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{output}")
    data = json.loads(line.removeprefix("BENCH "))
    sample = next((x for x in lines if x.startswith("BENCH_SAMPLE ")), "")
    return Result(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        failures=data["socket_errors"] + data["timeouts"] + data["http_errors"] + data["bad"],
        sample=sample.removeprefix("BENCH_SAMPLE "),
    )


def run(load: Load, url: str, duration: float, threads: int) -> Result:
    return finish(start(load, url, duration, threads))
