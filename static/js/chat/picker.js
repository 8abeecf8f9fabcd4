// "New private chat": a modal <dialog> with a user picker. Search as you type
// (`GET /api/users?q=`), choose 1 to 7 people, then `POST /api/direct`
// (docs/http-api.md), which finds or creates the chat.
//
// Keyboard: the search box is a combobox over a multi-select listbox — ↓/↑ move through
// the people (typing highlights the first match), Enter picks or unpicks the highlighted
// one — or, with nobody highlighted, starts the chat — Backspace in an empty box removes
// the last one picked, Escape closes.
// Names are only ever set as text.

import { t } from "./i18n.js";

/** 8 members at most, me included. */
const MAX_OTHERS = 7;
const SEARCH_DELAY_MS = 150;

const $ = (id) => document.getElementById(id);

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/**
 * Wires the dialog. `me()` is my username; `onOpened(room)` gets the `room` of the
 * answer (`slug`, `name`, `kind`, `members`).
 */
export function setupPicker({ me, onOpened }) {
  const dialog = $("dm-dialog");
  const opener = $("new-dm");
  if (!dialog || !opener || typeof dialog.showModal !== "function") {
    if (opener) opener.hidden = true;
    return;
  }
  const form = $("dm-form");
  const search = $("dm-search");
  const results = $("dm-results");
  const chips = $("dm-chosen");
  const more = $("dm-more");
  const status = $("dm-status");
  const error = $("dm-error");
  const start = $("dm-start");

  /** lower-case username → {username, display_name}, in the order picked. */
  const chosen = new Map();
  let found = [];
  let next = null;
  let active = -1;
  let timer = null;
  let inFlight = null;
  let busy = false;
  let opened = false;

  const key = (u) => u.username.toLowerCase();

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function setActive(index) {
    const options = results.querySelectorAll("[role=option]");
    active = options.length ? Math.max(-1, Math.min(index, options.length - 1)) : -1;
    options.forEach((o, i) => o.classList.toggle("active", i === active));
    if (active >= 0) {
      search.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    } else {
      search.removeAttribute("aria-activedescendant");
    }
  }

  function renderChips() {
    chips.replaceChildren();
    for (const user of chosen.values()) {
      const li = document.createElement("li");
      li.className = "chip";
      const name = document.createElement("span");
      name.textContent = user.display_name || user.username;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "chip-remove";
      remove.setAttribute("aria-label", t("dmRemove", { name: user.display_name || user.username }));
      remove.textContent = "✕";
      remove.addEventListener("click", () => {
        toggle(user);
        search.focus();
      });
      li.append(name, remove);
      chips.append(li);
    }
    chips.hidden = chosen.size === 0;
    start.disabled = chosen.size === 0 || busy;
  }

  function renderResults() {
    const keep = active;
    results.replaceChildren();
    found.forEach((user, i) => {
      const li = document.createElement("li");
      li.id = `dm-option-${i}`;
      li.setAttribute("role", "option");
      const selected = chosen.has(key(user));
      li.setAttribute("aria-selected", String(selected));
      li.dataset.username = user.username;
      const name = document.createElement("span");
      name.className = "option-name";
      name.textContent = user.display_name || user.username;
      const handle = document.createElement("span");
      handle.className = "option-handle";
      handle.textContent = `@${user.username}`;
      const check = document.createElement("span");
      check.className = "option-check";
      check.setAttribute("aria-hidden", "true");
      check.textContent = selected ? "✓" : "";
      li.append(check, name, handle);
      // Keep the focus in the search box when an option is clicked.
      li.addEventListener("mousedown", (ev) => ev.preventDefault());
      li.addEventListener("click", () => {
        setActive(i);
        toggle(user);
      });
      results.append(li);
    });
    more.hidden = !next;
    setActive(Math.min(keep, found.length - 1));
  }

  function toggle(user) {
    showError("");
    if (chosen.has(key(user))) {
      chosen.delete(key(user));
      status.textContent = "";
    } else if (chosen.size >= MAX_OTHERS) {
      status.textContent = t("dmMax");
      return;
    } else {
      chosen.set(key(user), user);
      active = -1;
      // Picked: the box empties for the next name.
      if (search.value) {
        search.value = "";
        searchSoon();
      }
    }
    renderChips();
    renderResults();
  }

  async function load(query, after) {
    inFlight?.abort();
    const controller = new AbortController();
    inFlight = controller;
    const params = new URLSearchParams({ q: query });
    if (after) params.set("after", after);
    try {
      const res = await fetch(`/api/users?${params}`, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      if (!res.ok) throw new Error(String(res.status));
      const data = await res.json();
      if (inFlight !== controller) return;
      const mine = me().toLowerCase();
      const users = (data.users ?? []).filter((u) => u.username.toLowerCase() !== mine);
      found = after ? [...found, ...users] : users;
      next = data.next ?? null;
      // Typing a name highlights the first match, so Enter picks it.
      if (!after) active = query && found.length ? 0 : -1;
      status.textContent = found.length ? "" : t("dmNone");
      renderResults();
    } catch (e) {
      if (e.name !== "AbortError") showError(t("failed"));
    }
  }

  function searchSoon() {
    clearTimeout(timer);
    timer = setTimeout(() => load(search.value.trim(), null), SEARCH_DELAY_MS);
  }

  async function submit() {
    if (busy || chosen.size === 0) return;
    busy = true;
    start.disabled = true;
    showError("");
    try {
      const res = await fetch("/api/direct", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": csrfToken(),
        },
        body: JSON.stringify({ usernames: [...chosen.values()].map((u) => u.username) }),
      });
      let data = null;
      try {
        data = await res.json();
      } catch {
        // not JSON (an HTML error page)
      }
      if (res.ok && data?.room?.slug) {
        opened = true;
        dialog.close();
        onOpened(data.room);
      } else if (res.status === 403 && data?.message === "blocked") {
        showError(t("dmBlocked"));
      } else {
        showError(t("failed"));
      }
    } catch {
      showError(t("failed"));
    } finally {
      busy = false;
      start.disabled = chosen.size === 0;
    }
  }

  opener.addEventListener("click", () => {
    chosen.clear();
    found = [];
    next = null;
    active = -1;
    search.value = "";
    status.textContent = "";
    showError("");
    renderChips();
    renderResults();
    dialog.showModal();
    search.focus();
    load("", null);
  });
  search.addEventListener("input", searchSoon);
  search.addEventListener("keydown", (ev) => {
    if (ev.isComposing) return;
    if (ev.key === "ArrowDown") {
      ev.preventDefault();
      setActive(active + 1);
    } else if (ev.key === "ArrowUp") {
      ev.preventDefault();
      setActive(active - 1);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      // Nobody highlighted (just after a pick) and someone picked: start the chat.
      if (active >= 0 && found[active]) toggle(found[active]);
      else if (chosen.size) submit();
    } else if (ev.key === "Backspace" && search.value === "" && chosen.size) {
      toggle([...chosen.values()].at(-1));
    }
  });
  more.addEventListener("click", () => load(search.value.trim(), next));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit();
  });
  $("dm-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    inFlight?.abort();
    clearTimeout(timer);
    // The opened chat takes the focus; otherwise it goes back to the button.
    if (!opened) opener.focus();
    opened = false;
  });
  // A click on the backdrop (outside the form) closes it too.
  dialog.addEventListener("click", (ev) => {
    if (ev.target === dialog) dialog.close();
  });
}
