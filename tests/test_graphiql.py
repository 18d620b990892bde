"""The GraphiQL page: headers stay out of localStorage; assets can come from our own host.

The page itself runs in a real browser in test_graphiql_browser.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from identity.config import ConfigError, load_settings
from identity.graphql.graphiql import graphiql_page

HTML = {"Accept": "text/html"}
ASSET = re.compile(r'(?:src|href)="([^"]+)"\s+integrity="(sha384-[^"]+)"')


async def page(client: httpx.AsyncClient) -> str:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_graphiql_does_not_persist_headers(client: httpx.AsyncClient) -> None:
    html = await page(client)
    assert "shouldPersistHeaders: false" in html
    assert "shouldPersistHeaders: true" not in html
    # The history would keep them otherwise (see identity/graphql/graphiql.py).
    assert "storage: headerlessStorage," in html
    assert "const headerlessStorage = " in html
    assets = ASSET.findall(html)
    assert len(assets) == 7
    assert all(url.startswith("https://unpkg.com/") for url, _ in assets)


@pytest.mark.parametrize(
    "settings_overrides", [{"graphiql_assets_url": "https://static.example/graphiql"}]
)
async def test_graphiql_loads_its_assets_from_the_configured_url(
    client: httpx.AsyncClient, settings_overrides: dict[str, Any]
) -> None:
    html = await page(client)
    assert "unpkg.com" not in html
    assets = ASSET.findall(html)
    assert len(assets) == 7
    urls = [url for url, _ in assets]
    assert "https://static.example/graphiql/react@18.2.0/umd/react.production.min.js" in urls
    assert all(url.startswith("https://static.example/graphiql/") for url in urls)
    assert "shouldPersistHeaders: false" in html


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://static.example/assets", "https://static.example/assets/"),
        ("http://10.0.0.5:8080/", "http://10.0.0.5:8080/"),
        ("/graphiql-assets", "/graphiql-assets/"),
        ("", None),
    ],
)
def test_graphiql_assets_url_setting(value: str, expected: str | None) -> None:
    settings = load_settings(_env_file=None, graphiql_assets_url=value)
    assert settings.graphiql_assets_url == expected


def test_graphiql_assets_url_must_be_a_url() -> None:
    with pytest.raises(ConfigError, match="IDENTITY_GRAPHIQL_ASSETS_URL"):
        load_settings(_env_file=None, graphiql_assets_url="static.example/assets")


def test_a_changed_template_is_refused_rather_than_served_with_persisted_headers() -> None:
    with pytest.raises(RuntimeError, match="template changed"):
        graphiql_page("<html>shouldPersistHeaders: true</html>")
