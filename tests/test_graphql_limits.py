"""Bounds on one request, second part: directives, fragment chains, GET, the validation cache."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from identity.container import Container
from identity.graphql import schema as schema_module
from tests.conftest import GraphQLClient, row_counts, signed_up

TOO_COMPLEX = "QUERY_TOO_COMPLEX"


async def refused(client: httpx.AsyncClient, query: str) -> str:
    """The refusal's message, after checking it is a cheap QUERY_TOO_COMPLEX (HTTP 400)."""
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == TOO_COMPLEX
    message: str = error["message"]
    return message


# Directives --------------------------------------------------------------------------------

REGISTER = (
    'mutation { register(input: {email: "d@example.com", password: "a long passphrase", '
    'firstName: "D", lastName: "E"}) %s { __typename } }'
)


@pytest.mark.parametrize(
    "query",
    [
        "{ me " + "@a " * 300 + "{ id } }",  # unknown, on one field
        "{ me " + "@include(if: true) " * 5 + "{ id } }",  # known
        "{ me { ...F " + "@skip(if: false) " * 5 + "} } fragment F on User { id }",  # a spread
        "{ me { id } } fragment F on User { id " + "@x " * 5 + "}",  # an unused fragment
        "{ me { ... on User " + "@x " * 5 + "{ id } } }",  # an inline fragment
        "query Q " + "@x " * 5 + "{ me { id } }",  # the operation
        "query Q($a: Int " + "@x " * 5 + ") { me { id } }",  # a variable
        "{ me { ...F } } fragment F on User " + "@x " * 5 + "{ id }",  # a fragment definition
        "{ me { id } } type T { f(a: Int " + "@x " * 5 + "): Int }",  # not even executable
    ],
)
async def test_many_directives_in_one_place_are_refused(
    client: httpx.AsyncClient, query: str
) -> None:
    assert await refused(client, query) == "More than 4 directives on one field or fragment."


@pytest.mark.parametrize(
    "query",
    [
        "{ me { " + "id @include(if: true) " * 31 + "} }",
        # Written twice, spread sixteen times: as executed, 32 directives.
        "{ me { "
        + "...F " * 16
        + "} } fragment F on User { id @include(if: true) @skip(if: false) }",
        "{ me { ...F ...F } } fragment F on User { ...G ...G ...G ...G }"
        " fragment G on User { id @include(if: true) @a @b @c }",
        "{ " + " ".join(f"f{i}: me @x @y {{ id }}" for i in range(15)) + " me { id @x } }",
    ],
)
async def test_many_directives_in_one_operation_are_refused(
    client: httpx.AsyncClient, query: str
) -> None:
    assert await refused(client, query) == "More than 30 directives in one request."


async def test_a_refused_mutation_writes_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    before = await row_counts(container)
    assert "directives" in await refused(client, REGISTER % ("@a " * 200))
    assert await row_counts(container) == before


async def test_a_few_directives_are_fine(gql: GraphQLClient) -> None:
    query = (
        "query Q { me @include(if: true) @skip(if: false) { ...F } }"
        " fragment F on User { id @include(if: false) }"
    )
    assert (await gql(query))["data"] == {"me": None}


@pytest.mark.parametrize(
    "settings_overrides", [{"max_directives": 2, "max_directives_per_field": 1}]
)
async def test_directive_bounds_follow_their_settings(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    assert "More than 1 directives" in await refused(
        client, "{ me @include(if: true) @skip(if: false) { id } }"
    )
    assert "More than 2 directives" in await refused(
        client, "{ me @include(if: true) { id @skip(if: false) email @skip(if: false) } }"
    )
    assert (await gql("{ me @include(if: true) { id @skip(if: false) } }"))["data"] == {"me": None}


async def test_validation_with_directives_stays_cached(
    gql: GraphQLClient, client: httpx.AsyncClient
) -> None:
    """The bounds are rule classes built once: the cache keyed by query text keeps hitting."""
    user = await signed_up(gql)
    query = "{ me @include(if: true) { id email @skip(if: false) } }"
    await gql(query, token=user.access_token)
    before = schema_module._validate.cache_info()
    await gql(query, token=user.access_token)
    after = schema_module._validate.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (2, 0)  # both passes
    refused_query = "{ me " + "@a " * 50 + "{ id } }"
    await refused(client, refused_query)
    before = schema_module._validate.cache_info()
    await refused(client, refused_query)
    after = schema_module._validate.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (1, 0)  # limits only


# Fragments -----------------------------------------------------------------------------------


def chain(length: int) -> str:
    """`me` spreading F0, each fragment spreading the next: a chain `length` long."""
    fragments = "".join(f"fragment F{i} on User {{ ...F{i + 1} }}\n" for i in range(length - 1))
    return "{ me { ...F0 } }\n" + fragments + f"fragment F{length - 1} on User {{ id }}"


async def test_a_chain_of_hundreds_of_fragments_is_too_complex(client: httpx.AsyncClient) -> None:
    # graphql-core gives up past 200 levels with "Validation aborted." (HTTP 200, no code).
    assert await refused(client, chain(220)) == "Fragments are nested more than 50 deep."
    assert await refused(client, chain(52)) == "Fragments are nested more than 50 deep."


async def test_a_chain_of_a_few_fragments_is_fine(gql: GraphQLClient) -> None:
    assert (await gql(chain(40)))["data"] == {"me": None}


async def test_graphql_cores_own_abort_is_too_complex(client: httpx.AsyncClient) -> None:
    # Few fragments, each nesting inline fragments: past graphql-core's 200 levels, within ours.
    levels = 25
    fragments = "".join(
        f"fragment F{i} on User {{ {'... on User { ' * levels}...F{i + 1}{' }' * levels} }}\n"
        for i in range(9)
    )
    query = "{ me { ...F0 } }\n" + fragments + "fragment F9 on User { id }"
    assert await refused(client, query) == "The document is too complex to validate."


async def test_more_than_a_hundred_validation_errors_are_too_complex(
    client: httpx.AsyncClient,
) -> None:
    fields = " ".join(f"unknown{i}" for i in range(120))
    assert await refused(client, f"{{ me {{ {fields} }} }}") == (
        "The document is too complex to validate."
    )


# GET -------------------------------------------------------------------------------------------

TYPENAME = {"query": "{ __typename }"}
HTML = {"Accept": "text/html"}


async def get_refused(client: httpx.AsyncClient, **kwargs: Any) -> None:
    for method in ("GET", "HEAD"):
        response = await client.request(method, "/graphql", **kwargs)
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"
        if method == "GET":
            assert response.json()["errors"][0]["message"] == (
                "Operations over GET are turned off: POST them."
            )


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
async def test_production_runs_no_operation_sent_with_get(
    client: httpx.AsyncClient, gql: GraphQLClient
) -> None:
    await get_refused(client, params=TYPENAME)
    await get_refused(client, params={"query": "{ me { id } }", "variables": "{}"})
    assert (await client.get("/graphql", headers=HTML)).status_code == 404  # no GraphiQL either
    assert (await gql("{ __typename }"))["data"] == {"__typename": "Query"}  # POST works


@pytest.mark.parametrize("settings_overrides", [{"env": "production", "graphql_get": True}])
async def test_production_runs_queries_over_get_when_asked(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params=TYPENAME)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize(
    "settings_overrides",
    [{"env": "production", "graphiql": True}, {"graphql_get": False}],
)
async def test_graphiql_stays_available_when_get_runs_no_operations(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    # A link that prefills GraphiQL opens the page; it does not run the operation.
    prefilled = await client.get("/graphql", params=TYPENAME, headers=HTML)
    assert prefilled.status_code == 200
    assert prefilled.headers["content-type"].startswith("text/html")
    await get_refused(client, params=TYPENAME)
    plain = await client.get("/graphql")
    assert plain.status_code == 404
    assert "GET with" not in plain.json()["errors"][0]["message"]


async def test_development_runs_queries_over_get_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params=TYPENAME)
    assert (response.status_code, response.json()) == (200, {"data": {"__typename": "Query"}})
