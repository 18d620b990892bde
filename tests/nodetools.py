"""Node.js, npm and Chromium for the tests that prove identity with real client tools.

Those tests need Node.js (with npm) and, for the browser ones, Debian's Chromium. Without
them they are skipped, and the end of the run says so. In CI they are mandatory:
IDENTITY_TEST_REQUIRE_NODE=1 and IDENTITY_TEST_REQUIRE_BROWSER=1 (set by .ci/run) turn a
missing tool into a failure.

npm packages come from the lock files committed under examples/ and are installed with
`npm ci` into a cache folder outside git (.cache/npm/, or IDENTITY_TEST_CACHE/npm/), one
folder per lock file content, so a second run installs nothing.

`python -m tests.nodetools` installs them all ahead of the tests (.ci/run does): every folder
under examples/ with a package-lock.json.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
CACHE = Path(os.environ.get("IDENTITY_TEST_CACHE") or REPO / ".cache")
CHROMIUM = os.environ.get("IDENTITY_TEST_CHROMIUM", "/usr/bin/chromium")
REQUIRE_NODE = os.environ.get("IDENTITY_TEST_REQUIRE_NODE") == "1"
REQUIRE_BROWSER = os.environ.get("IDENTITY_TEST_REQUIRE_BROWSER") == "1"
MIN_NODE = 18

# Chromium on a closed network hangs or retries at start without these.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# What was skipped, and why: printed at the end of the run (see conftest.py).
skipped: dict[str, str] = {}


class NpmError(RuntimeError):
    pass


def node_problem(min_major: int = MIN_NODE) -> str | None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH (install Node.js {min_major}+ with npm)"
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        return f"`node --version` printed {version!r}"
    if major < min_major:
        return f"Node.js {version} is too old (need {min_major}+)"
    return None


def chromium_problem() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def browser_problem() -> str | None:
    return chromium_problem() or node_problem()


def require_node(what: str, min_major: int = MIN_NODE) -> None:
    """Skip the calling test without Node.js (min_major or newer) and npm, or fail in CI."""
    _require(
        what,
        node_problem(min_major),
        REQUIRE_NODE or REQUIRE_BROWSER,
        "IDENTITY_TEST_REQUIRE_NODE",
    )


def require_browser(what: str) -> None:
    """Skip the calling test without Chromium, Playwright or Node.js, or fail in CI."""
    _require(what, browser_problem(), REQUIRE_BROWSER, "IDENTITY_TEST_REQUIRE_BROWSER")


def require_chromium(what: str) -> None:
    """Skip the calling test without Chromium or Playwright (Node.js not needed), or fail in CI."""
    _require(what, chromium_problem(), REQUIRE_BROWSER, "IDENTITY_TEST_REQUIRE_BROWSER")


def _require(what: str, problem: str | None, required: bool, variable: str) -> None:
    if problem is None:
        return
    if required:
        pytest.fail(f"{variable}=1 but {what} cannot run: {problem}", pytrace=False)
    skipped[what] = problem
    pytest.skip(f"{what} skipped: {problem}")


def npm_ci(example: Path) -> Path:
    """`npm ci` for an example's package-lock.json, in the cache; returns the folder.

    The folder holds copies of package.json and package-lock.json and node_modules/.
    """
    files = [example / "package.json", example / "package-lock.json"]
    digest = hashlib.sha256(b"\0".join(f.read_bytes() for f in files)).hexdigest()[:16]
    base = CACHE / "npm"
    name = "-".join(example.resolve().relative_to(EXAMPLES).parts)  # e.g. consumers-node
    target = base / f"{name}-{digest}"
    if (target / ".installed").exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    partial = base / f"{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for file in files:
        shutil.copy2(file, partial / file.name)
    command = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    result = subprocess.run(
        command, cwd=partial, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise NpmError(
            f"`{' '.join(command)}` for {example.relative_to(REPO)} failed "
            f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    (partial / ".installed").touch()
    try:
        partial.rename(target)
    except OSError:  # another run finished first; its folder is as good as ours
        shutil.rmtree(partial, ignore_errors=True)
    for old in base.glob(f"{name}-{'?' * 16}"):  # installs of older lock files
        if old != target and not old.name.count(".partial-"):
            shutil.rmtree(old, ignore_errors=True)
    return target


def npm_examples() -> list[Path]:
    """Every example under examples/ with a committed package-lock.json."""
    return sorted(
        lock.parent
        for lock in EXAMPLES.rglob("package-lock.json")
        if "node_modules" not in lock.relative_to(EXAMPLES).parts
    )


def main() -> None:
    for example in npm_examples():
        print(f"npm ci {example.relative_to(REPO)} -> {npm_ci(example)}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except NpmError as exc:
        sys.exit(str(exc))
