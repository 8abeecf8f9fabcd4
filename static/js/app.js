// Confab's chat client: one WebSocket to /ws for every room (protocol v1, see
// docs/protocol.md). Plain ES modules, no build step; the CSP allows no inline script.
//
// - Every room in the sidebar is followed (`join … since` the newest id the page knew),
//   so unread counts stay live; the open room's history is fetched when first shown,
//   and older pages as the user scrolls up (`history … before`).
// - A sent message is shown at once as pending, becomes a normal message on its `ack`,
//   and is sent again with the same client_id after a reconnect (the server stores it
//   once, whatever happens).
// - After a reconnect each room catches up with `join … since` its last id.
// - Read state: unread and mention counts come with the page (and `/api/rooms`), grow as
//   messages arrive, and shrink as the user reads (`read` frames, also from other tabs).
// - A `membership` frame for a room the sidebar does not know (a new private chat) makes
//   the client fetch `/api/rooms` and follow the new room.
// - Presence: `hello` and `presence` frames say who is online or away (a three-state dot
//   on private chats); this tab says `away` after a few minutes hidden or idle, and
//   `online` when the user is back (chat/idle.js).
// - User text is only ever set with textContent or as text nodes, never as HTML.

import { Connection } from "./chat/connection.js";
import { mentionsIn } from "./chat/format.js";
import { t } from "./chat/i18n.js";
import { watchActivity } from "./chat/idle.js";
import { setupPicker } from "./chat/picker.js";
import { carriesFiles, uploadFiles } from "./chat/uploads.js";
import * as view from "./chat/view.js";

const $ = (id) => document.getElementById(id);

const chat = $("chat");
const scroller = $("scroller");
const input = $("message-input");
const composer = $("composer");
const sendButton = $("send-button");
const sidebar = $("sidebar");
const toggle = $("sidebar-toggle");
const backdrop = $("backdrop");
const narrow = window.matchMedia("(max-width: 48rem)");

const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 5000;
const BOTTOM_SLACK_PX = 48;

const me = { username: chat?.dataset.me ?? "", name: chat?.dataset.meName ?? "" };

/**
 * slug → { slug, name, topic, role, kind, archived, link, others, lastId, unread,
 *          mentions, lastRead, readSent, readTimer, dividerAfter,
 *          messages: Map<id, message>, oldestId, loaded, older, loadingOlder,
 *          historyPending, joinKind, typing: Map<username, {name, until}> }
 */
const rooms = new Map();
/** Who is online or away (lower-case username → "online" | "away"), from `hello` and
 *  `presence` frames; anyone else is offline. */
const presence = new Map();
/** This tab's own state ("online" | "away"), told to the server as it changes. */
let activity = { state: "online" };
/** client_id → { clientId, room, body, ts, state: "sending" | "failed" }, in send order. */
const pending = new Map();
let current = null;
let conn = null;
let lastTypingSent = 0;
let countdownTimer = null;
let refreshTimer = null;
/** Whether the view follows the newest message (so a picture loading keeps it there). */
let pinned = true;
let composerHadFocus = false;

// --- rooms and the sidebar ---------------------------------------------------------

function parseOthers(text) {
  try {
    const list = JSON.parse(text || "[]");
    return Array.isArray(list) ? list.filter((u) => typeof u?.username === "string") : [];
  } catch {
    return [];
  }
}

/** What the client keeps about a room, from its sidebar link. */
function roomState(link) {
  const latest = link.dataset.latest ? Number(link.dataset.latest) : null;
  const lastRead = link.dataset.lastRead ? Number(link.dataset.lastRead) : null;
  const kind = link.dataset.kind ?? "public";
  const others = kind === "direct" ? parseOthers(link.dataset.others) : [];
  return {
    slug: link.dataset.room,
    name: kind === "direct" && others.length ? othersLabel(others) : link.dataset.name || link.dataset.room,
    topic: link.dataset.topic ?? "",
    role: link.dataset.role ?? "member",
    kind,
    archived: link.dataset.archived === "true",
    link,
    others,
    lastId: latest,
    unread: Number(link.dataset.unread || 0),
    mentions: Number(link.dataset.mentions || 0),
    lastRead,
    readSent: lastRead,
    readTimer: null,
    dividerAfter: null,
    messages: new Map(),
    oldestId: null,
    loaded: false,
    older: false,
    loadingOlder: false,
    historyPending: null,
    joinKind: null,
    typing: new Map(),
  };
}

function loadRooms() {
  for (const link of document.querySelectorAll("#sidebar a[data-room]")) {
    rooms.set(link.dataset.room, roomState(link));
  }
}

/** A private chat is named after the other people in it. */
function othersLabel(others) {
  return others.map((u) => u.display_name || u.username).join(", ");
}

function badge(className, label, prefix) {
  const span = document.createElement("span");
  span.className = className;
  span.hidden = true;
  if (prefix) {
    const mark = document.createElement("span");
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = prefix;
    span.append(mark);
  }
  const count = document.createElement("span");
  count.className = "count";
  const sr = document.createElement("span");
  sr.className = "visually-hidden";
  sr.textContent = ` ${label}`;
  span.append(count, sr);
  return span;
}

/** A sidebar entry for a room the page did not list (as templates/app.html makes them). */
function addRoomLink(r) {
  const direct = r.kind === "direct";
  const others = direct ? (r.members ?? []).filter((u) => u.username.toLowerCase() !== me.username.toLowerCase()) : [];
  const link = document.createElement("a");
  link.href = `#${encodeURIComponent(r.slug)}`;
  link.className = "room-link";
  link.dataset.room = r.slug;
  link.dataset.name = r.name ?? r.slug;
  link.dataset.topic = r.topic ?? "";
  link.dataset.role = r.role ?? "member";
  link.dataset.kind = r.kind ?? "public";
  link.dataset.unread = String(r.unread ?? 0);
  link.dataset.mentions = String(r.mentions ?? 0);
  if (r.last_read != null) link.dataset.lastRead = String(r.last_read);
  if (r.latest != null) link.dataset.latest = String(r.latest);
  if (r.archived) {
    link.dataset.archived = "true";
    link.classList.add("archived");
  }
  if (direct) {
    link.dataset.others = JSON.stringify(others);
    const dot = document.createElement("span");
    dot.className = "presence";
    dot.dataset.status = "offline";
    const sr = document.createElement("span");
    sr.className = "visually-hidden";
    sr.textContent = presenceLabel("offline");
    dot.append(sr);
    link.append(dot);
  } else {
    const icon = document.createElement("span");
    icon.className = "room-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = r.kind === "private" ? "🔒" : "#";
    link.append(icon);
  }
  const name = document.createElement("span");
  name.className = "room-name";
  name.textContent = direct && others.length ? othersLabel(others) : r.name ?? r.slug;
  link.append(
    name,
    badge("mention-count", t("mentionsLabel"), "@"),
    badge("unread-count", t("unreadLabel")),
  );
  const li = document.createElement("li");
  li.append(link);
  $(direct ? "dm-list" : "room-list").append(li);
  return link;
}

/** Follows a room the sidebar did not list yet; returns its state. */
function adoptRoom(r) {
  const link = addRoomLink(r);
  const room = roomState(link);
  // Catch up from the start of an empty room, so that a message posted between the
  // server's answer and the join is counted as unread like any other.
  room.lastId ??= 0;
  rooms.set(room.slug, room);
  if (conn?.online) join(room);
  updatePresence();
  return room;
}

/**
 * `/api/rooms` → the sidebar: new rooms are added and followed, rooms I left are
 * removed, roles and names brought up to date. Counts are taken from the server only
 * for rooms where it has seen exactly what this page has (otherwise a message on its
 * way would be counted twice).
 */
async function refreshRooms() {
  let data;
  try {
    const res = await fetch("/api/rooms", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!res.ok) return;
    data = await res.json();
  } catch {
    return;
  }
  const listed = new Set();
  for (const r of data.rooms ?? []) {
    listed.add(r.slug);
    const room = rooms.get(r.slug);
    if (!room) {
      adoptRoom(r);
      continue;
    }
    room.role = r.role ?? room.role;
    room.archived = Boolean(r.archived);
    room.link.classList.toggle("archived", room.archived);
    if ((r.latest ?? null) === room.lastId && room.slug !== current) {
      room.unread = r.unread ?? room.unread;
      room.mentions = r.mentions ?? room.mentions;
      if (r.last_read != null) room.lastRead = Math.max(room.lastRead ?? 0, r.last_read);
    }
  }
  for (const [slug, room] of rooms) {
    if (listed.has(slug)) continue;
    room.link.closest("li")?.remove();
    rooms.delete(slug);
    if (slug === current) {
      current = null;
      const first = rooms.keys().next().value;
      if (first) window.location.hash = `#${first}`;
    }
  }
  updateBadges();
  updateComposer();
}

function refreshRoomsSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshRooms, 200);
}

function currentRoom() {
  return current ? rooms.get(current) : null;
}

function showCount(el, n) {
  if (!el) return;
  const count = el.querySelector(".count");
  if (count) count.textContent = n > 99 ? "99+" : String(n);
  el.hidden = n === 0;
}

function updateBadges() {
  let total = 0;
  for (const room of rooms.values()) {
    if (room.mentions > room.unread) room.mentions = room.unread;
    showCount(room.link.querySelector(".unread-count"), room.unread);
    showCount(room.link.querySelector(".mention-count"), room.mentions);
    room.link.classList.toggle("unread", room.unread > 0);
    room.link.classList.toggle("mentioned", room.mentions > 0);
    if (room.slug !== current) total += room.unread;
  }
  const totalBadge = $("total-unread");
  if (totalBadge) {
    totalBadge.textContent = total > 99 ? "99+" : String(total);
    totalBadge.hidden = total === 0;
  }
  const room = currentRoom();
  const all = total + (room?.unread ?? 0);
  document.title = `${all ? `(${all > 99 ? "99+" : all}) ` : ""}${room ? `${room.name} · ` : ""}Confab`;
}

// --- presence --------------------------------------------------------------------------

/** The words for a status, for screen readers and the one-person header line. */
function presenceLabel(status) {
  if (status === "online") return t("online");
  if (status === "away") return t("away");
  return t("offlineStatus");
}

function presenceDot(status) {
  const dot = document.createElement("span");
  dot.className = "presence";
  dot.dataset.status = status;
  const sr = document.createElement("span");
  sr.className = "visually-hidden";
  sr.textContent = presenceLabel(status);
  dot.append(sr);
  return dot;
}

function setDot(dot, status) {
  if (!dot || dot.dataset.status === status) return;
  dot.dataset.status = status;
  const sr = dot.querySelector(".visually-hidden");
  if (sr) sr.textContent = presenceLabel(status);
}

/** "online", "away" or "offline". */
const statusOf = (username) => presence.get(username.toLowerCase()) ?? "offline";

/** The liveliest status among several people: online, else away, else offline. */
function bestStatus(users) {
  const all = users.map((u) => statusOf(u.username));
  if (all.includes("online")) return "online";
  if (all.includes("away")) return "away";
  return "offline";
}

/** Dots in the sidebar (online when someone else in the chat is, away when the others
 *  are all away) and, for an open private chat, next to each person in its header. */
function updatePresence() {
  for (const room of rooms.values()) {
    if (room.kind !== "direct") continue;
    setDot(room.link.querySelector(".presence"), bestStatus(room.others));
  }
  const line = $("room-members");
  const room = currentRoom();
  if (!line) return;
  if (!room || room.kind !== "direct" || room.others.length === 0) {
    line.hidden = true;
    line.replaceChildren();
    return;
  }
  // One other person: the title names them, the line says whether they are online,
  // away or offline.
  // Several: each of them, with a dot.
  const single = room.others.length === 1;
  line.replaceChildren(
    ...room.others.map((u) => {
      const status = statusOf(u.username);
      const person = document.createElement("span");
      person.className = "member";
      person.dataset.username = u.username;
      const dot = presenceDot(status);
      const label = document.createElement("span");
      if (single) {
        dot.querySelector(".visually-hidden")?.remove();
        label.textContent = presenceLabel(status);
      } else {
        label.textContent = u.display_name || u.username;
        label.title = `@${u.username}`;
      }
      person.append(dot, label);
      return person;
    }),
  );
  line.hidden = false;
}

// --- notifications -------------------------------------------------------------------

const notifySupported = "Notification" in window;

/** The "turn on notifications" button shows only while the browser has not been asked:
 *  permission is asked when the user clicks it, never on load. */
function updateNotifyButton() {
  const button = $("notify-enable");
  if (button) button.hidden = !(notifySupported && Notification.permission === "default");
}

function notify(room, m) {
  if (!notifySupported || Notification.permission !== "granted") return;
  const name = m.author?.display_name || m.author?.username || t("system");
  const media = view.attachment(m);
  const text = media ? (media.kind === "video" ? t("video") : t("picture")) : m.body ?? "";
  try {
    const n = new Notification(t("notifyTitle", { name, room: room.name }), {
      body: text.length > 200 ? `${text.slice(0, 200)}…` : text,
      tag: `confab-${room.slug}`,
    });
    n.addEventListener("click", () => {
      window.focus();
      window.location.hash = `#${room.slug}`;
      n.close();
    });
  } catch {
    // Some browsers allow notifications only from a service worker.
  }
}

function openDrawer() {
  sidebar.classList.add("open");
  backdrop.hidden = false;
  toggle.setAttribute("aria-expanded", "true");
  (sidebar.querySelector("a[aria-current]") ?? sidebar.querySelector("a"))?.focus();
}

function closeDrawer(focusToggle = true) {
  if (!sidebar.classList.contains("open")) return;
  sidebar.classList.remove("open");
  backdrop.hidden = true;
  toggle.setAttribute("aria-expanded", "false");
  if (focusToggle) toggle.focus();
}

// --- the pane ------------------------------------------------------------------------

function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < BOTTOM_SLACK_PX;
}

function scrollToBottom() {
  scroller.scrollTop = scroller.scrollHeight;
  pinned = true;
  $("jump-latest").hidden = true;
}

function updateHistoryStatus() {
  const room = currentRoom();
  const loading = Boolean(room && (!room.loaded || room.loadingOlder));
  $("history-loading").hidden = !loading;
  $("load-older").hidden = loading || !room?.older;
  const start = $("history-start");
  start.hidden = loading || !room || room.older;
  if (room) start.textContent = t("beginning", { room: room.name });
  $("room-empty").hidden = !room || !room.loaded || view.messageCount() > 0;
}

function pendingItem(entry) {
  return view.renderMessage({
    client_id: entry.clientId,
    body: entry.body,
    ts: entry.ts,
    author: { username: me.username, display_name: me.name },
    pending: true,
    mine: true,
  });
}

function isMine(m) {
  return Boolean(me.username) && m.author?.username === me.username;
}

/** What the protocol message needs for display: mine or not, and what I may do to it. */
function decorate(room, m) {
  const mine = isMine(m);
  const writable = room.role !== "readonly" && !room.archived;
  const moderator = room.role === "owner" || room.role === "moderator";
  const live = !m.deleted && m.id != null && m.kind !== "system";
  return {
    ...m,
    mine,
    mentionsMe: !mine && mentionsMe(m),
    canEdit: live && mine && writable && (m.kind ?? "text") === "text",
    canDelete: live && writable && (mine || (moderator && room.kind !== "direct")),
  };
}

/** Draws the whole open room from what is known about it. */
function renderRoom(room) {
  view.clear();
  const list = $("messages");
  const ids = [...room.messages.keys()].sort((a, b) => a - b);
  for (const id of ids) {
    const m = room.messages.get(id);
    list.append(view.renderMessage(decorate(room, m)));
  }
  for (const entry of pending.values()) {
    if (entry.room !== room.slug) continue;
    const li = pendingItem(entry);
    list.append(li);
    if (entry.state === "failed") failItem(entry, li, t("failed"));
  }
  view.relayout();
  view.placeDivider(room.dividerAfter);
  updateHistoryStatus();
  scrollToDividerOrBottom();
}

/** Opening a room with unread messages shows the first of them (under the divider) if
 *  they do not all fit; otherwise the newest. */
function scrollToDividerOrBottom() {
  const divider = $("messages").querySelector("li.new-divider");
  scrollToBottom();
  if (!divider) return;
  const top = divider.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scroller.scrollTop;
  if (top < scroller.scrollTop) {
    scroller.scrollTop = Math.max(0, top - 8);
    pinned = atBottom();
    $("jump-latest").hidden = pinned;
    // The top is in view already, so the observer will not report it: fetch older
    // messages now (the divider may belong above them).
    if (scroller.scrollTop < 300) requestAnimationFrame(loadOlder);
  }
}

/** Shows one message of the open room where it belongs (new, edited or acknowledged). */
function placeMessage(room, m, { isNew }) {
  const stick = atBottom() || (isNew && isMine(m));
  const fresh = view.renderMessage(decorate(room, m));
  const existing = view.findById(m.id);
  if (existing) {
    existing.replaceWith(fresh);
  } else {
    if (m.client_id && isMine(m)) view.findByClientId(m.client_id)?.remove();
    view.insertSorted(fresh);
  }
  view.relayout();
  updateHistoryStatus();
  if (stick) scrollToBottom();
  else if (isNew) $("jump-latest").hidden = false;
}

function announce(m) {
  const media = view.attachment(m);
  const text = media ? (media.kind === "video" ? t("video") : t("picture")) : m.body ?? "";
  const body = text.length > 160 ? `${text.slice(0, 160)}…` : text;
  $("announcer").textContent = t("newMessage", {
    name: m.author?.display_name || m.author?.username || t("system"),
    body,
  });
}

function renderTyping() {
  const room = currentRoom();
  const line = $("typing");
  if (!room) {
    line.textContent = "";
    return;
  }
  const now = Date.now();
  for (const [user, entry] of room.typing) if (entry.until <= now) room.typing.delete(user);
  const names = [...room.typing.values()].map((e) => e.name);
  line.textContent =
    names.length === 0 ? "" : names.length === 1 ? t("typing", { name: names[0] }) : t("typingSeveral");
}

function updateComposer() {
  const room = currentRoom();
  const online = Boolean(conn?.online);
  const readOnly = Boolean(room && (room.role === "readonly" || room.archived));
  const enabled = online && Boolean(room) && !readOnly;
  if (!enabled && document.activeElement === input) composerHadFocus = true;
  input.disabled = !enabled;
  sendButton.disabled = !enabled;
  // Uploads go over HTTP, not the socket: they need a writable room, not a connection.
  $("attach-button").disabled = !room || readOnly;
  input.placeholder = online ? t("placeholder") : t("offlinePlaceholder");
  const note = $("read-only-note");
  note.hidden = !readOnly;
  note.textContent = room?.archived ? t("archived") : readOnly ? t("readOnly") : "";
  if (enabled && composerHadFocus) {
    composerHadFocus = false;
    input.focus();
  }
}

function showNotice(text, link) {
  const box = document.createElement("div");
  box.className = "notice dismissable";
  box.setAttribute("role", "status");
  const p = document.createElement("p");
  p.textContent = text;
  if (link) {
    const a = document.createElement("a");
    a.href = link.href;
    a.textContent = link.text;
    p.append(" ", a);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "link-button";
  close.textContent = t("dismiss");
  close.addEventListener("click", () => box.remove());
  box.append(p, close);
  $("notices").append(box);
}

// --- reading ---------------------------------------------------------------------------

function mentionsMe(m) {
  if (!me.username || m.deleted || (m.kind ?? "text") !== "text") return false;
  return mentionsIn(m.body).has(me.username.toLowerCase());
}

/** Counts unread messages and mentions after the read marker from the messages this
 *  page holds: exact when it holds everything after the marker, which is so once the
 *  marker is a message the user has seen here (pages are contiguous up to the newest). */
function recount(room) {
  let unread = 0;
  let mentions = 0;
  for (const m of room.messages.values()) {
    if (m.id <= (room.lastRead ?? 0) || m.deleted || isMine(m)) continue;
    unread += 1;
    if (mentionsMe(m)) mentions += 1;
  }
  room.unread = unread;
  room.mentions = mentions;
}

/** The newest message the user can see: the newest of all at the bottom, else the last
 *  one whose bottom edge is in view. */
function lastSeenId(room) {
  if (atBottom()) return room.lastId;
  const box = scroller.getBoundingClientRect();
  const items = $("messages").querySelectorAll("li.msg[data-id]");
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const r = items[i].getBoundingClientRect();
    if (r.bottom <= box.bottom + 1 && r.bottom > box.top) return Number(items[i].dataset.id);
    if (r.bottom <= box.top) break;
  }
  return null;
}

/** Moves the read marker to what the user can actually see (tab visible, room shown). */
function markReadSoon() {
  const room = currentRoom();
  if (!room || !room.loaded || document.visibilityState !== "visible") return;
  const id = lastSeenId(room);
  if (id == null) return;
  if (id > (room.lastRead ?? 0)) {
    room.lastRead = id;
    recount(room);
    updateBadges();
  }
  if (id <= (room.readSent ?? 0)) return;
  clearTimeout(room.readTimer);
  room.readTimer = setTimeout(() => {
    const upTo = room.lastRead;
    if (upTo > (room.readSent ?? 0) && conn.send({ type: "read", room: room.slug, id: upTo })) {
      room.readSent = upTo;
    }
  }, 300);
}

// --- protocol ------------------------------------------------------------------------

/** Records a message; says whether it is new (newer than anything seen in the room). */
function ingest(room, m) {
  const known = room.messages.has(m.id);
  const isNew = !known && (room.lastId == null || m.id > room.lastId);
  room.messages.set(m.id, m);
  if (room.lastId == null || m.id > room.lastId) room.lastId = m.id;
  if (room.oldestId == null || m.id < room.oldestId) room.oldestId = m.id;
  return isNew;
}

/** A message that just arrived live (`live`) or by catch-up. */
function arrived(room, m, live = false) {
  const before = room.lastId;
  const isNew = ingest(room, m);
  const visible = room.slug === current && document.visibilityState === "visible";
  if (m.author?.username) room.typing.delete(m.author.username);
  if (isNew && !isMine(m) && !m.deleted) {
    if (!visible || !atBottom()) {
      room.unread += 1;
      if (mentionsMe(m)) room.mentions += 1;
      // Unseen in the open room: the divider marks where the unseen part starts.
      if (room.slug === current && room.dividerAfter == null) room.dividerAfter = before ?? 0;
    }
    if (room.slug === current) announce(m);
    if (live && document.visibilityState === "hidden" && (room.kind === "direct" || mentionsMe(m))) {
      notify(room, m);
    }
  }
  if (room.slug === current && room.loaded) {
    placeMessage(room, m, { isNew });
    view.placeDivider(room.dividerAfter);
    renderTyping();
    markReadSoon();
  }
  updateBadges();
}

function join(room) {
  const frame = { type: "join", room: room.slug };
  if (room.lastId != null) frame.since = room.lastId;
  room.joinKind = room.lastId != null ? "since" : "initial";
  conn.send(frame);
}

function requestLatest(room) {
  if (room.historyPending || !conn.online) return;
  room.historyPending = "latest";
  conn.send({ type: "history", room: room.slug });
  updateHistoryStatus();
}

function loadOlder() {
  const room = currentRoom();
  if (!room || !room.loaded || !room.older || room.loadingOlder || room.historyPending) return;
  if (!conn.online || room.oldestId == null) return;
  room.loadingOlder = true;
  room.historyPending = "older";
  conn.send({ type: "history", room: room.slug, before: room.oldestId });
  updateHistoryStatus();
}

function sendPending(entry) {
  return conn.send({ type: "send", room: entry.room, body: entry.body, client_id: entry.clientId });
}

function failItem(entry, li, reason) {
  view.markFailed(
    li,
    reason,
    () => {
      entry.state = "sending";
      view.markSending(li);
      sendPending(entry);
    },
    () => {
      pending.delete(entry.clientId);
      li.remove();
      view.relayout();
      updateHistoryStatus();
    },
  );
}

function errorText(code) {
  switch (code) {
    case "forbidden":
      return t("forbidden");
    case "too_large":
      return t("tooLarge");
    case "rate_limited":
      return t("rateLimited");
    case "not_found":
      return t("notFound");
    default:
      return t("failed");
  }
}

function onHello() {
  conn.healthy();
  for (const room of rooms.values()) {
    room.historyPending = null;
    room.loadingOlder = false;
    join(room);
  }
  const room = currentRoom();
  if (room && !room.loaded && room.joinKind !== "initial") requestLatest(room);
  // Unacknowledged messages go again, same client_id: stored at most once.
  for (const entry of pending.values()) if (entry.state === "sending") sendPending(entry);
  updateHistoryStatus();
}

function onJoined(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  const initial = room.joinKind === "initial";
  for (const m of frame.messages ?? []) {
    if (initial) ingest(room, m);
    else arrived(room, m);
  }
  if (initial) {
    room.loaded = true;
    room.older = Boolean(frame.older);
    if (room.slug === current) renderRoom(room);
  }
  if (frame.more) join(room);
  updateHistoryStatus();
}

function onHistory(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  const kind = room.historyPending;
  room.historyPending = null;
  room.loadingOlder = false;
  for (const m of frame.messages ?? []) ingest(room, m);
  room.loaded = true;
  if (kind === "older" || room.older) room.older = Boolean(frame.more);
  if (kind === "latest") room.older = Boolean(frame.more);
  if (room.slug !== current) return;
  if (kind === "older") {
    // Keep what the user is looking at in place while older messages appear above.
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const list = $("messages");
    const ids = (frame.messages ?? []).map((m) => m.id).sort((a, b) => b - a);
    for (const id of ids) {
      if (view.findById(id)) continue;
      const m = room.messages.get(id);
      list.insertBefore(view.renderMessage(decorate(room, m)), list.firstElementChild);
    }
    view.relayout();
    view.placeDivider(room.dividerAfter);
    updateHistoryStatus();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    // Still at the top (a short page): keep going.
    if (room.older && scroller.scrollTop < 300) requestAnimationFrame(loadOlder);
  } else {
    renderRoom(room);
    markReadSoon();
  }
}

function onAck(frame) {
  const entry = pending.get(frame.client_id);
  if (!entry) return;
  pending.delete(frame.client_id);
  if (entry.room !== current) return;
  const li = view.findByClientId(frame.client_id);
  if (!li) return;
  if (view.findById(frame.id)) {
    li.remove(); // its message frame came first
  } else {
    li.dataset.id = String(frame.id);
    li.classList.remove("pending");
    li.querySelector(".mark.sending")?.remove();
    li.remove();
    view.insertSorted(li);
  }
  view.relayout();
}

function onError(frame) {
  const entry = frame.ref ? pending.get(frame.ref) : null;
  if (entry) {
    entry.state = "failed";
    const li = entry.room === current ? view.findByClientId(entry.clientId) : null;
    if (li) failItem(entry, li, errorText(frame.code));
    return;
  }
  // A refused join or history: stop waiting for it.
  for (const room of rooms.values()) {
    room.historyPending = null;
    room.loadingOlder = false;
  }
  updateHistoryStatus();
  if (frame.code !== "rate_limited" || !frame.ref) showNotice(errorText(frame.code));
}

function onChanged(frame) {
  const m = frame.message ? { ...frame.message } : null;
  const room = rooms.get(frame.room ?? m?.room);
  if (!room) return;
  let updated = m;
  if (frame.type === "deleted") {
    const old = room.messages.get(frame.id);
    if (!old) return;
    updated = { ...old, deleted: true, body: "" };
  }
  if (!updated || !room.messages.has(updated.id)) return;
  room.messages.set(updated.id, updated);
  if (room.slug === current && view.findById(updated.id)) placeMessage(room, updated, { isNew: false });
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello":
      if (frame.user?.username) {
        me.username = frame.user.username;
        me.name = frame.user.display_name || me.name;
        view.setMe(me.username);
      }
      presence.clear();
      for (const name of frame.online ?? []) if (typeof name === "string") presence.set(name.toLowerCase(), "online");
      for (const name of frame.away ?? []) if (typeof name === "string") presence.set(name.toLowerCase(), "away");
      updatePresence();
      // A new socket starts out active: say so again if this tab is away.
      if (activity.state === "away") conn.send({ type: "presence", status: "away" });
      onHello();
      break;
    case "presence": {
      // One change (`user`, `status`), or several at once (lists by status).
      const set = (user, status) => {
        if (typeof user !== "string") return;
        const name = user.toLowerCase();
        if (status === "online" || status === "away") presence.set(name, status);
        else presence.delete(name);
      };
      set(frame.user, frame.status);
      for (const status of ["online", "away", "offline"]) {
        if (Array.isArray(frame[status])) for (const user of frame[status]) set(user, status);
      }
      updatePresence();
      break;
    }
    case "membership":
      // A room I was just added to (a new private chat), or a change that may be mine
      // (left, new role): the sidebar asks the server. Others joining a room I know
      // change nothing here.
      if (!rooms.has(frame.room) || frame.change !== "joined") refreshRoomsSoon();
      break;
    case "joined":
      onJoined(frame);
      break;
    case "message": {
      const room = rooms.get(frame.room);
      if (room) arrived(room, frame, true);
      break;
    }
    case "history":
      onHistory(frame);
      break;
    case "ack":
      onAck(frame);
      break;
    case "error":
      onError(frame);
      break;
    case "edited":
    case "restored":
    case "deleted":
      onChanged(frame);
      break;
    case "typing": {
      const room = rooms.get(frame.room);
      const user = frame.user;
      if (!room || !user?.username || user.username === me.username) break;
      room.typing.set(user.username, {
        name: user.display_name || user.username,
        until: Date.now() + TYPING_SHOWN_MS,
      });
      if (room.slug === current) {
        renderTyping();
        setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
      }
      break;
    }
    case "read": {
      const room = rooms.get(frame.room);
      if (!room) break;
      room.readSent = Math.max(room.readSent ?? 0, frame.id);
      if (frame.id <= (room.lastRead ?? 0)) break;
      room.lastRead = frame.id;
      if (room.lastId == null || frame.id >= room.lastId) {
        room.unread = 0;
        room.mentions = 0;
      } else if (room.messages.has(frame.id)) {
        recount(room);
      } else {
        refreshRoomsSoon();
      }
      updateBadges();
      break;
    }
    case "notice":
      if (frame.kind === "signed_in") {
        showNotice(t("signedInElsewhere"), { href: "/devices", text: t("manageDevices") });
      }
      break;
    default:
      break;
  }
}

function showConnection(state, retryAt) {
  const box = $("connection");
  box.dataset.state = state;
  const text = $("connection-text");
  $("reconnect-now").hidden = state !== "offline";
  clearInterval(countdownTimer);
  if (state === "online") text.textContent = t("connected");
  else if (state === "connecting") text.textContent = t("connecting");
  else {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text.textContent = retryAt ? t("retryIn", { seconds }) : t("offline");
    };
    tick();
    countdownTimer = setInterval(tick, 1000);
  }
}

// --- opening rooms ---------------------------------------------------------------------

function openRoom(slug) {
  const room = rooms.get(slug) ?? rooms.values().next().value;
  if (!room) return;
  if (current !== room.slug) {
    // The divider shows where the unread part starts, as it was when the room opened.
    room.dividerAfter = room.unread > 0 ? room.lastRead ?? 0 : null;
    const previous = currentRoom();
    if (previous) previous.dividerAfter = null;
  }
  current = room.slug;
  for (const r of rooms.values()) {
    if (r === room) r.link.setAttribute("aria-current", "page");
    else r.link.removeAttribute("aria-current");
  }
  $("room-title").textContent = room.name;
  const topic = $("room-topic");
  topic.textContent = room.topic;
  topic.hidden = !room.topic;
  $("jump-latest").hidden = true;
  $("announcer").textContent = "";
  view.clear();
  if (room.loaded) renderRoom(room);
  else if (conn.online) requestLatest(room);
  updateHistoryStatus();
  renderTyping();
  updateComposer();
  updatePresence();
  updateBadges();
  markReadSoon();
}

function roomFromHash() {
  return decodeURIComponent(window.location.hash.slice(1));
}

// --- wiring ----------------------------------------------------------------------------

/** Edit and delete, from the buttons on a message. */
function onMessageAction(ev) {
  const button = ev.target.closest?.("button[data-action]");
  const li = button?.closest("li.msg");
  const room = currentRoom();
  if (!button || !li || !room || li.dataset.id === undefined) return;
  const id = Number(li.dataset.id);
  const m = room.messages.get(id);
  if (!m) return;
  const redraw = () => placeMessage(room, room.messages.get(id), { isNew: false });
  if (button.dataset.action === "edit") {
    view.startEditing(
      li,
      m.body ?? "",
      (text) => {
        if (text && text !== m.body) conn.send({ type: "edit", room: room.slug, id, body: text });
        redraw();
        input.focus();
      },
      () => {
        redraw();
        input.focus();
      },
    );
  } else if (button.dataset.action === "delete") {
    view.confirmDelete(
      li,
      () => {
        conn.send({ type: "delete", room: room.slug, id });
        redraw();
      },
      redraw,
    );
  }
}

function newClientId() {
  if (window.crypto?.randomUUID) return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}

function wire() {
  composer.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const room = currentRoom();
    const body = input.value.trim();
    if (!body || !room || !conn.online || input.disabled) return;
    const entry = {
      clientId: newClientId(),
      room: room.slug,
      body,
      ts: Date.now() * 1000,
      state: "sending",
    };
    pending.set(entry.clientId, entry);
    view.insertSorted(pendingItem(entry));
    view.relayout();
    updateHistoryStatus();
    scrollToBottom();
    sendPending(entry);
    input.value = "";
    autosize();
    lastTypingSent = 0;
  });

  input.addEventListener("keydown", (ev) => {
    // Enter sends; Shift+Enter is a new line; never while an IME is composing.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && !ev.altKey && !ev.ctrlKey && !ev.metaKey) {
      ev.preventDefault();
      composer.requestSubmit();
    }
  });

  input.addEventListener("input", () => {
    autosize();
    const now = Date.now();
    if (input.value.trim() && current && now - lastTypingSent > TYPING_EVERY_MS) {
      lastTypingSent = now;
      conn.send({ type: "typing", room: current });
    }
  });

  // Pictures and videos take their height when they load: stay at the bottom if there.
  for (const type of ["load", "loadedmetadata"]) {
    $("messages").addEventListener(
      type,
      () => {
        if (pinned) scrollToBottom();
        markReadSoon();
      },
      true,
    );
  }
  scroller.addEventListener("scroll", () => {
    pinned = atBottom();
    if (pinned) {
      $("jump-latest").hidden = true;
      markReadSoon();
    }
  });
  $("jump-latest").addEventListener("click", () => {
    scrollToBottom();
    markReadSoon();
    input.focus();
  });
  $("load-older").addEventListener("click", loadOlder);
  $("messages").addEventListener("click", onMessageAction);
  new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting)) loadOlder();
    },
    { root: scroller, rootMargin: "300px 0px 0px 0px" },
  ).observe($("history-status"));

  toggle.addEventListener("click", () => {
    if (sidebar.classList.contains("open")) closeDrawer();
    else openDrawer();
  });
  $("sidebar-close").addEventListener("click", () => closeDrawer());
  backdrop.addEventListener("click", () => closeDrawer());
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") closeDrawer();
  });
  narrow.addEventListener("change", () => closeDrawer(false));
  sidebar.addEventListener("click", (ev) => {
    const link = ev.target.closest?.("a[data-room]");
    if (!link) return;
    if (link.dataset.room === current) ev.preventDefault();
    closeDrawer(false);
    if (!narrow.matches) requestAnimationFrame(() => input.disabled || input.focus());
  });

  // Pictures and videos: the button, a drop onto the pane, a paste into the composer.
  const fileInput = $("file-input");
  $("attach-button").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    if (current && fileInput.files?.length) uploadFiles([...fileInput.files], current);
    fileInput.value = "";
  });
  const dropZone = $("drop-zone");
  let dragDepth = 0;
  const canDrop = () => Boolean(currentRoom()) && !$("attach-button").disabled;
  chat.addEventListener("dragenter", (ev) => {
    if (!carriesFiles(ev) || !canDrop()) return;
    ev.preventDefault();
    dragDepth += 1;
    dropZone.hidden = false;
  });
  chat.addEventListener("dragover", (ev) => {
    if (!carriesFiles(ev) || !canDrop()) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
  });
  chat.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropZone.hidden = true;
  });
  chat.addEventListener("drop", (ev) => {
    dragDepth = 0;
    dropZone.hidden = true;
    if (!carriesFiles(ev) || !canDrop()) return;
    ev.preventDefault();
    const files = [...(ev.dataTransfer.files ?? [])];
    if (files.length) uploadFiles(files, current);
  });
  input.addEventListener("paste", (ev) => {
    const files = [...(ev.clipboardData?.files ?? [])];
    if (!files.length || !canDrop()) return;
    ev.preventDefault();
    uploadFiles(files, current);
  });

  setupPicker({
    me: () => me.username,
    onOpened: (r) => {
      const room = rooms.get(r.slug) ?? adoptRoom({ ...r, role: "member", unread: 0, mentions: 0 });
      closeDrawer(false);
      if (room.slug === current) openRoom(room.slug);
      else window.location.hash = `#${room.slug}`;
      requestAnimationFrame(() => input.disabled || input.focus());
    },
  });

  $("notify-enable")?.addEventListener("click", async () => {
    try {
      await Notification.requestPermission();
    } catch {
      // An old browser without the promise form: nothing to do.
    }
    updateNotifyButton();
  });

  window.addEventListener("hashchange", () => openRoom(roomFromHash()));
  document.addEventListener("visibilitychange", markReadSoon);
  window.addEventListener("focus", markReadSoon);
  $("reconnect-now").addEventListener("click", () => conn.reconnectNow());
  for (const button of document.querySelectorAll("#notices [data-dismiss]")) {
    button.addEventListener("click", () => button.closest(".notice")?.remove());
  }
  setInterval(view.refreshTimes, 30_000);
  setInterval(renderTyping, 2000);
}

function main() {
  view.setMe(me.username);
  loadRooms();
  updateNotifyButton();
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  conn = new Connection(`${scheme}//${window.location.host}/ws`);
  conn.addEventListener("state", (ev) => {
    showConnection(ev.detail.state, ev.detail.retryAt);
    updateComposer();
  });
  conn.addEventListener("frame", (ev) => onFrame(ev.detail));
  // Away after a few minutes hidden or without input; back at once (sent only while
  // connected: `hello` repeats it after a reconnect).
  activity = watchActivity((state) => {
    if (conn.online) conn.send({ type: "presence", status: state });
  });
  conn.addEventListener("ended", () => window.location.assign("/login"));
  wire();
  const first = rooms.has(roomFromHash()) ? roomFromHash() : rooms.keys().next().value;
  if (first) {
    if (!window.location.hash) window.history.replaceState(null, "", `#${first}`);
    openRoom(first);
  } else {
    updateHistoryStatus();
  }
  updateBadges();
  updatePresence();
  conn.start();
}

if (chat && scroller && composer && input) main();
