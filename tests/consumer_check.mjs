// Test harness for examples/consumers/node/verify.mjs (tests/test_consumers.py).
//
// node consumer_check.mjs '<createVerifier options as JSON>'
// then one JSON line per token on standard input, {"token": "...", "dpop": {proof, method,
// url} or absent}; one JSON line back for
// each: {"ok": true, "userId", "sessionId", "roles", "aal", "amr"} or {"ok": false, "error",
// "message"}.
import readline from "node:readline";

import { createVerifier } from "./verify.mjs";

const verify = createVerifier(JSON.parse(process.argv[2]));
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { token, dpop } = JSON.parse(line);
  let answer;
  try {
    const access = await verify(token, dpop ?? null);
    answer = {
      ok: true,
      userId: access.userId,
      sessionId: access.sessionId,
      roles: [...access.roles].sort(),
      aal: access.aal,
      amr: [...access.amr].sort(),
    };
  } catch (error) {
    answer = { ok: false, error: error.constructor.name, message: error.message };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
