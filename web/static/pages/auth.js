// Log in and register. The token goes to localStorage under the tenant,
// so one browser can be signed in to several communities.

import { h, setChildren } from "../dom.js";
import { fieldMessage, formError, showError } from "../components.js";

export function mount(root, ctx, [mode]) {
  const register = mode === "register";
  const next = new URLSearchParams(location.search).get("next") || "";
  ctx.setTitle(register ? "Register" : "Log in");
  ctx.setCrumbs([[register ? "Register" : "Log in", ctx.url(`/${mode}`)]]);
  if (ctx.me) {
    setChildren(
      root,
      h("h1", { tabindex: "-1" }, "You are signed in"),
      h("p", null, `You are signed in as ${ctx.me.username}. `, h("a", { href: ctx.url("/") }, "Go to the boards.")),
    );
    return;
  }
  const err = formError();
  const username = h("input", {
    id: "username",
    name: "username",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
    minlength: "3",
    maxlength: "32",
    pattern: "[A-Za-z0-9_]{3,32}",
    "aria-describedby": register ? "username-help" : null,
  });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: register ? "new-password" : "current-password",
    required: true,
    minlength: register ? "8" : null,
    maxlength: "128",
    "aria-describedby": register ? "password-help" : null,
  });
  const email = register ? h("input", { id: "email", name: "email", type: "email", autocomplete: "email" }) : null;
  const fields = { username: fieldMessage(username), password: fieldMessage(password) };
  if (email) fields.email = fieldMessage(email);
  const submit = h("button", { type: "submit", class: "primary", id: "auth-submit" }, register ? "Create account" : "Log in");
  const other = register ? "login" : "register";
  const form = h(
    "form",
    { class: "card stack narrow", id: "auth-form" },
    h("h1", { tabindex: "-1" }, register ? `Join ${ctx.tenant}` : `Log in to ${ctx.tenant}`),
    h("label", { for: "username" }, "Username"),
    username,
    fields.username.el,
    register ? h("p", { class: "muted small", id: "username-help" }, "3 to 32 letters, digits or underscores.") : null,
    h("label", { for: "password" }, "Password"),
    password,
    fields.password.el,
    register ? h("p", { class: "muted small", id: "password-help" }, "At least 8 characters.") : null,
    register ? [h("label", { for: "email" }, "Email (optional)"), email, fields.email.el] : null,
    err.el,
    h("div", { class: "actions" }, submit),
    h(
      "p",
      { class: "muted small" },
      register ? "Already have an account? " : "New here? ",
      h("a", { href: ctx.url(`/${other}${next ? `?next=${encodeURIComponent(next)}` : ""}`) }, register ? "Log in" : "Create an account"),
    ),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    err.clear();
    submit.disabled = true;
    const body = { username: username.value.trim(), password: password.value };
    if (register && email.value.trim()) body.email = email.value.trim();
    try {
      const res = await ctx.api.post(register ? "/auth/register" : "/auth/login", body);
      await ctx.signIn(res.token, res.user, next);
      ctx.toast(register ? `Welcome, ${res.user.username}!` : `Signed in as ${res.user.username}.`);
    } catch (e2) {
      if (e2.status === 401) err.show("Wrong username or password.");
      else showError(e2, fields, err);
      submit.disabled = false;
      password.select();
    }
  });
  setChildren(root, form);
  username.focus();
}
