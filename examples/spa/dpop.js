// DPoP (RFC 9449) in a browser: a key pair scripts can sign with but nobody can read out,
// and the proofs that show identity (and your APIs) that a request comes from its holder.
//
// The private key is made non-extractable by WebCrypto and kept in IndexedDB, which stores
// the key object itself (not its bytes): it survives reloads, and an XSS payload can use it
// only while it runs in this page, never copy it away. A token that leaves the page without
// the key is worthless: identity refuses it without a fresh proof by this key.

const DATABASE = "identity-dpop";
const STORE = "keys";
const KEY_ID = "dpop";

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

const utf8 = (text) => new TextEncoder().encode(text);

function withStore(mode, work) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(DATABASE, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
      const database = opening.result;
      const transaction = database.transaction(STORE, mode);
      const request = work(transaction.objectStore(STORE));
      transaction.oncomplete = () => {
        database.close();
        resolve(request.result);
      };
      transaction.onerror = () => reject(transaction.error);
    };
  });
}

/** This browser's DPoP key pair (ES256), made on first use and kept in IndexedDB. */
export async function loadKeyPair() {
  const kept = await withStore("readonly", (store) => store.get(KEY_ID));
  if (kept) {
    return kept;
  }
  const made = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" },
    false, // non-extractable: the private key can sign, never be exported
    ["sign", "verify"],
  );
  await withStore("readwrite", (store) => store.put(made, KEY_ID));
  return made;
}

/** Forget the key (at sign-out): the next sign-in binds a new one. */
export async function forgetKeyPair() {
  await withStore("readwrite", (store) => store.delete(KEY_ID));
}

/**
 * A proof for one request: `method` and `url` as the request is sent (the URL without query
 * or fragment), and the access token it carries, if any (its hash goes in as `ath`).
 */
export async function makeProof(keyPair, { method, url, accessToken = null }) {
  // The public half of a pair is always exportable.
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", keyPair.publicKey);
  const header = { typ: "dpop+jwt", alg: "ES256", jwk: { kty, crv, x, y } };
  const claims = {
    htm: method,
    htu: url.split(/[?#]/)[0],
    iat: Math.floor(Date.now() / 1000),
    jti: crypto.randomUUID(),
  };
  if (accessToken !== null) {
    claims.ath = base64url(await crypto.subtle.digest("SHA-256", utf8(accessToken)));
  }
  const input = `${base64url(utf8(JSON.stringify(header)))}.${base64url(utf8(JSON.stringify(claims)))}`;
  // WebCrypto's ECDSA signature is r ‖ s, the form JWS uses for ES256.
  const signature = await crypto.subtle.sign(
    { name: "ECDSA", hash: "SHA-256" },
    keyPair.privateKey,
    utf8(input),
  );
  return `${input}.${base64url(signature)}`;
}
