// A relying party on the certified openid-client library, signing in with identity.
//
//   ISSUER=http://localhost:8000 CLIENT_ID=… CLIENT_SECRET=… PORT=3000 node rp.mjs
//
// Register it first (identity clients create "Example RP" --redirect-uri
// http://localhost:3000/callback --redirect-uri http://localhost:3000/signed-out), then open
// http://localhost:3000/login. /callback shows what openid-client checked and received as
// JSON: the ID token's claims (validated by openid-client, and its signature once more by
// jose against identity's JWKS), userinfo, a refresh, a revocation. /logout signs out of
// identity (RP-initiated logout) and comes back to /signed-out.
import http from "node:http";
import * as client from "openid-client";
import * as jose from "jose";

const { ISSUER, CLIENT_ID, CLIENT_SECRET } = process.env;
const PORT = Number(process.env.PORT || 3000);
const BASE = `http://localhost:${PORT}`;
const SCOPE = "openid profile email offline_access";

// Plain http is for loopback development and the tests; in production the issuer is https.
const insecure = ISSUER.startsWith("http://") ? { execute: [client.allowInsecureRequests] } : {};
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, CLIENT_SECRET, undefined, insecure);
const metadata = config.serverMetadata();
const jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri));

const pending = new Map(); // state -> { verifier, nonce }
let lastIdToken = null;

async function login(url, res) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  pending.set(state, { verifier, nonce });
  const parameters = {
    redirect_uri: `${BASE}/callback`,
    scope: SCOPE,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  };
  const acr = url.searchParams.get("acr_values");
  if (acr) parameters.acr_values = acr;
  const target = client.buildAuthorizationUrl(config, parameters);
  res.writeHead(302, { Location: target.href }).end();
}

async function callback(url, res) {
  const state = url.searchParams.get("state");
  const kept = pending.get(state);
  if (!kept) throw new Error("unknown state");
  pending.delete(state);
  const tokens = await client.authorizationCodeGrant(config, url, {
    pkceCodeVerifier: kept.verifier,
    expectedState: state,
    expectedNonce: kept.nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  const verified = await jose.jwtVerify(tokens.id_token, jwks, {
    issuer: metadata.issuer,
    audience: CLIENT_ID,
    algorithms: ["RS256"],
  });
  lastIdToken = tokens.id_token;
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  await client.tokenRevocation(config, refreshed.refresh_token);
  let afterRevocation = "accepted";
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token);
  } catch (error) {
    afterRevocation = error.error || String(error);
  }
  const result = {
    claims,
    signatureAlgorithm: verified.protectedHeader.alg,
    userinfo,
    refreshed: Boolean(refreshed.access_token && refreshed.refresh_token),
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    afterRevocation,
  };
  const body = `<!doctype html><title>Signed in</title><h1>Signed in</h1>
<pre id="result">${JSON.stringify(result, null, 2).replace(/</g, "\\u003c")}</pre>`;
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" }).end(body);
}

function logout(res) {
  const target = client.buildEndSessionUrl(config, {
    id_token_hint: lastIdToken,
    post_logout_redirect_uri: `${BASE}/signed-out`,
    state: "bye",
  });
  res.writeHead(302, { Location: target.href }).end();
}

http
  .createServer(async (req, res) => {
    const url = new URL(req.url, BASE);
    try {
      if (url.pathname === "/login") await login(url, res);
      else if (url.pathname === "/callback") await callback(url, res);
      else if (url.pathname === "/logout") logout(res);
      else if (url.pathname === "/signed-out") {
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        res.end(`<!doctype html><title>Signed out</title><h1 id="signed-out">Signed out (${url.searchParams.get("state")})</h1>`);
      } else if (url.pathname === "/health") res.writeHead(200).end("ok");
      else res.writeHead(404).end();
    } catch (error) {
      res.writeHead(500, { "Content-Type": "text/plain" }).end(`${error.name}: ${error.message}`);
    }
  })
  .listen(PORT, "127.0.0.1");
