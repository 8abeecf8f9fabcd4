// The message pane: one <li class="msg"> per message, kept in id order (messages still
// waiting for their ack last), with day separators and author grouping recomputed by
// `relayout`. User text only ever becomes text nodes (textContent, linkify); nothing a
// user typed is ever parsed as HTML.

import { t } from "./i18n.js";
import { clockLabel, dateOf, dayKey, dayLabel, fullLabel, linkify, timeLabel } from "./format.js";

/** Consecutive messages by one author closer than this share one header. */
const GROUP_WINDOW_MS = 5 * 60 * 1000;
const HUES = 8;

const list = document.getElementById("messages");
/** My username in lower case, to mark mentions of me. */
let me = "";

export function setMe(username) {
  me = (username ?? "").toLowerCase();
}

function hueOf(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % HUES;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words.at(-1)].map((w) => [...w][0]) : [...(words[0] ?? "?")].slice(0, 2);
  return letters.join("").toLocaleUpperCase();
}

function timeElement(date, className) {
  const time = document.createElement("time");
  time.className = className;
  time.dateTime = date.toISOString();
  time.dataset.ms = String(date.getTime());
  time.title = fullLabel(date);
  return time;
}

/** An attachment message's body is JSON naming the upload (docs/protocol.md); the
 *  media URL is built from its numeric id only, never from other text. */
export function attachment(m) {
  if (m.kind !== "attachment") return null;
  try {
    const a = JSON.parse(m.body ?? "");
    return Number.isSafeInteger(a?.attachment) && (a.kind === "image" || a.kind === "video") ? a : null;
  } catch {
    return null;
  }
}

/** Fills the body of a message element: the text, the picture or video, or the
 *  "deleted" note. */
function fillBody(body, m) {
  const media = attachment(m);
  if (m.deleted) {
    body.textContent = t("deleted");
  } else if (media) {
    const url = `/media/${String(media.attachment)}`;
    if (media.kind === "image") {
      // The thumbnail inline; a click opens the full picture.
      const link = document.createElement("a");
      link.className = "attachment-link";
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      const img = document.createElement("img");
      img.className = "attachment";
      img.src = media.thumb ? `${url}/thumb` : url;
      img.alt = t("picture");
      img.decoding = "async";
      // The full size gives the aspect ratio, so the layout does not jump on load.
      if (Number.isSafeInteger(media.width) && Number.isSafeInteger(media.height)) {
        img.width = media.width;
        img.height = media.height;
      }
      link.append(img);
      body.replaceChildren(link);
    } else {
      const video = document.createElement("video");
      video.className = "attachment";
      video.src = url;
      video.controls = true;
      video.preload = "metadata";
      video.playsInline = true;
      video.setAttribute("aria-label", t("video"));
      body.replaceChildren(video);
    }
  } else {
    body.replaceChildren(linkify(m.body ?? "", me));
  }
}

function actionButton(action, label) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "action";
  button.dataset.action = action;
  button.textContent = label;
  return button;
}

/**
 * A message element. `m` is a protocol message (plus, for one not yet acknowledged,
 * `pending: true` and no id).
 */
export function renderMessage(m) {
  const li = document.createElement("li");
  li.className = "msg";
  if (m.id != null) li.dataset.id = String(m.id);
  if (m.client_id) li.dataset.clientId = m.client_id;
  const date = dateOf(m.ts ?? Date.now() * 1000);
  li.dataset.ms = String(date.getTime());
  li.dataset.day = dayKey(date);
  const username = m.author?.username ?? "";
  li.dataset.author = username;
  if (!m.author) li.classList.add("system");
  if (m.deleted) li.classList.add("deleted");
  if (m.pending) li.classList.add("pending");
  if (m.mine) li.classList.add("mine");
  if (m.mentionsMe && !m.deleted) li.classList.add("mentions-me");
  if (m.kind && m.kind !== "text") li.classList.add(`kind-${m.kind}`);

  const name = m.author?.display_name || username || t("system");
  const avatar = document.createElement("span");
  avatar.className = `avatar hue-${hueOf(username || name)}`;
  avatar.setAttribute("aria-hidden", "true");
  avatar.textContent = initials(name);
  const gutter = timeElement(date, "gutter-time");
  gutter.setAttribute("aria-hidden", "true");
  gutter.textContent = clockLabel(date);

  const main = document.createElement("div");
  main.className = "msg-main";
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = name;
  if (username) author.title = `@${username}`;
  const time = timeElement(date, "time");
  time.textContent = timeLabel(date);
  meta.append(author, " ", time);

  const body = document.createElement("div");
  body.className = "body";
  fillBody(body, m);
  main.append(meta, body);

  const marks = document.createElement("div");
  marks.className = "marks";
  if (m.edited_ts && !m.deleted) {
    const edited = document.createElement("span");
    edited.className = "mark edited";
    edited.textContent = `(${t("edited")})`;
    edited.title = fullLabel(dateOf(m.edited_ts));
    marks.append(edited);
  }
  if (m.pending) {
    const sending = document.createElement("span");
    sending.className = "mark sending";
    sending.textContent = t("sending");
    marks.append(sending);
  }
  if (marks.childNodes.length) main.append(marks);
  li.append(avatar, gutter, main);
  if ((m.canEdit || m.canDelete) && m.id != null) {
    const actions = document.createElement("div");
    actions.className = "actions";
    if (m.canEdit) actions.append(actionButton("edit", t("edit")));
    if (m.canDelete) actions.append(actionButton("delete", t("delete")));
    li.append(actions);
  }
  return li;
}

/** Swaps the body for an edit box; `onSave(text)` or `onCancel()` end it. */
export function startEditing(li, text, onSave, onCancel) {
  const main = li.querySelector(".msg-main");
  const form = document.createElement("form");
  form.className = "edit-form";
  const box = document.createElement("textarea");
  box.value = text;
  box.rows = Math.min(8, text.split("\n").length + 1);
  box.setAttribute("aria-label", t("editLabel"));
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = t("save");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = t("cancel");
  form.append(box, save, cancel);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    onSave(box.value.trim());
  });
  cancel.addEventListener("click", onCancel);
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.preventDefault();
      ev.stopPropagation();
      onCancel();
    } else if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  li.classList.add("editing");
  main.querySelector(".body").hidden = true;
  main.append(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

/** Asks, in place, whether to delete; `onYes()` or `onNo()`. */
export function confirmDelete(li, onYes, onNo) {
  const actions = li.querySelector(".actions");
  const question = document.createElement("span");
  question.textContent = t("deleteConfirm");
  const yes = actionButton("confirm-delete", t("delete"));
  yes.classList.add("danger");
  const no = actionButton("cancel-delete", t("cancel"));
  yes.addEventListener("click", onYes);
  no.addEventListener("click", onNo);
  li.classList.add("confirming");
  actions.replaceChildren(question, yes, no);
  no.focus();
}

/** Marks a pending message as failed, with "try again" and "discard" buttons. */
export function markFailed(li, reason, onRetry, onDiscard) {
  li.classList.remove("pending");
  li.classList.add("failed");
  let marks = li.querySelector(".marks");
  if (!marks) {
    marks = document.createElement("div");
    marks.className = "marks";
    li.querySelector(".msg-main").append(marks);
  }
  const note = document.createElement("span");
  note.className = "mark error";
  note.setAttribute("role", "alert");
  note.textContent = `${t("notSent")} ${reason}`;
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "link-button";
  retry.textContent = t("retry");
  retry.addEventListener("click", onRetry);
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "link-button";
  discard.textContent = t("discard");
  discard.addEventListener("click", onDiscard);
  marks.replaceChildren(note, " ", retry, " ", discard);
}

/** Back to "sending" after a retry. */
export function markSending(li) {
  li.classList.remove("failed");
  li.classList.add("pending");
  const marks = li.querySelector(".marks");
  const sending = document.createElement("span");
  sending.className = "mark sending";
  sending.textContent = t("sending");
  marks?.replaceChildren(sending);
}

export function findById(id) {
  return list.querySelector(`li.msg[data-id="${CSS.escape(String(id))}"]`);
}

export function findByClientId(clientId) {
  return list.querySelector(`li.msg[data-client-id="${CSS.escape(clientId)}"]`);
}

/** Puts `li` in id order; elements without an id (still pending) stay last. */
export function insertSorted(li) {
  const id = Number(li.dataset.id);
  let before = null;
  if (li.dataset.id !== undefined) {
    for (let el = list.lastElementChild; el; el = el.previousElementSibling) {
      if (!el.classList.contains("msg")) continue;
      if (el.dataset.id === undefined || Number(el.dataset.id) > id) {
        before = el;
        continue;
      }
      break;
    }
  }
  list.insertBefore(li, before);
}

function separator(li) {
  const sep = document.createElement("li");
  sep.className = "day-sep";
  sep.dataset.day = li.dataset.day;
  const date = new Date(Number(li.dataset.ms));
  const time = document.createElement("time");
  time.dateTime = li.dataset.day;
  time.dataset.day = li.dataset.day;
  time.dataset.ms = li.dataset.ms;
  time.textContent = dayLabel(date);
  sep.append(time);
  return sep;
}

function isDivider(el) {
  return Boolean(el?.classList.contains("new-divider"));
}

function continues(prev, li) {
  return Boolean(
    prev &&
      li.previousElementSibling === prev &&
      li.dataset.author &&
      prev.dataset.author === li.dataset.author &&
      prev.dataset.day === li.dataset.day &&
      Number(li.dataset.ms) - Number(prev.dataset.ms) < GROUP_WINDOW_MS &&
      !prev.classList.contains("system"),
  );
}

/** Day separators before the first message of each day; "continued" for grouped ones. */
export function relayout() {
  let prev = null;
  for (let el = list.firstElementChild; el; ) {
    const next = el.nextElementSibling;
    if (el.classList.contains("day-sep")) {
      // A "new messages" divider may sit between a day separator and its message.
      const after = isDivider(next) ? next.nextElementSibling : next;
      const owner = after?.classList.contains("msg") ? after : null;
      if (!owner || owner.dataset.day !== el.dataset.day || prev?.dataset.day === el.dataset.day) {
        el.remove();
      }
    } else if (el.classList.contains("msg")) {
      if (prev?.dataset.day !== el.dataset.day) {
        const start = isDivider(el.previousElementSibling) ? el.previousElementSibling : el;
        const before = start.previousElementSibling;
        if (!(before?.classList.contains("day-sep") && before.dataset.day === el.dataset.day)) {
          list.insertBefore(separator(el), start);
        }
      }
      el.classList.toggle("continued", continues(prev, el));
      prev = el;
    }
    el = next;
  }
}

/** Refreshes "5 minutes ago" and "Today" labels (called on a timer). */
export function refreshTimes() {
  const now = new Date();
  for (const time of list.querySelectorAll("time.time")) {
    time.textContent = timeLabel(new Date(Number(time.dataset.ms)), now);
  }
  for (const time of list.querySelectorAll(".day-sep time")) {
    time.textContent = dayLabel(new Date(Number(time.dataset.ms)), now);
  }
}

export function clear() {
  list.replaceChildren();
}

/** Puts the "new messages" line above the first message newer than `afterId` not written
 *  by me (`null`: no line). */
export function placeDivider(afterId) {
  const old = list.querySelector("li.new-divider");
  let target = null;
  if (afterId != null) {
    for (const li of list.querySelectorAll("li.msg[data-id]")) {
      if (Number(li.dataset.id) > afterId && !li.classList.contains("mine")) {
        target = li;
        break;
      }
    }
  }
  if (!target) {
    old?.remove();
    return;
  }
  if (old && old.nextElementSibling === target) return;
  const divider = old ?? document.createElement("li");
  if (!old) {
    divider.className = "new-divider";
    divider.setAttribute("role", "separator");
    const label = document.createElement("span");
    label.textContent = t("newMessages");
    divider.append(label);
  }
  list.insertBefore(divider, target);
  relayout();
}

export function messageCount() {
  return list.querySelectorAll("li.msg").length;
}
