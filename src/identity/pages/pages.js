// The pages behind the links identity mails. The token travels in the URL fragment
// (#token=…), which browsers never send to a server or put in a Referer header; it is read
// here, removed from the address bar, and sent to the API in a POST body. Nothing is used up
// by opening a page: a mail scanner that follows links, even one that runs scripts, spends no
// token. The person presses a button (or sets a password) first.

const page = document.body.dataset.page;
const status = document.getElementById("status");
const token = new URLSearchParams(location.hash.slice(1)).get("token");
history.replaceState(null, "", location.pathname);

function show(message, ok) {
  status.textContent = message;
  status.className = ok ? "ok" : "error";
}

async function call(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Requested-With": "identity-pages" },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(body.errors[0].message);
  return Object.values(body.data)[0];
}

const MUTATIONS = {
  "verify-email": `mutation($token: String!) { verifyEmail(input: {token: $token}) {
      __typename ... on VerifyEmailSuccess { user { email } } ... on Error { message } } }`,
  "confirm-email-change": `mutation($token: String!) { confirmEmailChange(input: {token: $token}) {
      __typename ... on ConfirmEmailChangeSuccess { user { email } } ... on Error { message } } }`,
  "revert-change": `mutation($token: String!) { revertSecurityChange(input: {token: $token}) {
      __typename ... on RevertSecurityChangeSuccess { message } ... on Error { message } } }`,
  "reset-password": `mutation($token: String!, $password: String!, $passwordConfirm: String!) {
      resetPassword(input: {token: $token, password: $password, passwordConfirm: $passwordConfirm}) {
        __typename
        ... on ResetPasswordSuccess { message }
        ... on ValidationError { fields { field message } }
        ... on Error { message } } }`,
};

async function run() {
  if (!token) {
    show("This link is incomplete. Open the link from the message again.", false);
    return;
  }
  if (page === "reset-password") {
    const form = document.getElementById("reset");
    form.hidden = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      try {
        const result = await call(MUTATIONS[page], {
          token,
          password: data.get("password"),
          passwordConfirm: data.get("passwordConfirm"),
        });
        if (result.__typename === "ResetPasswordSuccess") {
          form.hidden = true;
          show(result.message, true);
        } else if (result.__typename === "ValidationError") {
          show(result.fields.map((f) => f.message).join(" "), false);
        } else {
          form.hidden = true;
          show(result.message, false);
        }
      } catch (error) {
        show(`Something went wrong: ${error.message}`, false);
      }
    });
    return;
  }
  const form = document.getElementById("confirm");
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.hidden = true;
    try {
      const result = await call(MUTATIONS[page], { token });
      if (result.user) show(`Done: ${result.user.email} is confirmed.`, true);
      else show(result.message, result.__typename.endsWith("Success"));
    } catch (error) {
      show(`Something went wrong: ${error.message}`, false);
    }
  });
}

run();
