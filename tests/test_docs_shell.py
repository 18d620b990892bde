"""Every shell example of the README and the documentation runs, or says why it cannot.

A ```console block is run and its output compared; any other shell block must carry
`<!-- docs-test: skip (why) -->` on the line before it. Each page runs in a fresh folder with
identity's development defaults, `identity` on the path (and at .venv/bin/identity, as after
`make run`), and, with `<!-- docs-test: server -->`, a real `identity serve` in that folder
whose address replaces http://127.0.0.1:8000. See tests/docs_examples.py for the format.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import nodetools
from tests.docs_examples import (
    DOCUMENTED_URL,
    REPO,
    SHELLS,
    Command,
    Page,
    blocks,
    commands,
    matches,
    page,
    pages,
)
from tests.test_server import Server

MARK = "@@docs-test: end of command@@"
TOOLS = ("curl", "jq")


def runnable() -> list[Page]:
    return [found for found in map(page, pages()) if found.commands]


def test_every_shell_block_runs_or_says_why_not() -> None:
    unmarked = [
        block.where
        for path in pages()
        for block in blocks(path)
        if block.language in SHELLS - {"console"} and block.skip_reason is None
    ]
    assert not unmarked, (
        "shell blocks that are neither ```console (run by the tests) nor marked "
        f"`<!-- docs-test: skip (why) -->` on the line before: {unmarked}"
    )


def test_the_console_blocks_parse() -> None:
    for path in pages():
        for block in blocks(path):
            if block.language == "console" and block.skip_reason is None:
                assert commands(block), block.where


def test_the_docs_run_shell_examples() -> None:
    # The README, the tour and the guides: a test that finds nothing to run is broken.
    names = {str(found.path.relative_to(REPO)) for found in runnable()}
    assert {"README.md", "docs/getting-started/tour.md", "docs/guides/moving-users.md"} <= names


def test_expected_output_wildcards() -> None:
    assert matches(["a ... c", "...", "end"], ["a b c", "x", "y", "end"])
    assert matches(["..."], [])
    assert matches(["pending 0  failed 0"], ["pending 0  failed 0   "])
    assert not matches(["a ... c"], ["a b d"])
    assert not matches(["one"], ["one", "two"])
    assert not matches(["a.c"], ["abc"])  # only `...` is a wildcard


def _wrapper(folder: Path) -> Path:
    """.venv/bin/identity in the page's folder: this interpreter's identity."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "identity"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m identity "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return bin_dir


def _environment(folder: Path, settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env["PATH"] = f"{_wrapper(folder)}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # standard output and error in the order a terminal shows
    env.update(settings)
    return env


def _script(batch: list[Command], url: str) -> str:
    lines = ["exec 2>&1"]
    for command in batch:
        lines.append(command.text.replace(DOCUMENTED_URL, url))
        lines.append(f"printf '\\n%s\\n' '{MARK}'")
    return "\n".join(lines) + "\n"


def _outputs(stdout: str) -> list[list[str]]:
    chunks = stdout.split(f"\n{MARK}\n")
    return [chunk.removesuffix("\n").split("\n") if chunk else [] for chunk in chunks]


@pytest.mark.slow
@pytest.mark.parametrize("found", runnable(), ids=lambda found: str(found.path.relative_to(REPO)))
def test_shell_examples_run(found: Page, tmp_path: Path) -> None:
    needed = [
        tool
        for tool in TOOLS
        if any(re.search(rf"\b{tool}\b", command.text) for command in found.commands)
    ]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        nodetools.skipped["Documentation shell examples that need curl or jq"] = (
            f"{', '.join(missing)} not on PATH"
        )
        pytest.skip(f"{', '.join(missing)} not on PATH")
    env = _environment(tmp_path, found.server or {})
    server = Server(env, tmp_path) if found.server is not None else None
    url = server.url if server else DOCUMENTED_URL
    problems = []
    try:
        by_block: dict[int, list[Command]] = {}
        for command in found.commands:
            by_block.setdefault(command.block.line, []).append(command)
        for batch in by_block.values():
            result = subprocess.run(
                ["bash", "-c", _script(batch, url)],
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            outputs = _outputs(result.stdout)
            for index, command in enumerate(batch):
                actual = outputs[index] if index < len(outputs) else ["<no output: bash stopped>"]
                expected = [line.replace(DOCUMENTED_URL, url) for line in command.expected]
                if not matches(expected, actual):
                    problems.append(
                        f"{command.block.path.relative_to(REPO)}:{command.line}: $ {command.text}\n"
                        "expected:\n  " + "\n  ".join(expected or ["(nothing)"]) + "\n"
                        "got:\n  " + "\n  ".join(actual or ["(nothing)"])
                    )
    finally:
        if server is not None:
            server.stop()
    assert not problems, "\n\n".join(problems)
