// Confab's app shell: one WebSocket to /ws for every room (protocol v1, see
// docs/protocol.md). User text is only ever set with textContent, never as HTML.

const $ = (sel) => document.querySelector(sel);
const strings = $("#i18n")?.dataset ?? {};
const list = $("#messages");
const composer = $("#composer");
const input = $("#message-input");
const sendButton = composer?.querySelector("button");
const statusLine = $("#connection");

/** room slug -> { lastId, joined } */
const rooms = new Map();
/** client_id -> <li> waiting for its ack */
const pending = new Map();
let current = null;
let socket = null;
let retryMs = 500;

function roomLinks() {
  return Array.from(document.querySelectorAll("#room-list a[data-room]"));
}

function setStatus(text) {
  if (statusLine) statusLine.textContent = text ?? "";
}

function setComposerEnabled(on) {
  if (input) input.disabled = !on;
  if (sendButton) sendButton.disabled = !on;
}

function formatTime(micros) {
  const d = new Date(Math.floor(micros / 1000));
  return d.toLocaleString(document.documentElement.lang || undefined, {
    hour: "2-digit", minute: "2-digit", day: "numeric", month: "short",
  });
}

function messageItem(m) {
  const li = document.createElement("li");
  li.dataset.id = String(m.id ?? "");
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = m.author?.display_name ?? m.author?.username ?? "Confab";
  if (m.author?.username) author.title = "@" + m.author.username;
  const time = document.createElement("time");
  time.className = "time";
  if (m.ts) {
    time.dateTime = new Date(Math.floor(m.ts / 1000)).toISOString();
    time.textContent = formatTime(m.ts);
  }
  const body = document.createElement("p");
  body.className = "body";
  if (m.deleted) {
    li.classList.add("deleted");
    body.textContent = strings.deleted ?? "";
  } else {
    body.textContent = m.body ?? "";
  }
  li.append(author, time, body);
  return li;
}

function scrolledToBottom() {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function showMessage(m) {
  const state = rooms.get(m.room);
  if (state && typeof m.id === "number") state.lastId = Math.max(state.lastId ?? 0, m.id);
  if (m.room !== current) {
    document.querySelector(`#room-list a[data-room="${CSS.escape(m.room)}"]`)?.classList.add("unread");
    return;
  }
  const stick = scrolledToBottom();
  // Our own message coming back: replace the placeholder shown since sending.
  const mine = m.client_id ? pending.get(m.client_id) : null;
  if (mine) {
    mine.replaceWith(messageItem(m));
    pending.delete(m.client_id);
  } else if (!list.querySelector(`li[data-id="${CSS.escape(String(m.id))}"]`)) {
    list.append(messageItem(m));
  }
  if (stick) list.scrollTop = list.scrollHeight;
}

function send(frame) {
  if (socket?.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function join(slug) {
  const state = rooms.get(slug) ?? { lastId: null, joined: false };
  rooms.set(slug, state);
  const frame = { type: "join", room: slug };
  if (state.lastId) frame.since = state.lastId;
  send(frame);
}

function openRoom(slug) {
  const link = roomLinks().find((a) => a.dataset.room === slug);
  if (!link) return;
  current = slug;
  for (const a of roomLinks()) a.classList.toggle("active", a === link);
  link.classList.remove("unread");
  $("#room-title").textContent = link.dataset.name ?? slug;
  $("#room-topic").textContent = link.dataset.topic ?? "";
  list.replaceChildren();
  const state = rooms.get(slug);
  if (state) state.lastId = null; // reload the history for the pane
  setComposerEnabled(socket?.readyState === WebSocket.OPEN && link.dataset.role !== "readonly");
  join(slug);
}

function handle(frame) {
  switch (frame.type) {
    case "joined": {
      const state = rooms.get(frame.room) ?? { lastId: null };
      state.joined = true;
      rooms.set(frame.room, state);
      for (const m of frame.messages ?? []) showMessage({ ...m, room: frame.room });
      break;
    }
    case "message":
    case "edited":
      if (frame.type === "edited") {
        list.querySelector(`li[data-id="${CSS.escape(String(frame.id))}"]`)?.remove();
      }
      showMessage(frame.message ? { ...frame.message, room: frame.room ?? frame.message.room } : frame);
      break;
    case "deleted": {
      const li = list.querySelector(`li[data-id="${CSS.escape(String(frame.id))}"]`);
      if (li) {
        li.classList.add("deleted");
        li.querySelector(".body").textContent = strings.deleted ?? "";
      }
      break;
    }
    case "ack": {
      const li = pending.get(frame.client_id);
      // Stored; it stays in `pending` until its "message" frame replaces it.
      if (li) {
        li.classList.remove("pending");
        li.dataset.id = String(frame.id);
      }
      break;
    }
    case "error":
      setStatus(frame.code === "forbidden" ? strings.forbidden : strings.failed);
      if (frame.ref && pending.has(frame.ref)) {
        pending.get(frame.ref).remove();
        pending.delete(frame.ref);
      }
      break;
    case "history":
      if (frame.room === current) {
        const first = list.firstChild;
        for (const m of frame.messages ?? []) {
          if (!list.querySelector(`li[data-id="${CSS.escape(String(m.id))}"]`)) {
            list.insertBefore(messageItem(m), first);
          }
        }
      }
      break;
    case "notice":
      setStatus(strings.signedInElsewhere);
      break;
    default:
      break;
  }
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  setStatus(strings.connecting);
  socket = new WebSocket(`${scheme}//${window.location.host}/ws`);
  socket.addEventListener("open", () => {
    retryMs = 500;
    setStatus(strings.connected);
    if (current) {
      openRoom(current);
    }
    for (const slug of rooms.keys()) if (slug !== current) join(slug);
  });
  socket.addEventListener("message", (ev) => {
    try {
      handle(JSON.parse(ev.data));
    } catch (e) {
      console.warn("bad frame", e);
    }
  });
  socket.addEventListener("close", (ev) => {
    setComposerEnabled(false);
    // 4001: the session ended (signed out here or elsewhere): back to sign-in.
    if (ev.code === 4001) {
      window.location.assign("/login");
      return;
    }
    setStatus(strings.offline);
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  });
}

function newClientId() {
  return window.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

composer?.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = input.value.trim();
  if (!body || !current) return;
  const clientId = newClientId();
  if (!send({ type: "send", room: current, body, client_id: clientId })) return;
  const li = messageItem({ body, author: null, ts: Date.now() * 1000 });
  li.classList.add("pending");
  pending.set(clientId, li);
  list.append(li);
  list.scrollTop = list.scrollHeight;
  input.value = "";
});

input?.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    composer.requestSubmit();
  }
});

window.addEventListener("hashchange", () => openRoom(decodeURIComponent(window.location.hash.slice(1))));

if (list) {
  const first = decodeURIComponent(window.location.hash.slice(1)) || roomLinks()[0]?.dataset.room;
  if (first) current = first;
  connect();
  if (current) {
    for (const a of roomLinks()) a.classList.toggle("active", a.dataset.room === current);
    const link = roomLinks().find((a) => a.dataset.room === current);
    if (link) {
      $("#room-title").textContent = link.dataset.name ?? current;
      $("#room-topic").textContent = link.dataset.topic ?? "";
    }
  }
}
