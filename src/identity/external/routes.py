"""GET /login/external/{provider}/callback: the provider sends the browser back here.

identity answers with a redirect to the app's `returnTo`: `#code=…` (a one-time code,
worthless without the app's verifier) or `#error=…`. In the fragment, neither reaches the
app's server logs or a Referer. The provider's own code, in this URL's query, is never logged.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from identity.container import Container
from identity.services.external import CALLBACK_PATH
from identity.services.principal import ClientInfo

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}
_NOWHERE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign-in failed</title></head><body><h1>Sign-in failed</h1>
<p>This sign-in link is not valid any more. Go back to the app and start again.</p></body></html>
"""
_MAX_PARAM = 4096


def external_login_routes(container: Container) -> list[Route]:
    async def callback(request: Request) -> Response:
        provider = request.path_params["provider"]
        # One value per name, and none of unreasonable size: anything else is not a
        # provider's answer (and must not reach the log or the database).
        params = {
            key: value
            for key, value in request.query_params.items()
            if len(value) <= _MAX_PARAM and len(request.query_params.getlist(key)) == 1
        }
        client = ClientInfo(
            ip_address=request.scope.get("state", {}).get("client_ip"),
            user_agent=request.headers.get("user-agent"),
        )
        async with container.unit_of_work(client) as uow:
            target = await container.external_login.returned(uow, provider, params)
        if target is None:
            return HTMLResponse(_NOWHERE, status_code=400, headers=_HEADERS)
        return RedirectResponse(target, status_code=303, headers=_HEADERS)

    path = CALLBACK_PATH.replace("{provider}", "{provider:str}")
    return [Route(path, callback, methods=["GET"])]
