// A certified OpenID Provider (panva's oidc-provider) on loopback, as the upstream provider of
// identity's "sign in with another provider": for the tests, and for trying the flow locally.
//
//   PORT=4010 ACCOUNTS_FILE=accounts.json CLIENTS='[...]' node server.mjs
//
// PORT           where it listens (127.0.0.1); the issuer is http://localhost:PORT unless ISSUER says
// ACCOUNTS_FILE  a JSON object: account name -> {email, email_verified, given_name, family_name};
//                read again at every sign-in, so a test can add accounts while it runs
// CLIENTS        a JSON array of client registrations: client_id, client_secret, redirect_uris
//                (default: one client "identity" / "identity-secret" for identity on :8000)
//
// The sign-in page asks for an account name only (no password: this is a test provider) and
// consent is given silently, so a browser test goes provider -> identity in one form. ID
// tokens are signed RS256 with a key made at start; an ES256 key is published beside it.
// As oidc-provider does by default, claims asked for by scope (email, profile) are served
// from userinfo, not put into the ID token of the code flow.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const PORT = Number(process.env.PORT ?? 4010);
const ISSUER = process.env.ISSUER ?? `http://localhost:${PORT}`;
const ACCOUNTS_FILE = process.env.ACCOUNTS_FILE ?? "accounts.json";
const CLIENTS = JSON.parse(
  process.env.CLIENTS ??
    JSON.stringify([
      {
        client_id: "identity",
        client_secret: "identity-secret",
        redirect_uris: ["http://127.0.0.1:8000/login/external/upstream/callback"],
      },
    ]),
);

function accounts() {
  try {
    return JSON.parse(readFileSync(ACCOUNTS_FILE, "utf8"));
  } catch (error) {
    if (error.code === "ENOENT") return {};
    throw error;
  }
}

function signingKey(type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: "jwk" }), use: "sig", kid: `${type}-${randomBytes(4).toString("hex")}` };
}

const provider = new Provider(ISSUER, {
  clients: CLIENTS.map((client) => ({
    grant_types: ["authorization_code"],
    response_types: ["code"],
    ...client,
  })),
  jwks: {
    keys: [
      signingKey("rsa", { modulusLength: 2048 }),
      signingKey("ec", { namedCurve: "P-256" }),
    ],
  },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "given_name", "family_name"],
  },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts()[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { email, email_verified = false, given_name = "", family_name = "" } = account;
        const name = `${given_name} ${family_name}`.trim();
        return { sub, email, email_verified, given_name, family_name, name };
      },
    };
  },
  // Consent is given silently: this provider stands in for one the user already trusts.
  async loadExistingGrant(ctx) {
    const { client, session, params } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope(String(params.scope ?? "openid"));
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = "html";
    ctx.body = page("Error", `<p id="error">${escape(out.error)}: ${escape(out.error_description ?? "")}</p>`);
  },
});

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${escape(title)}</title></head>
<body><h1>Upstream provider: ${escape(title)}</h1>${body}</body></html>`;
}

function send(res, status, html) {
  res.writeHead(status, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
  res.end(html);
}

async function form(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

// The sign-in page: GET shows it, POST .../login signs in, POST .../abort cancels.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page("Error", "<p>Unknown interaction.</p>"));
  if (req.method === "GET" && !action) {
    return send(
      res,
      200,
      page(
        "Sign in",
        `<form method="post" action="/interaction/${escape(uid)}/login">
  <label>Account <input name="login" autofocus></label>
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>`,
      ),
    );
  }
  if (req.method === "POST" && action === "login") {
    const login = (await form(req)).get("login") ?? "";
    if (!Object.hasOwn(accounts(), login)) {
      return send(res, 200, page("Sign in", `<p id="error">No account ${escape(login)}.</p>`));
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (req.method === "POST" && action === "abort") {
    const result = { error: "access_denied", error_description: "End-User aborted interaction" };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  return send(res, 405, page("Error", "<p>Method not allowed.</p>"));
}

const oidc = provider.callback();
const server = createServer((req, res) => {
  const match = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/.exec(req.url.split("?")[0]);
  if (!match) return oidc(req, res);
  interaction(req, res, match[1], match[2]).catch((error) => {
    console.error(error);
    if (!res.headersSent) send(res, 400, page("Error", `<p id="error">${escape(error.message)}</p>`));
  });
});
server.listen(PORT, "127.0.0.1", () => {
  console.log(`oidc-provider ${ISSUER} listening on 127.0.0.1:${PORT}`);
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
