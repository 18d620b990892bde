"""Client code generated from schema.graphql compiles, and breaks when a union grows.

GraphQL Code Generator and TypeScript (pinned in examples/codegen/package-lock.json) generate
types for examples/operations/*.graphql; `tsc --noEmit` then checks examples/codegen/src/,
whose switches over every result union end in a `never` check. Needs Node.js and npm (see
tests/nodetools.py); each test works in a copy of the files, so the repository stays clean.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import (
    FieldNode,
    GraphQLUnionType,
    NamedTypeNode,
    NameNode,
    OperationDefinitionNode,
    UnionTypeDefinitionNode,
    build_schema,
    get_named_type,
    parse,
    print_ast,
)

from tests.nodetools import EXAMPLES, REPO, npm_ci, require_node

pytestmark = pytest.mark.slow

SCHEMA = REPO / "schema.graphql"
OPERATIONS = EXAMPLES / "operations"
CODEGEN = EXAMPLES / "codegen"
FAKE_MEMBER = "UnhandledResult"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    require_node("Codegen type-check tests")
    return npm_ci(CODEGEN) / "node_modules"


def workspace(tmp_path: Path, node_modules: Path, schema_sdl: str) -> Path:
    """The repository's layout in miniature: schema, operations, the codegen example."""
    (tmp_path / "schema.graphql").write_text(schema_sdl, encoding="utf-8")
    shutil.copytree(OPERATIONS, tmp_path / "examples" / "operations")
    project = tmp_path / "examples" / "codegen"
    shutil.copytree(
        CODEGEN,
        project,
        ignore=shutil.ignore_patterns("node_modules", "generated", "*.tsbuildinfo"),
    )
    (project / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return project


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", *command], cwd=project, capture_output=True, text=True, timeout=300, check=False
    )


def codegen(project: Path) -> None:
    result = run(project, "node_modules/.bin/graphql-codegen", "--config", "codegen.yml")
    if result.returncode != 0:
        pytest.fail(f"graphql-codegen failed:\n{result.stdout}{result.stderr}", pytrace=False)


def tsc(project: Path) -> subprocess.CompletedProcess[str]:
    return run(project, "node_modules/.bin/tsc", "--noEmit", "--pretty", "false")


def test_generated_types_type_check(tmp_path: Path, node_modules: Path) -> None:
    project = workspace(tmp_path, node_modules, SCHEMA.read_text(encoding="utf-8"))
    codegen(project)
    assert (project / "src" / "generated" / "operations.ts").exists()
    result = tsc(project)
    if result.returncode != 0:
        pytest.fail(f"tsc --noEmit failed:\n{result.stdout}{result.stderr}", pytrace=False)


def result_unions() -> set[str]:
    """The unions the example operations select at their root (every mutation's result)."""
    schema = build_schema(SCHEMA.read_text(encoding="utf-8"))
    names = set()
    for path in sorted(OPERATIONS.glob("*.graphql")):
        for definition in parse(path.read_text(encoding="utf-8")).definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            root = schema.get_root_type(definition.operation)
            assert root is not None
            for selection in definition.selection_set.selections:
                assert isinstance(selection, FieldNode)
                field_type = get_named_type(root.fields[selection.name.value].type)
                if isinstance(field_type, GraphQLUnionType):
                    names.add(field_type.name)
    return names


def with_fake_member(sdl: str, unions: set[str]) -> str:
    """schema.graphql with one more error type in each of `unions`."""
    document = parse(sdl)
    definitions = []
    for definition in document.definitions:
        if isinstance(definition, UnionTypeDefinitionNode) and definition.name.value in unions:
            member = NamedTypeNode(name=NameNode(value=FAKE_MEMBER))
            definition = UnionTypeDefinitionNode(
                name=definition.name,
                description=definition.description,
                directives=definition.directives,
                types=(*(definition.types or ()), member),
            )
        definitions.append(definition)
    fake = f"type {FAKE_MEMBER} implements Error {{ message: String! }}\n"
    return print_ast(document.__class__(definitions=tuple(definitions))) + "\n" + fake


def test_a_union_member_nobody_handles_breaks_the_build(tmp_path: Path, node_modules: Path) -> None:
    unions = result_unions()
    mutation = build_schema(SCHEMA.read_text(encoding="utf-8")).mutation_type
    assert mutation is not None
    every = {get_named_type(field.type).name for field in mutation.fields.values()}
    assert unions == every, f"no example operation selects {sorted(every - unions)}"
    sdl = with_fake_member(SCHEMA.read_text(encoding="utf-8"), unions)
    project = workspace(tmp_path, node_modules, sdl)
    codegen(project)
    result = tsc(project)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"tsc accepted an unhandled union member:\n{output}"
    # One error per switch, each at its `assertNever` call: every union is checked. The
    # argument is the unhandled member (`{ __typename: "UnhandledResult"; … }`), or only its
    # name for a union of one member, which TypeScript does not narrow as a whole.
    unhandled = re.findall(
        rf"src/handle\.ts\(\d+,\d+\): error TS2345: Argument of type '.*\"{FAKE_MEMBER}\".*' "
        r"is not assignable to parameter of type 'never'",
        output,
    )
    assert len(unhandled) == len(unions), output
    assert len(output.strip().splitlines()) == len(unions), output
