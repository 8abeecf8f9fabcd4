// Pictures and videos: `POST /uploads?room=<slug>` (multipart, field `file`, CSRF token
// in the `X-CSRF-Token` header; docs/http-api.md). XMLHttpRequest rather than fetch,
// because only it reports upload progress. Files go one after another, so they appear
// in the room in the order they were picked. A successful upload shows nothing more
// here: the message arrives over the socket like any other.
//
// The server decides the type by sniffing the bytes; the client only shows its answer.

import { t } from "./i18n.js";

const tray = document.getElementById("uploads");
const queue = [];
let busy = false;

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** The translated reason for a refused upload (`{"error","message"}` JSON, or none). */
function reason(status, body, name) {
  let code = "";
  try {
    code = JSON.parse(body)?.error ?? "";
  } catch {
    // An HTML error page (e.g. an expired CSRF token) or nothing at all.
  }
  if (status === 413 || code === "too_large") return t("uploadTooLarge", { name });
  if (status === 415 || code === "unsupported_type") return t("uploadUnsupported", { name });
  if (code === "broken_file") return t("uploadBroken", { name });
  if (status === 403) return t("uploadForbidden");
  if (status === 404) return t("notFound");
  if (status === 429) return t("rateLimited");
  return t("uploadFailed", { name });
}

function item(file) {
  const li = document.createElement("li");
  li.className = "upload";
  const name = document.createElement("span");
  name.className = "upload-name";
  name.textContent = file.name || t("picture");
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", t("uploading", { name: file.name }));
  const pct = document.createElement("span");
  pct.className = "upload-pct";
  pct.textContent = "0 %";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "link-button";
  cancel.textContent = t("cancel");
  li.append(name, bar, pct, cancel);
  return { li, bar, pct, cancel };
}

function fail(entry, text) {
  const { li } = entry.ui;
  li.classList.add("failed");
  const note = document.createElement("span");
  note.className = "upload-error";
  note.setAttribute("role", "alert");
  note.textContent = text;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "link-button";
  dismiss.textContent = t("dismiss");
  dismiss.addEventListener("click", () => li.remove());
  li.replaceChildren(note, dismiss);
}

function next() {
  if (busy) return;
  const entry = queue.shift();
  if (!entry) return;
  busy = true;
  const { file, room, ui } = entry;
  const done = () => {
    busy = false;
    next();
  };
  const xhr = new XMLHttpRequest();
  entry.xhr = xhr;
  xhr.open("POST", `/uploads?room=${encodeURIComponent(room)}`);
  xhr.setRequestHeader("X-CSRF-Token", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (ev) => {
    if (!ev.lengthComputable || ev.total === 0) return;
    const value = Math.min(100, Math.round((ev.loaded / ev.total) * 100));
    ui.bar.value = value;
    ui.pct.textContent = `${value} %`;
  });
  xhr.addEventListener("load", () => {
    if (xhr.status === 201 || xhr.status === 200) ui.li.remove();
    else fail(entry, reason(xhr.status, xhr.responseText, file.name));
    done();
  });
  xhr.addEventListener("error", () => {
    fail(entry, t("uploadFailed", { name: file.name }));
    done();
  });
  xhr.addEventListener("abort", () => {
    ui.li.remove();
    done();
  });
  const form = new FormData();
  form.append("file", file, file.name || "file");
  xhr.send(form);
}

/** Sends files to a room, showing each one's progress (or why it was refused). */
export function uploadFiles(files, room) {
  if (!tray || !room) return;
  for (const file of files) {
    const ui = item(file);
    const entry = { file, room, ui, xhr: null };
    ui.cancel.addEventListener("click", () => {
      if (entry.xhr) entry.xhr.abort();
      else {
        const at = queue.indexOf(entry);
        if (at >= 0) queue.splice(at, 1);
        ui.li.remove();
      }
    });
    tray.append(ui.li);
    queue.push(entry);
  }
  next();
}

/** The files a drag carries, if any (text or links being dragged are left alone). */
export function carriesFiles(ev) {
  return Boolean(ev.dataTransfer && [...ev.dataTransfer.types].includes("Files"));
}
