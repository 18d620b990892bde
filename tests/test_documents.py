"""The GraphQL of the README, of every documentation page and of examples/operations/ is valid
against schema.graphql.

graphql-core only, no server and no Node.js: the docs and the example operations cannot drift
from the schema on any machine. Every ```graphql block is an operation (SDL has no place in
such a block; see docs/development/index.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
    validate,
)

from tests.docs_examples import REPO, Block, blocks, pages

README = REPO / "README.md"
OPERATIONS = REPO / "examples" / "operations"


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema((REPO / "schema.graphql").read_text(encoding="utf-8"))


def graphql_examples(paths: list[Path] | None = None) -> list[Block]:
    """Every ```graphql block of the README and the documentation pages."""
    return [b for path in paths or pages() for b in blocks(path) if b.language == "graphql"]


def test_the_readme_and_the_docs_have_graphql_examples() -> None:
    assert graphql_examples([README])
    # One or more for each operation of "Using the API", and the tour's.
    assert len(graphql_examples()) >= 40


@pytest.mark.parametrize("example", graphql_examples(), ids=lambda block: block.where)
def test_graphql_example_is_valid(schema: GraphQLSchema, example: Block) -> None:
    errors = validate(schema, parse(example.text))
    assert not errors, f"{example.where}:\n" + "\n".join(str(e) for e in errors)


def test_every_operation_has_an_example_in_the_docs(schema: GraphQLSchema) -> None:
    # "Using the API" shows each query and mutation at work.
    used = _root_fields([parse(block.text) for block in graphql_examples()])
    missing = _every_root_field(schema) - used
    assert not missing, f"no ```graphql example in the docs uses {sorted(missing)}"


def test_example_operations_are_valid(schema: GraphQLSchema) -> None:
    # One document, as codegen sees it: fragments are shared between the files.
    files = sorted(OPERATIONS.glob("*.graphql"))
    assert files
    document = parse("\n".join(f.read_text(encoding="utf-8") for f in files))
    errors = validate(schema, document)
    assert not errors, "\n".join(str(e) for e in errors)


def test_example_operations_cover_every_query_and_mutation(schema: GraphQLSchema) -> None:
    # The examples are what client authors copy: a new root field needs one.
    documents = [parse(path.read_text(encoding="utf-8")) for path in OPERATIONS.glob("*.graphql")]
    missing = _every_root_field(schema) - _root_fields(documents)
    assert not missing, f"no example operation uses {sorted(missing)}"


def _root_fields(documents: list[DocumentNode]) -> set[str]:
    used = set()
    for document in documents:
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode):
                for selection in definition.selection_set.selections:
                    if isinstance(selection, FieldNode):
                        used.add(f"{definition.operation.value}.{selection.name.value}")
    return used


def _every_root_field(schema: GraphQLSchema) -> set[str]:
    return {
        f"{operation}.{name}"
        for operation, root in (("query", schema.query_type), ("mutation", schema.mutation_type))
        if root is not None
        for name in root.fields
    }
