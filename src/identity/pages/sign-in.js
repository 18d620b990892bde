// The passkey button of the hosted sign-in and second-factor pages. Without this script, or in
// a browser without WebAuthn's JSON helpers, the button stays hidden and the password and code
// forms work as they are. With it: the sign-in page asks identity for a challenge (the same
// form fields, with its CSRF value, as step=passkey_options), the second-factor page carries
// its own options; the browser's answer goes into the form, which is then sent as any other.

const section = document.getElementById("passkey");
const supported =
  window.PublicKeyCredential &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function" &&
  typeof PublicKeyCredential.prototype.toJSON === "function";

function show(status, message) {
  status.textContent = message;
  status.hidden = !message;
}

async function signInOptions(form) {
  const fields = new URLSearchParams({
    request: form.elements.request.value,
    csrf: form.elements.csrf.value,
    step: "passkey_options",
  });
  const response = await fetch("/oauth2/authorize", {
    method: "POST",
    body: fields,
    credentials: "same-origin",
  });
  const kind = response.headers.get("content-type") || "";
  const body = kind.startsWith("application/json") ? await response.json() : {};
  if (!response.ok) {
    throw new Error(body.error || "Passkeys cannot be used right now. Sign in with your password.");
  }
  form.elements.challenge_token.value = body.challenge_token;
  return body.options;
}

if (section && supported) {
  const form = section.querySelector("form");
  const status = document.getElementById("passkey-status");
  const button = form.querySelector("button");
  section.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show(status, "");
    button.disabled = true;
    try {
      const given = form.dataset.options;
      const options = given ? JSON.parse(given) : await signInOptions(form);
      const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
      const credential = await navigator.credentials.get({ publicKey });
      const answer = JSON.stringify(credential.toJSON());
      (form.elements.credential || form.elements.passkey).value = answer;
      form.submit();
    } catch (error) {
      button.disabled = false;
      const cancelled = error.name === "NotAllowedError" || error.name === "AbortError";
      show(
        status,
        cancelled ? "No passkey was used. Try again, or use the form above." : error.message,
      );
    }
  });
}
