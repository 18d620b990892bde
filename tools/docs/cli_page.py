"""docs/reference/cli.md, from the argparse parser of `identity.cli`: each command's help and
description, each argument's help."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Sequence

from tools.docs.markdown import cell, notice, paragraphs, sentence


def identity_parser() -> argparse.ArgumentParser:
    from identity import cli

    factory: Callable[[], argparse.ArgumentParser] = cli._parser
    return factory()


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """(words after `identity`, parser, one-line help) of every command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name, "")
                yield from commands(sub, (*path, name))


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    return action.dest if not action.option_strings else action.dest.upper()


def argument_text(action: argparse.Action) -> str:
    if not action.option_strings:
        return _metavar(action)
    takes_value = action.nargs != 0
    return ", ".join(
        f"{option} {_metavar(action)}" if takes_value else option
        for option in action.option_strings
    )


def _usage(words: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """The usage line, built from the actions (argparse's own wording moves between Python
    versions and terminal widths)."""
    parts = ["identity", *words]
    for action in arguments(parser):
        if action.option_strings:
            option = action.option_strings[-1]
            text = f"{option} {_metavar(action)}" if action.nargs != 0 else option
            parts.append(text if action.required else f"[{text}]")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            parts.append(f"{action.metavar or 'COMMAND'} …")
    parts.extend(_metavar(action) for action in arguments(parser) if not action.option_strings)
    return " ".join(parts)


def _cli_text(text: str) -> str:
    """Help text as Markdown: settings linked to the configuration page, options as code."""
    from identity.config import Settings

    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    known = {(prefix + name).upper() for name in Settings.model_fields}

    def setting(match: re.Match[str]) -> str:
        name = match.group(0)
        return f"[`{name}`](configuration.md#{name.lower()})" if name in known else f"`{name}`"

    text = re.sub(rf"\b{re.escape(prefix)}[A-Z0-9_]+\b", setting, text) if prefix else text
    return re.sub(r"(?<![\w`-])(--[a-z][a-z0-9-]*)", r"`\1`", text)


def cli_page(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or identity_parser()
    out = [
        "# Command line\n",
        notice("the argument parser in src/identity/cli.py"),
        "`make run` installs the `identity` command into `.venv`: run it as "
        "`.venv/bin/identity …`, or put it on your path first with "
        "`source .venv/bin/activate`. `identity COMMAND --help` prints what this page says "
        "about a command.\n",
        "Every command works on the database of `IDENTITY_DATABASE_URL` (by default "
        "`./identity.db` in the working folder): run them where the server runs, or with its "
        f"settings.{_creatorssentence(parser)} A bad setting stops a command with exit "
        "status 2 and one line naming it.\n",
        "| Command | |\n|---|---|",
    ]
    leaves = list(commands(parser))
    for words, _, help in leaves:
        summary = _cli_text(cell(sentence(help)))
        out.append(f"| [`identity {' '.join(words)}`](#{_command_anchor(words)}) | {summary} |")
    out.append("")
    for words, sub, help in leaves:
        depth = "#" * min(len(words) + 1, 4)
        out.append(f"{depth} `identity {' '.join(words)}` {{#{_command_anchor(words)}}}\n")
        description = sub.description or (sentence(help) + "." if help else "")
        if description:
            out.append(_cli_text(paragraphs(description)) + "\n")
        out.append(f"```text\n{_usage(words, sub)}\n```\n")
        rows = arguments(sub)
        if rows:
            out.append("| Argument | |\n|---|---|")
            for action in rows:
                help_text = sentence(action.help or "")
                if action.required and action.option_strings:
                    help_text = f"Required. {help_text}".strip()
                out.append(f"| `{argument_text(action)}` | {_cli_text(cell(help_text))} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _creatorssentence(parser: argparse.ArgumentParser) -> str:
    """Which commands may create a database (the parser's `creates_database` default)."""
    creators = [
        f"`{' '.join(words)}`"
        for words, sub, _ in commands(parser)
        if sub.get_default("creates_database") and not _has_subcommands(sub)
    ]
    if not creators:
        return ""
    names = ", ".join(creators[:-1]) + f" and {creators[-1]}" if len(creators) > 1 else creators[0]
    return (
        f" The commands other than {names} refuse to start on a SQLite file that does not "
        "exist, rather than create an empty database (and a new development secret) beside it."
    )


def _has_subcommands(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _command_anchor(words: Sequence[str]) -> str:
    return "identity-" + "-".join(words)
