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


def summarize(folded: str, top: int = 20) -> str:
    """Shares of the samples per thread, then inclusive and self time on the event loop.

    SQLAlchemy's asyncio layer runs ORM code in greenlets, which py-spy shows as stacks of
    their own (rooted at `Session.execute` and the like): inclusive shares of the frames
    above a greenlet switch (a resolver, a service) leave out the time spent inside it.
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
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in stacks:
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    shares = ", ".join(f"{name} {100 * n / total:.0f} %" for name, n in threads.most_common())
    lines = [
        f"{total} samples while busy, by thread: {shares}. "
        "The shares below are of the event loop's thread (MainThread).",
        "",
        "| inclusive | function |",
        "|---:|---|",
    ]
    shown = 0
    for name, n in inclusive.most_common():
        if n / main_total > 0.97:  # frames every request sits in: the loop, the protocol
            continue
        lines.append(f"| {100 * n / main_total:.1f} % | `{name}` |")
        shown += 1
        if shown == top:
            break
    lines += ["", "| self | function |", "|---:|---|"]
    for name, n in own.most_common(top // 2):
        lines.append(f"| {100 * n / main_total:.1f} % | `{name}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"## {argument}\n\n{summarize(Path(argument).read_text())}\n")
