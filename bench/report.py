"""The Markdown report: the scenarios, the two references, and the ratios against the targets
(issues 6 and 17); with a baseline run (another run's JSON), each figure against it too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import Result


@dataclass
class Run:
    stamp: str
    command: str
    machine: dict[str, str]
    setup: str
    rows: list[tuple[str, str]] = field(default_factory=list)  # (key, title) in order
    results: dict[str, Result] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    argon2_rate: float | None = None
    argon2_note: str = ""
    floor: Result | None = None
    idle_rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    profiles: dict[str, str] = field(default_factory=dict)
    users: int = 0
    webhooks: dict[str, float] = field(default_factory=dict)  # bench.webhooks.measure's figures
    baseline: dict[str, Any] | None = None  # an earlier run's figures (figures(run))


def figures(run: Run) -> dict[str, Any]:
    """What a later run compares itself with (bench/results/<stamp>.json)."""
    return {
        "stamp": run.stamp,
        "users": run.users,
        "rps": {key: r.rps for key, r in run.results.items()},
        "p50_ms": {key: r.p50_ms for key, r in run.results.items()},
    }


def _row(title: str, r: Result) -> str:
    return (
        f"| {title} | {r.rps:,.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.failures} | "
        f"{r.cpu_ms:.2f} | {100 * r.busy:.0f} % | {r.others:.2f} | {r.rss_mb:.0f} | {r.note} |"
    )


HEADER = [
    "| scenario | req/s | p50 ms | p99 ms | failed | server CPU ms/req | machine busy "
    "| others' CPUs | peak RSS MB | note |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]


def render(run: Run) -> str:
    m = run.machine
    out = [
        f"# identity benchmark, {run.stamp}",
        "",
        f"Command: `{run.command}`",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}; Linux {m['kernel']}; "
        f"Python {m['python']}; {m['postgres']}; {m['wrk']}; identity {m['commit']}.",
        "",
        run.setup,
        "",
        *HEADER,
    ]
    for key, title in run.rows:
        if key in run.skipped:
            out.append(f"| {title} | | | | | | | | | {run.skipped[key]} |")
        elif key in run.results:
            out.append(_row(title, run.results[key]))
    out += [
        "",
        f"Server RSS: {run.idle_rss_mb:.0f} MB idle after start, {run.peak_rss_mb:.0f} MB at "
        "peak over the whole run (VmHWM).",
        "",
        "References, same run, same cores:",
        "",
        *HEADER,
    ]
    if run.argon2_rate is not None:
        out.append(
            f"| raw argon2id verify, {m['nproc']} processes | {run.argon2_rate:,.1f} | | | | | "
            f"| | | {run.argon2_note} |"
        )
    if run.floor is not None:
        out.append(_row("floor: hand-written Starlette `me` (bench/floor_app.py)", run.floor))
    if run.webhooks:
        w = run.webhooks
        out += [
            "",
            f"Webhooks (`bench.webhooks`): {w['deliveries_per_s']:,.0f} deliveries/s to a local "
            f"receiver; `me` alone {w['me_rps_alone']:,.0f} req/s, while they flow "
            f"{w['me_rps_during']:,.0f} req/s with a p99 of {w['me_p99_ms']:.1f} ms.",
        ]
    out += ["", *targets(run)]
    if run.baseline is not None:
        out += ["", *against_baseline(run, run.baseline)]
    samples = [f"- {key}: `{r.sample}`" for key, r in run.results.items() if r.sample]
    if samples:
        out += ["", "First unexpected answer per scenario:", "", *samples]
    for key, summary in run.profiles.items():
        out += ["", f"## Profile of `{key}` (py-spy, CPU samples of the server)", "", summary]
    return "\n".join(out) + "\n"


def targets(run: Run) -> list[str]:
    def rps(key: str) -> float | None:
        return run.results[key].rps if key in run.results else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else a / b

    floor = run.floor.rps if run.floor else None
    flood = run.results.get("me-under-login-flood")
    # name, measured, goal, met?, shown as a percentage?
    rows: list[tuple[str, float | None, str, Callable[[float], bool], bool]] = [
        (
            "login / raw argon2id rate",
            ratio(rps("login"), run.argon2_rate),
            "≥ 90 %",
            _at(0.9),
            True,
        ),
        ("me / floor me", ratio(rps("me"), floor), "≥ 80 %", _at(0.8), True),
        ("refresh / floor me", ratio(rps("refresh"), floor), "≥ 50 %", _at(0.5), True),
        ("verifyMfa / refresh", ratio(rps("verify-mfa"), rps("refresh")), "≥ 80 %", _at(0.8), True),
        (
            "passkey sign-in / password sign-in, times",
            ratio(rps("passkey-login"), rps("login")),
            "≥ 5",
            _at(5),
            False,
        ),
        (
            "OpenID code exchange / refresh",
            ratio(rps("oauth-code"), rps("refresh")),
            "≥ 40 %",
            _at(0.4),
            True,
        ),
        ("DPoP me / bearer me", ratio(rps("me-dpop"), rps("me")), "≥ 60 %", _at(0.6), True),
        (
            "me during login flood / me alone",
            ratio(rps("me-under-login-flood"), rps("me")),
            "≥ 50 %",
            _at(0.5),
            True,
        ),
        (
            "p99 of me during login flood, ms",
            flood.p99_ms if flood else None,
            "< 50",
            _below(50),
            False,
        ),
        (
            "webhook deliveries per second",
            run.webhooks.get("deliveries_per_s"),
            "≥ 500",
            _at(500),
            False,
        ),
        (
            "p99 of me while webhooks flow, ms",
            run.webhooks.get("me_p99_ms"),
            "< 50",
            _below(50),
            False,
        ),
        ("server peak RSS, MB", run.peak_rss_mb or None, "≤ 160", lambda v: v <= 160, False),
    ]
    out = ["| target | measured | goal | met |", "|---|---:|---|---|"]
    for name, value, goal, ok, percent in rows:
        if value is None:
            out.append(f"| {name} | n/a | {goal} | |")
            continue
        shown = f"{100 * value:.0f} %" if percent else f"{value:.1f}"
        out.append(f"| {name} | {shown} | {goal} | {'yes' if ok(value) else '**no**'} |")
    return out


def against_baseline(run: Run, baseline: dict[str, Any]) -> list[str]:
    """Each scenario's throughput against the baseline run's (e.g. 1 000 000 users against
    10 000): the goal is every figure within 20 %."""
    out = [
        f"Against run `{baseline['stamp']}` ({baseline['users']:,} users; this run "
        f"{run.users:,}): every figure within 20 %.",
        "",
        "| scenario | req/s then | req/s now | change | within 20 % |",
        "|---|---:|---:|---:|---|",
    ]
    for key, r in run.results.items():
        then = baseline["rps"].get(key)
        if not then:
            continue
        change = r.rps / then - 1
        ok = "yes" if abs(change) <= 0.2 else "**no**"
        out.append(f"| {key} | {then:,.1f} | {r.rps:,.1f} | {100 * change:+.0f} % | {ok} |")
    return out


def _at(least: float) -> Callable[[float], bool]:
    return lambda value: value >= least


def _below(limit: float) -> Callable[[float], bool]:
    return lambda value: value < limit
