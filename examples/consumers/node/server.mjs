// A Node.js service that trusts identity's access tokens (node:http, no framework).
//
//   IDENTITY_ISSUER=https://id.example.com PUBLIC_ORIGIN=https://api.example.com PORT=3000 node server.mjs
//
// PUBLIC_ORIGIN is where clients call this service: DPoP proofs name it, and a proof for
// another service (or a Host header a client chose) must not pass here.
import http from "node:http";

import { accessToken, createVerifier, InvalidToken } from "./verify.mjs";

const verify = createVerifier({
  issuer: process.env.IDENTITY_ISSUER,
  audience: process.env.IDENTITY_AUDIENCE ?? "identity",
  jwksUrl: process.env.IDENTITY_JWKS_URL, // when the service reaches identity elsewhere
});

const publicOrigin = process.env.PUBLIC_ORIGIN?.replace(/\/$/, "");
if (!publicOrigin) throw new Error("PUBLIC_ORIGIN is required, e.g. https://api.example.com");

// The caller's verified token, or an HTTP status and message to answer instead.
async function authenticate(request, { role, aal = 1 } = {}) {
  const given = accessToken(request.headers.authorization);
  if (!given) return { status: 401, message: "a bearer or DPoP token is required" };
  const path = new URL(request.url, publicOrigin).pathname;
  const dpop =
    given.scheme === "dpop"
      ? { proof: request.headers.dpop ?? "", method: request.method, url: publicOrigin + path }
      : null;
  let access;
  try {
    access = await verify(given.token, dpop);
  } catch (error) {
    if (error instanceof InvalidToken) return { status: 401, message: "the token is invalid or expired" };
    return { status: 503, message: "cannot verify tokens right now" };
  }
  if (access.aal < aal) {
    return { status: 401, message: "sign in with a second factor", challenge: "insufficient_user_authentication" };
  }
  if (role && !access.roles.has(role)) return { status: 403, message: `requires the ${role} role` };
  return { access };
}

const routes = {
  "/me": async (request) => {
    const { access, ...refusal } = await authenticate(request);
    if (!access) return refusal;
    return { status: 200, body: { userId: access.userId, roles: [...access.roles].sort(), aal: access.aal } };
  },
  // For a decision that matters, ask identity (the `me` query): `roles` is only as fresh as
  // the token.
  "/report": async (request) => {
    const { access, ...refusal } = await authenticate(request, { role: "admin" });
    if (!access) return refusal;
    return { status: 200, body: { report: "for admins", userId: access.userId } };
  },
  // Money moves only for a caller who signed in with a second factor.
  "/payouts": async (request) => {
    const { access, ...refusal } = await authenticate(request, { aal: 2 });
    if (!access) return refusal;
    return { status: 200, body: { payouts: [], userId: access.userId, aal: access.aal } };
  },
};

const server = http.createServer(async (request, response) => {
  const route = routes[new URL(request.url, "http://localhost").pathname];
  const { status, body, message, challenge } = route
    ? await route(request)
    : { status: 404, message: "not found" };
  const headers = { "Content-Type": "application/json" };
  if (status === 401) headers["WWW-Authenticate"] = `Bearer error="${challenge ?? "invalid_token"}"`;
  response.writeHead(status, headers).end(JSON.stringify(body ?? { error: message }));
});

server.listen(Number(process.env.PORT ?? 3000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
