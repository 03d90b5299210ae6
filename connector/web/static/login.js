// Login page: trade a login and password for a session cookie, then go to the console.
"use strict";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

async function signIn(login, password) {
  showError("");
  submit.disabled = true;
  try {
    const res = await fetch("/api/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ login, password, token_name: "console" }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      showError((body.error && body.error.message) || `Sign-in failed (HTTP ${res.status})`);
      return;
    }
    const next = new URLSearchParams(location.search).get("next");
    location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
  } catch (err) {
    showError("The connector cannot be reached. Is it running?");
  } finally {
    submit.disabled = false;
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const login = document.getElementById("login").value.trim();
  const password = document.getElementById("password").value;
  if (!login || !password) {
    showError("Enter your login and password.");
    return;
  }
  signIn(login, password);
});

async function showDemoLogins() {
  try {
    const res = await fetch("/api/v1/console");
    const info = await res.json();
    if (!info.demo || !info.demo_logins || !info.demo_logins.length) return;
    const rows = document.getElementById("demo-rows");
    for (const d of info.demo_logins) {
      const tr = document.createElement("tr");
      tr.dataset.login = d.login;
      for (const text of [d.login, d.password, d.description || d.role]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => {
        document.getElementById("login").value = d.login;
        document.getElementById("password").value = d.password;
        signIn(d.login, d.password);
      });
      rows.appendChild(tr);
    }
    document.getElementById("demo-logins").hidden = false;
  } catch (err) {
    /* not a demo, or offline: the form still works */
  }
}

showDemoLogins();
