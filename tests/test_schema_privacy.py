"""With introspection and suggestions off, the schema cannot be read back from error messages.

The probes do what schema-recovery tools (clairvoyance and the like) do: guess likely field,
argument, input-field, type and directive names against Query, Mutation and the types they
lead to, and read what the answers give away. In production no answer may contain a type
name of the schema; in development the same probes get graphql-core's helpful messages
(the control: it shows that the probes do reach the messages that would leak).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from identity.config import Settings
from identity.graphql.hints import GENERIC, neutral_message
from identity.graphql.schema import build_schema


def words(text: str) -> list[str]:
    return text.split()


WORDS = sorted(
    set(
        words(
            """
        id ids uuid key name email emails username login logout register password token tokens
        user users me viewer account accounts profile role roles permission permissions session
        sessions admin group groups team organization node nodes edges edge pageInfo cursor
        first last after before filter search input code description message createdAt
        updatedAt firstName lastName isActive isVerified isSystem current ipAddress userAgent
        details action occurredAt auditEvents accessToken refreshToken expiresIn tokenType
        totalCount hasNextPage endCursor secret apiKey settings debug version status
        createUser updateUser deleteUser verify reset factors refresh limit offset sort where
        since until actorId subjectId
        """
        )
    )
)
TYPE_GUESSES = words(
    """
    User Users Role Permission Session Account Profile Admin Token AuthPayload Error
    ValidationError UserConnection UserEdge PageInfo AuditEvent UserFilter LoginInput
    RegisterInput Query Mutation String Int Boolean ID DateTime JSON Node Viewer Group
    Factor FactorKind MfaRequired MfaMethod VerifyMfaInput Totp Passkey
    """
)
DIRECTIVE_GUESSES = words("include skip deprecated defer stream auth hasPermission cached live")

# Where a guess goes: a document with a hole for the guessed selection, into each type the
# roots lead to (validation runs before anything is resolved: no sign-in is needed).
POSITIONS = {
    "Query": "query { %s }",
    "User": "query { me { %s } }",
    "Role": "query { me { roles { %s } } }",
    "Permission": "query { me { roles { permissions { %s } } } }",
    "Session": "query { me { sessions { %s } } }",
    "UserConnection": "query { users { %s } }",
    "UserEdge": "query { users { edges { %s } } }",
    "PageInfo": "query { users { pageInfo { %s } } }",
    "AuditEvent": "query { auditEvents { edges { node { %s } } } }",
    "Factor": "query { me { factors { %s } } }",
    "Mutation": "mutation { %s }",
    "AuthPayload": 'mutation { login(input: {email: "a@b.co", password: "p"}) '
    "{ ... on AuthPayload { %s } } }",
    "MfaRequired": 'mutation { login(input: {email: "a@b.co", password: "p"}) '
    "{ ... on MfaRequired { %s } } }",
    "fragment": "query { me { ...Guess } } fragment Guess on User { %s }",
}
# Fields that take arguments, with their required ones given: the guesses are more arguments.
WITH_ARGUMENTS = [
    'query { user(id: "1", %s) { id } }',
    "query { users(%s) { totalCount } }",
    'query { role(id: "1", %s) { id } }',
    "query { auditEvents(%s) { totalCount } }",
    'mutation { login(input: {email: "a@b.co", password: "p"}, %s) { __typename } }',
    'mutation { revokeSession(id: "1", %s) { __typename } }',
    'mutation { verifyMfa(input: {mfaToken: "t", totpCode: "1"}, %s) { __typename } }',
    "query { me @include(if: true, %s) { id } }",
]
# Wrong values and input fields: the messages would name the expected type.
VALUES = [
    'query { users(first: "ten") { totalCount } }',
    "query { user(id: true) { id } }",
    'query { users(filter: {search: 1, role: [2], isActive: "yes"}) { totalCount } }',
    'query { auditEvents(filter: {since: "not a time", userId: {}}) { totalCount } }',
    "query { users(first: null) { totalCount } }",
    'mutation { login(input: {email: "a@b.co"}) { __typename } }',
    "mutation { login(input: {}) { __typename } }",
    'mutation { updateMe(input: {firstName: 1, lastName: ["x"]}) { __typename } }',
    "query($f: Boolean) { users(first: $f) { totalCount } }",
    "query($f: String!) { user(id: $f) { id } }",
    "query($f: [Int]) { users(first: $f) { totalCount } }",
    "query { a: me { id } a: users { totalCount } }",
    "query { me { id: email } me { id } }",
    "query { user { id } }",
    "query { users { edges } }",
    "query { me { id { zzz } } }",
    "query { me @include { id } }",
    "query { me @include(if: 1) { id } }",
    "query { me @skip(if: true) @skip(if: false) { id } }",
    "query { me { ...on Query { id } } }",
    "fragment F on Mutation { login } query { me { ...F } }",
]
INPUT_VARIABLES = [
    ("mutation($i: LoginInput!) { login(input: $i) { __typename } }", "i"),
    ("mutation($i: RegisterInput!) { register(input: $i) { __typename } }", "i"),
    ("query($f: UserFilter) { users(filter: $f) { totalCount } }", "f"),
    ("query($f: AuditFilter) { auditEvents(filter: $f) { totalCount } }", "f"),
    ("mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { __typename } }", "i"),
]
BAD_VARIABLES: list[tuple[str, dict[str, Any]]] = [
    ("query($n: Int) { users(first: $n) { totalCount } }", {"n": "ten"}),
    ("query($n: Int) { users(first: $n) { totalCount } }", {"n": 2**40}),
    ("query($i: ID!) { user(id: $i) { id } }", {}),
    ("query($i: ID!) { user(id: $i) { id } }", {"i": None}),
    ("query($i: ID!) { user(id: $i) { id } }", {"i": {"x": 1}}),
    ("query($f: UserFilter) { users(filter: $f) { totalCount } }", {"f": "all"}),
    ("query($f: UserFilter) { users(filter: $f) { totalCount } }", {"f": {"isActive": "y"}}),
    ("query($f: AuditFilter) { auditEvents(filter: $f) { totalCount } }", {"f": {"since": 1}}),
    ("mutation($i: LoginInput!) { login(input: $i) { __typename } }", {"i": []}),
    ("mutation($i: LoginInput!) { login(input: $i) { __typename } }", {"i": {"email": 5}}),
    ("mutation($i: VerifyMfaInput!) { verifyMfa(input: $i) { __typename } }", {"i": {}}),
    ("{ me { factors { kind } } }", {}),
    ('mutation { renameFactor(id: "1", label: 5) { __typename } }', {}),
]


def probes() -> Iterator[tuple[str, dict[str, Any]]]:
    """(document, variables) pairs; several guesses per document, as the tools batch them."""
    for hole in POSITIONS.values():
        # One credential mutation per request: `register` beside `login` would be refused.
        words = [w for w in WORDS if w != "register"] if hole == POSITIONS["Mutation"] else WORDS
        for chunk in (words[i : i + 30] for i in range(0, len(words), 30)):  # < 100 errors
            yield hole % " ".join(chunk), {}  # as leaves
            yield hole % " ".join(f"{w} {{ zzz }}" for w in chunk), {}  # as objects
            yield hole % " ".join(f"{w}(zzz: 1)" for w in chunk), {}  # with an argument
    for hole in WITH_ARGUMENTS:
        for chunk in (WORDS[i : i + 30] for i in range(0, len(WORDS), 30)):
            yield hole % ", ".join(f"{w}: 1" for w in chunk), {}
    for document in VALUES:
        yield document, {}
    inline = " ".join(f"... on {t} {{ id }}" for t in TYPE_GUESSES)
    yield f"query {{ me {{ {inline} }} }}", {}
    yield f'mutation {{ login(input: {{email: "a@b.co", password: "p"}}) {{ {inline} }} }}', {}
    for guess in TYPE_GUESSES:
        yield f"query($v: {guess}) {{ me {{ id }} }}", {}
        yield f"query {{ me {{ ...G }} }} fragment G on {guess} {{ id }}", {}
        yield f"query($v: [{guess}!]) {{ users(first: $v) {{ totalCount }} }}", {}
    for directive in DIRECTIVE_GUESSES:
        yield f"query {{ me @{directive} {{ id }} }}", {}
        yield f"query {{ me {{ ...G @{directive} }} }} fragment G on User {{ id }}", {}
        yield f"query @{directive} {{ me {{ id }} }}", {}
    for document, name in INPUT_VARIABLES:  # input fields guessed in a variable's value
        yield document, {name: dict.fromkeys(WORDS[:40], "x")}
        yield document, {name: dict.fromkeys(WORDS[40:], "x")}
    yield from BAD_VARIABLES


def schema_type_names() -> set[str]:
    schema = build_schema(Settings.model_construct())._schema
    return {name for name in schema.type_map if not name.startswith("__")}


TYPE_NAMES = schema_type_names()
NAMED_TYPE = re.compile(r"\b(" + "|".join(sorted(TYPE_NAMES, key=len, reverse=True)) + r")\b")


async def answers(client: httpx.AsyncClient) -> list[str]:
    texts = []
    for query, variables in probes():
        response = await client.post("/graphql", json={"query": query, "variables": variables})
        assert response.status_code == 200, (query, response.text)  # not refused as too complex
        body = response.json()
        # A right guess is a valid document (`... on User` in `me`): its answer is data.
        assert body.get("errors") or body["data"] == {"me": None}, (query, variables, body)
        texts.append(response.text)
    return texts


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
async def test_guessed_names_never_reveal_a_type_name_in_production(
    client: httpx.AsyncClient,
) -> None:
    leaks = {}
    for text in await answers(client):
        found = NAMED_TYPE.findall(text)
        if found:
            leaks[text] = found
        assert "Did you mean" not in text
    assert not leaks, leaks
    assert {"User", "Role", "Permission", "LoginInput", "String", "Mutation"} <= TYPE_NAMES


@pytest.mark.parametrize("settings_overrides", [{"env": "production"}])
async def test_production_messages_keep_what_the_client_wrote_and_the_locations(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/graphql", json={"query": "{ me { roles zzz } }"})
    errors = response.json()["errors"]
    assert errors == [
        {
            "message": "Field 'roles' must have a selection of subfields.",
            "locations": [{"line": 1, "column": 8}],
        },
        {"message": "Cannot query field 'zzz' here.", "locations": [{"line": 1, "column": 14}]},
    ]
    login = "mutation($i: LoginInput!) { login(input: $i) { __typename } }"
    variables = {"i": {"email": "a@b.co", "password": "my secret passphrase", "pasword": 1}}
    response = await client.post("/graphql", json={"query": login, "variables": variables})
    assert response.json()["errors"] == [
        {
            "message": "Variable '$i' has an invalid value: The input has an unknown field "
            "'pasword'.",
            "locations": [{"line": 1, "column": 10}],
        }
    ]
    # Errors with a code are the API's own: they stay as they are.
    response = await client.post("/graphql", json={"query": "{ users(first: 500) { totalCount } }"})
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    response = await client.post("/graphql", json={"query": "{ __schema { types { name } } }"})
    assert "introspection has been disabled" in response.json()["errors"][0]["message"]
    # The parser knows no schema: its messages stay as they are.
    response = await client.post("/graphql", json={"query": "{ me { id "})
    assert response.json()["errors"][0]["message"] == "Syntax Error: Expected Name, found <EOF>."


async def test_development_keeps_graphql_cores_helpful_messages(client: httpx.AsyncClient) -> None:
    texts = await answers(client)
    named = {name for text in texts for name in NAMED_TYPE.findall(text)}
    # The probes reach the messages that name types: the production test can fail.
    assert {"User", "Role", "Permission", "Session", "Factor", "LoginInput", "Int", "ID"} <= named
    assert any("Did you mean" in text for text in texts)
    assert any("of type '[Permission!]!' must have a selection of subfields" in t for t in texts)


@pytest.mark.parametrize(
    "settings_overrides", [{"env": "production", "graphql_hints": True}, {"graphql_hints": False}]
)
async def test_hints_follow_their_setting_whatever_the_mode(
    client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    response = await client.post("/graphql", json={"query": "{ me { roles } }"})
    message = response.json()["errors"][0]["message"]
    if settings_overrides["graphql_hints"]:
        assert "'[Role!]!'" in message
    else:
        assert message == "Field 'roles' must have a selection of subfields."


@pytest.mark.parametrize(
    "message",
    [
        "Some future rule's message about type 'User'.",
        "Cannot query field 'a b' on type 'User'.",  # not a name: nothing is echoed
        "Unknown operation named 'User\" or 1'.",
        "Abstract type 'LoginResult' must resolve to an Object type at runtime.",
        "Cannot return null for non-nullable field 'User.email'.",
    ],
)
def test_a_message_of_an_unknown_shape_becomes_the_generic_one(message: str) -> None:
    assert neutral_message(message) == GENERIC


def test_neutral_messages_never_echo_a_value_or_a_type() -> None:
    message = (
        "Variable '$i' has invalid value.password: String cannot represent a non string "
        "value: 'hunter2 hunter2'"
    )
    assert neutral_message(message) == "Variable '$i' has an invalid value.password: Invalid value."
    assert neutral_message("Expected Iterable, but did not find one for 'Query.roles'.") == (
        "Invalid value."
    )
