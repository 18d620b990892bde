"""Server processes, and what /proc says about them and about the machine."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A server on 127.0.0.1:port, its output in a log file."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], work: Path, port: int
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log = work / f"{name}.log"
        with self.log.open("w") as out:
            self.popen = subprocess.Popen(
                command, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT
            )
        self.pid = self.popen.pid

    def wait_ready(self, probe: Callable[[str], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
            try:
                if probe(self.url):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def status_kib(pid: int, name: str) -> int:
    """A `kB` line of /proc/<pid>/status: VmRSS now, VmHWM the peak so far."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # up to steal; guest time is already in user
    return total - idle, total


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over the next `seconds`."""
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_until_quiet(limit: float, most: float = 0.15) -> float:
    """Wait up to `limit` seconds for the machine to be idle; the busy fraction seen last.

    Other work on the same cores (a test suite, another server) skews every figure.
    """
    deadline = time.monotonic() + limit
    busy = machine_busy()
    while busy > most and time.monotonic() < deadline:
        busy = machine_busy()
    return busy


def _others() -> dict[int, float]:
    """CPU seconds so far of every process that is neither this run's nor PostgreSQL's."""
    ours = {os.getpid()}
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        pid = int(entry.name)
        if head.split("(", 1)[1].startswith("postgres"):
            ours.add(pid)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    for pid in parents:  # descendants of this process are ours too
        chain, current = [], pid
        while current in parents and current not in ours and current > 1:
            chain.append(current)
            current = parents[current]
        if current in ours:
            ours.update(chain)
    return {pid: seconds for pid, seconds in cpu.items() if pid not in ours}


@dataclass(slots=True)
class Window:
    rss_mb: float = 0.0  # peak VmRSS of the process while the window was open
    cpu_s: float = 0.0  # CPU seconds the process used
    busy: float = 0.0  # fraction of the machine's CPUs busy (everyone's work)
    others: float = 0.0  # CPUs' worth used by processes neither ours nor PostgreSQL's


class Monitor:
    """Samples a process's VmRSS in the background; `window()` measures a stretch of time."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, status_kib(self.pid, "VmRSS"))

    @contextmanager
    def window(self) -> Iterator[Window]:
        self._peak = status_kib(self.pid, "VmRSS")
        cpu0 = cpu_seconds(self.pid)
        others0 = _others()
        busy0, total0 = machine_ticks()
        started = time.monotonic()
        result = Window()
        yield result
        busy1, total1 = machine_ticks()
        elapsed = time.monotonic() - started
        others = sum(s - others0.get(pid, 0.0) for pid, s in _others().items())
        result.others = others / max(elapsed, 1e-3)
        result.cpu_s = cpu_seconds(self.pid) - cpu0
        result.busy = (busy1 - busy0) / max(1, total1 - total0)
        result.rss_mb = max(self._peak, status_kib(self.pid, "VmRSS")) / 1024

    def peak_rss_mb(self) -> float:
        """VmHWM: the most resident memory the process ever had."""
        return status_kib(self.pid, "VmHWM") / 1024

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def machine(root: Path) -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    commit = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{int(mem.group(1)) // 1024 if mem else 0} MiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split(" Copyright")[0].strip(),
        "commit": commit.stdout.strip(),
    }
