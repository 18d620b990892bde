"""Where the time goes: a Markdown summary of a py-spy `--format raw` (folded stacks) file.

python -m bench.profile_summary bench/results/<stamp>-me.folded
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*?)(?:_\d+)?$")  # argon2_0 -> argon2
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")
_PREFIXES = ("site-packages/", "/src/", "/lib/python3.11/", "/lib/python3.12/", "/lib/python3.13/")


def frame_name(frame: str) -> str:
    """`verify (…/site-packages/jwt/api_jwt.py:123)` -> `verify (jwt/api_jwt.py)`."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"]
    for prefix in _PREFIXES:
        if prefix in path:
            path = path.rsplit(prefix, 1)[1]
            break
    return f"{match['name']} ({path})"


# Library calls worth seeing inclusively beside identity's own functions.
_NOTABLE = re.compile(
    r"^((?:\w+\.)?_async_ping|AsyncSession\.(execute|commit|rollback|get|flush|scalar)|"
    r"AsyncBaseHTTPView\.(run|parse_http_body|create_response)|Schema\.execute|"
    r"execute|validate|parse|complete_value\w*|KeyRing\.\w+|PyJWT?S?\.\w*(en|de)code|"
    r"Logger\._log|JSONFormatter\.format|greenlet_spawn) "
)
_PLUMBING = ("identity/cli/", "identity/__main__.py")


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"]
    if match["name"] == "Runner.run":  # the loop itself: uvloop's I/O and callbacks, in C
        return "event loop (uvloop)"
    return path.split("/", 1)[0].removesuffix(".py") if "/" in path else path


def summarize(folded: str, top: int = 20) -> str:
    """Shares of the samples per thread; then, on the event loop's thread, self time by
    package and inclusive time of identity's functions and a few notable library calls.

    SQLAlchemy's asyncio layer runs ORM code in greenlets, which py-spy shows as stacks of
    their own (rooted at `Session.execute` and the like): inclusive shares of the frames
    above a greenlet switch (a resolver, a service) leave out the time spent inside it, but
    self time by package counts everything.
    """
    threads: Counter[str] = Counter()
    stacks: list[tuple[list[str], int]] = []
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        thread = match["name"] if match else "?"
        threads[thread] += int(count)
        if thread == "MainThread" and len(frames) > 1:
            stacks.append(([frame_name(f) for f in frames[1:]], int(count)))
    total = sum(threads.values())
    main_total = sum(n for _, n in stacks)
    if not main_total:
        return "No samples on the event loop's thread."
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in stacks:
        packages[_package(frames[-1])] += n
        own[frames[-1]] += n
        for name in set(frames):
            if (name.split(" (", 1)[1].startswith("identity/") or _NOTABLE.match(name)) and (
                not any(f"({p}" in name for p in _PLUMBING)
            ):
                inclusive[name] += n
    shares = ", ".join(f"{name} {100 * n / total:.0f} %" for name, n in threads.most_common())

    def pct(n: int) -> str:
        return f"{100 * n / main_total:.1f} %"

    lines = [
        f"{total} samples while busy, by thread: {shares}. "
        "The shares below are of the event loop's thread (MainThread).",
        "",
        "| self, by package | share |",
        "|---|---:|",
        *(f"| {name} | {pct(n)} |" for name, n in packages.most_common(12)),
        "",
        "| inclusive | function |",
        "|---:|---|",
        *(f"| {pct(n)} | `{name}` |" for name, n in inclusive.most_common(top)),
        "",
        "| self | function |",
        "|---:|---|",
        *(f"| {pct(n)} | `{name}` |" for name, n in own.most_common(top // 2)),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"## {argument}\n\n{summarize(Path(argument).read_text())}\n")
