"""The documentation site builds, offline and strict, and its reference pages come from the code.

`mkdocs build --strict` in a subprocess (a broken link or anchor, an absolute link or a page
left out of the nav fails it, and a test proves that it does); the README is the front page
and stays short; docs/reference/{configuration,cli,graphql}.md are what `make docs`
generates from the Settings class, the argument parser and schema.graphql; every setting and
every command-line argument is described; every error type, error code, validation code and
audit action the code uses is documented. Headless Chromium takes screenshots of the front
page and of a reference page (test-artifacts/).
"""

from __future__ import annotations

import argparse
import ast
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from graphql import GraphQLObjectType, build_schema
from pydantic import Field

from identity.config import Settings
from tests.docs_examples import DOCS, REPO
from tests.nodetools import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tools import docs

SRC = REPO / "src" / "identity"
README_MAX_LINES = 300


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    result = mkdocs_build(REPO / "mkdocs.yml", folder)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return folder


# ---- the site ---------------------------------------------------------------------------


def test_the_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").exists()
    assert (site / "reference" / "configuration" / "index.html").exists()
    assert (site / "guides" / "verifying-tokens" / "index.html").exists()


def test_the_pages_load_nothing_from_the_internet(site: Path) -> None:
    external = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""")
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in text, page
        assert not external.search(text), f"{page} loads {external.search(text)}"


def test_the_front_page_is_the_readme(site: Path) -> None:
    front = (site / "index.html").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraphs = [p for p in readme.split("\n\n") if not p.startswith(("#", "<!--"))]
    first_sentence = paragraphs[0].split(".")[0]
    assert " ".join(first_sentence.split()) in " ".join(front.split())
    # The README's links into docs/ work on the site too.
    assert 'href="getting-started/tour/"' in front
    assert 'href="docs/' not in front


def test_the_readme_is_a_front_page_not_a_manual() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines: keep it to what identity is, the two commands, a short "
        "tour and links, and move the rest into docs/"
    )


def test_broken_links_anchors_and_pages_outside_the_nav_fail_the_build(tmp_path: Path) -> None:
    """The strictness the site relies on: a copy of it with one of each mistake."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("mkdocs.yml", "README.md", "schema.graphql"):
        shutil.copy2(REPO / name, copy / name)
    shutil.copytree(DOCS, copy / "docs")
    shutil.copytree(REPO / "tools", copy / "tools")
    shutil.copytree(REPO / "examples", copy / "examples", ignore=shutil.ignore_patterns("node_*"))
    # Pages include files of the package too (the webhook payloads' JSON Schemas).
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    guide = copy / "docs" / "guides" / "mail.md"
    guide.write_text(
        guide.read_text(encoding="utf-8")
        + "\n[gone](no-such-page.md) [anchor](spa.md#no-such-anchor) [root](/absolute)\n",
        encoding="utf-8",
    )
    (copy / "docs" / "orphan.md").write_text("# Not in the nav\n", encoding="utf-8")
    result = mkdocs_build(copy / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    for problem in ("no-such-page.md", "#no-such-anchor", "/absolute", "orphan.md"):
        assert problem in result.stderr, f"{problem!r} did not fail the build:\n{result.stderr}"


# ---- generated reference pages ------------------------------------------------------------


def test_the_reference_pages_match_the_code() -> None:
    stale = [str(path.relative_to(REPO)) for path in docs.stale()]
    assert not stale, f"{', '.join(stale)} out of date: run `{docs.COMMAND}`"


def test_every_setting_has_a_description() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not missing, (
        f"settings without a description: {missing}. Write a docstring under each field in "
        f"src/identity/config.py, then run `{docs.COMMAND}`"
    )


def test_every_command_and_argument_has_help() -> None:
    missing = []
    for words, parser, help in docs.commands(docs.identity_parser()):
        if not help:
            missing.append(f"identity {' '.join(words)}")
        missing += [
            f"identity {' '.join(words)} {docs.argument_text(action)}"
            for action in docs.arguments(parser)
            if not action.help
        ]
    assert not missing, f"give these help= in src/identity/cli.py: {missing}"


def test_the_generators_pick_up_what_is_added() -> None:
    # Names no capability uses, so the test keeps meaning something as identity grows.
    class MoreSettings(Settings):
        example_widget_size: int | None = Field(default=None, description="The widget size.")

    page = docs.configuration_page(MoreSettings)
    assert "### `IDENTITY_EXAMPLE_WIDGET_SIZE` {#identity_example_widget_size}" in page
    assert "The widget size." in page

    parser = docs.identity_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    widgets = subcommands.add_parser("example-widgets", help="manage the example widgets")
    widgets.add_argument("--dry-run", action="store_true", help="say what would change")
    page = docs.cli_page(parser)
    assert "## `identity example-widgets` {#identity-example-widgets}" in page
    assert "| `--dry-run` | Say what would change |" in page

    sdl = (REPO / "schema.graphql").read_text(encoding="utf-8") + (
        '\nextend type Mutation {\n  """Forget a device. Requires the `devices:write` '
        'permission."""\n  forgetDevice(id: ID!): ForgetDeviceResult!\n}\n'
        "type ForgetDeviceSuccess { message: String! }\n"
        "union ForgetDeviceResult = ForgetDeviceSuccess | NotFound\n"
    )
    page = docs.graphql_page(sdl)
    assert "### `forgetDevice` {#mutation-forgetdevice}" in page
    assert "**Permission:** Requires the `devices:write` permission." in page
    assert "| `devices:write` | [`forgetDevice`](#mutation-forgetdevice) |" in page
    assert "- [`NotFound`](#type-notfound)" in page


# ---- what the code uses is documented -----------------------------------------------------


def _python_sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def _strings(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_every_error_type_and_code_is_documented() -> None:
    errors_page = (DOCS / "reference" / "errors.md").read_text(encoding="utf-8")
    schema = build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))
    error_types = {
        name
        for name, type_ in schema.type_map.items()
        if isinstance(type_, GraphQLObjectType) and any(i.name == "Error" for i in type_.interfaces)
    }
    codes: set[str] = set()
    for path, _ in _python_sources():
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'"code":\s*"([A-Z][A-Z_]+)"', text))
        codes |= set(re.findall(r'^CODE\s*=\s*"([A-Z][A-Z_]+)"', text, re.MULTILINE))
    assert {"UNAUTHENTICATED", "FORBIDDEN", "QUERY_TOO_COMPLEX"} <= codes  # the scan works
    missing = sorted(n for n in error_types | codes if f"`{n}`" not in errors_page)
    assert not missing, f"document these in docs/reference/errors.md: {missing}"


def test_every_validation_code_is_documented() -> None:
    """`check.fail(field, "code", …)`, `ValidationFailed.one(field, "code", …)` and the
    password policy's `return "code", message`."""
    codes: set[str] = set()
    for _, tree in _python_sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("fail", "one")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                codes.add(node.args[1].value)
            if isinstance(node, ast.FunctionDef) and node.name == "password_problem":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple):
                        first = ret.value.elts[0]
                        if isinstance(first, ast.Constant) and isinstance(first.value, str):
                            codes.add(first.value)
    assert {"invalid_email", "too_common", "system_role"} <= codes  # the scan works
    errors_page = (DOCS / "reference" / "errors.md").read_text(encoding="utf-8")
    missing = sorted(code for code in codes if f"| `{code}` |" not in errors_page)
    assert not missing, f"add these to the validation codes of docs/reference/errors.md: {missing}"


def test_every_audit_action_is_documented() -> None:
    """The first argument of every `….audit.record(…)`, or the constants assigned to the name
    passed there."""
    actions: set[str] = set()
    for _, tree in _python_sources():
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assigned: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, set()).update(_strings(node.value))
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "record"
                    and node.args
                ):
                    first = node.args[0]
                    found = assigned.get(first.id, set()) if isinstance(first, ast.Name) else set()
                    actions |= found | _strings(first)
    actions = {a for a in actions if re.fullmatch(r"[a-z]+\.[a-z_]+", a)}
    assert {"auth.login", "user.password_reset", "cli.users_exported"} <= actions  # the scan works
    audit_page = (DOCS / "api" / "audit-log.md").read_text(encoding="utf-8")
    missing = sorted(action for action in actions if f"`{action}`" not in audit_page)
    assert not missing, f"add these to the actions of docs/api/audit-log.md: {missing}"


def test_every_mail_template_and_link_page_is_documented() -> None:
    from identity.pages.routes import PAGES

    mail_page = (DOCS / "guides" / "mail.md").read_text(encoding="utf-8")
    templates = {p.stem for p in (SRC / "mail" / "templates").glob("*.txt")}
    assert {"verify_email", "password_reset"} <= templates  # the scan works
    missing = sorted(t for t in templates if f"| `{t}` |" not in mail_page)
    missing += sorted(f"/{page}" for page in PAGES if f"| `/{page}` |" not in mail_page)
    assert not missing, f"add these to the tables of docs/guides/mail.md: {missing}"


# ---- screenshots ------------------------------------------------------------------------


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_screenshots_of_the_site(site: Path, artifacts_dir: Path) -> None:
    require_chromium("Documentation screenshots")
    from playwright.sync_api import Route, sync_playwright

    http = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=http.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{http.server_address[1]}"
    elsewhere: list[str] = []

    def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(base).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    shots = {
        "docs-home.png": ("/", "identity"),
        "docs-reference-configuration.png": ("/reference/configuration/", "Configuration"),
    }
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.route("**/*", only_local)
                for name, (path, heading) in shots.items():
                    page.goto(base + path, wait_until="load")
                    assert page.locator("h1").first.inner_text().strip(" ¶\n") == heading
                    page.screenshot(path=str(artifacts_dir / name))
            finally:
                browser.close()
    finally:
        http.shutdown()
        http.server_close()
    assert not elsewhere, f"the site asked for {elsewhere}"
    for name in shots:
        assert (artifacts_dir / name).stat().st_size > 10_000
