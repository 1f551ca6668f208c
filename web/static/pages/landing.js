// "/": there is no public list of communities, so ask for one by name and
// offer the ones this browser has visited.

import { h, setChildren } from "../dom.js";

const slugPattern = /^[a-z0-9][a-z0-9-]{1,38}$/;

export function mount(root, { navigate, setTitle, knownTenants }) {
  setTitle("");
  const input = h("input", {
    id: "community",
    name: "community",
    autocomplete: "off",
    autocapitalize: "none",
    spellcheck: "false",
    placeholder: "demo",
    required: true,
    pattern: "[a-z0-9][a-z0-9\\-]{1,38}",
    "aria-describedby": "community-help",
  });
  const form = h(
    "form",
    { class: "card go", id: "go" },
    h("label", { for: "community" }, "Go to a community"),
    h(
      "div",
      { class: "row" },
      h("span", { class: "prefix", "aria-hidden": "true" }, `${location.host}/t/`),
      input,
      h("button", { type: "submit", class: "primary" }, "Go"),
    ),
    h("p", { id: "community-help", class: "muted small" }, "Lowercase letters, digits and dashes, as in the address you were given."),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const slug = input.value.trim().toLowerCase();
    if (!slugPattern.test(slug)) {
      input.setCustomValidity("Use lowercase letters, digits and dashes (2 to 39).");
      input.reportValidity();
      return;
    }
    navigate(`/t/${slug}/`);
  });
  input.addEventListener("input", () => input.setCustomValidity(""));
  const known = knownTenants();
  setChildren(
    root,
    h(
      "section",
      { class: "hero" },
      h("h1", { tabindex: "-1" }, "Agora"),
      h("p", { class: "lead" }, "Live discussions for your community: new posts and comments appear as they are written, no reload needed."),
    ),
    form,
    known.length
      ? h(
          "section",
          { class: "card" },
          h("h2", null, "Communities you visited"),
          h("ul", { class: "plain" }, known.map((t) => h("li", null, h("a", { href: `/t/${t}/` }, t)))),
        )
      : null,
  );
  input.focus();
}
