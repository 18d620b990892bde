"""The GraphQL in the README and in examples/operations/ is valid against schema.graphql.

graphql-core only, no server and no Node.js: the docs and the example operations cannot drift
from the schema on any machine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
OPERATIONS = REPO / "examples" / "operations"

_FENCE = re.compile(r"^```graphql[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))


def readme_examples() -> list[tuple[int, str]]:
    """(line number, text) of every ```graphql block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _FENCE.finditer(text)]


def test_the_readme_has_graphql_examples() -> None:
    assert len(readme_examples()) >= 7


@pytest.mark.parametrize(
    ("line", "example"), readme_examples(), ids=[f"README.md:{n}" for n, _ in readme_examples()]
)
def test_readme_example_is_valid(schema: GraphQLSchema, line: int, example: str) -> None:
    errors = validate(schema, parse(example))
    assert not errors, f"README.md line {line}:\n" + "\n".join(str(e) for e in errors)


def test_example_operations_are_valid(schema: GraphQLSchema) -> None:
    # One document, as codegen sees it: fragments are shared between the files.
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert files
    document = parse("\n".join(f.read_text(encoding="utf-8") for f in files))
    errors = validate(schema, document)
    assert not errors, "\n".join(str(e) for e in errors)


def test_example_operations_cover_every_query_and_mutation(schema: GraphQLSchema) -> None:
    # The examples are what client authors copy: a new root field needs one.
    used = set()
    for path in sorted(OPERATIONS.glob("*.graphql")):
        for definition in parse(path.read_text(encoding="utf-8")).definitions:
            if isinstance(definition, OperationDefinitionNode):
                for selection in definition.selection_set.selections:
                    if isinstance(selection, FieldNode):
                        used.add(f"{definition.operation.value}.{selection.name.value}")
    every = {
        f"{operation}.{name}"
        for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type))
        if root is not None
        for name in root.fields
    }
    assert not every - used, f"no example operation uses {sorted(every - used)}"
