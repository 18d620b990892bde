"""The certified OpenID Provider `oidc-provider` (examples/oidc-upstream) as a running process,
for the tests that prove sign-in with other providers against other people's code.

Its accounts live in a JSON file that it reads at every sign-in: `add` writes one.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.nodetools import EXAMPLES, npm_ci
from tests.test_server import free_port

UPSTREAM = EXAMPLES / "oidc-upstream"
CLIENT_ID = "identity"
CLIENT_SECRET = "upstream-client-secret-for-identity"


class Upstream:
    def __init__(self, folder: Path, redirect_uris: list[str]) -> None:
        modules = npm_ci(UPSTREAM) / "node_modules"
        self.port = free_port()
        self.issuer = f"http://localhost:{self.port}"
        self.accounts = folder / "upstream-accounts.json"
        self.accounts.write_text("{}")
        self.log = folder / f"upstream-{self.port}.log"
        clients = [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
            }
        ]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PORT": str(self.port),
            "ACCOUNTS_FILE": str(self.accounts),
            "CLIENTS": json.dumps(clients),
        }
        # The script imports oidc-provider from node_modules beside it: a link to the cache.
        link = folder / "node_modules"
        if not link.exists():
            link.symlink_to(modules, target_is_directory=True)
        script = folder / "server.mjs"
        script.write_text((UPSTREAM / "server.mjs").read_text())
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                ["node", str(script)], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        discovery = f"{self.issuer}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {self.log.read_text()}")
            try:
                if httpx.get(discovery, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"oidc-provider did not start: {self.log.read_text()}")

    def settings(self, provider_id: str = "upstream", name: str = "Upstream") -> dict[str, Any]:
        """One entry of IDENTITY_OIDC_PROVIDERS for this provider."""
        return {
            "id": provider_id,
            "name": name,
            "discovery_url": f"{self.issuer}/.well-known/openid-configuration",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        }

    def add(self, login: str, email: str, *, verified: bool = True, **names: str) -> None:
        accounts = json.loads(self.accounts.read_text())
        accounts[login] = {
            "email": email,
            "email_verified": verified,
            "given_name": names.get("given_name", login.title()),
            "family_name": names.get("family_name", "Upstream"),
        }
        self.accounts.write_text(json.dumps(accounts))

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        return self.log.read_text()
