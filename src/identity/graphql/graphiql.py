"""Strawberry's GraphiQL page, adjusted: typed headers stay in memory; assets can be ours.

GraphiQL keeps what a user types in localStorage. `shouldPersistHeaders: false` keeps the
headers editor out of it, but GraphiQL's query history still stores the headers of every
query it ran (the Authorization token among them) under `graphiql:queries`. The page
therefore hands GraphiQL a storage that blanks every `headers` value on the way in.
"""

from __future__ import annotations

PUBLIC_CDN = "https://unpkg.com/"

_PERSIST = "shouldPersistHeaders: true,"
_SCRIPT_ANCHOR = "      function GraphiQLWithExplorer() {"

_HEADERLESS_STORAGE = """\
      // identity: GraphiQL's storage, minus every `headers` value (history, favorites, tabs).
      const headerlessStorage = (() => {
        const prefix = "graphiql:";
        const structured = ["queries", "favorites", "tabState"].map((k) => prefix + k);
        const keys = () => Object.keys(localStorage).filter((k) => k.startsWith(prefix));
        const blank = (key, value) => {
          if (!structured.includes(key)) return value;
          try {
            return JSON.stringify(JSON.parse(value, (k, v) => (k === "headers" ? null : v)));
          } catch {
            return value;
          }
        };
        return {
          getItem: (key) => localStorage.getItem(key),
          setItem: (key, value) => {
            if (key !== prefix + "headers") localStorage.setItem(key, blank(key, value));
          },
          removeItem: (key) => localStorage.removeItem(key),
          clear: () => keys().forEach((k) => localStorage.removeItem(k)),
          get length() {
            return keys().length;
          },
        };
      })();

"""


def graphiql_page(template: str, assets_url: str | None = None) -> str:
    """The page to serve; fails loudly if Strawberry's template no longer fits."""
    if template.count(_PERSIST) != 1 or template.count(_SCRIPT_ANCHOR) != 1:
        raise RuntimeError(
            "Strawberry's GraphiQL template changed: identity cannot keep headers out of "
            "localStorage; update identity/graphql/graphiql.py"
        )
    page = template.replace(
        _PERSIST, "shouldPersistHeaders: false,\n          storage: headerlessStorage,"
    ).replace(_SCRIPT_ANCHOR, _HEADERLESS_STORAGE + _SCRIPT_ANCHOR)
    if assets_url:
        # The same files under the same relative paths: the SRI hashes still hold.
        page = page.replace(PUBLIC_CDN, assets_url)
    return page
