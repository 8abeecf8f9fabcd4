// Dates and times in the page language (Intl), and links and @mentions found in plain
// text (as text nodes and elements, never by parsing HTML).

import { lang } from "./i18n.js";

const clock = new Intl.DateTimeFormat(lang, { hour: "numeric", minute: "2-digit" });
const full = new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "short" });
const weekday = new Intl.DateTimeFormat(lang, { weekday: "long" });
const dayMonth = new Intl.DateTimeFormat(lang, { weekday: "long", day: "numeric", month: "long" });
const dayMonthYear = new Intl.DateTimeFormat(lang, { day: "numeric", month: "long", year: "numeric" });
const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });

/** Protocol timestamps are Unix microseconds. */
export function dateOf(micros) {
  return new Date(Math.floor(micros / 1000));
}

/** The local calendar day, as a sortable key: "2026-11-27". */
export function dayKey(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function capitalise(text) {
  return text ? text.charAt(0).toLocaleUpperCase(lang) + text.slice(1) : text;
}

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

/** "Today", "Yesterday", "Monday", "Monday, 3 November", "3 November 2025". */
export function dayLabel(date, now = new Date()) {
  const days = Math.round((startOfDay(now) - startOfDay(date)) / 86_400_000);
  if (days === 0 || days === 1) return capitalise(relative.format(-days, "day"));
  if (days > 1 && days < 7) return capitalise(weekday.format(date));
  if (date.getFullYear() === now.getFullYear()) return capitalise(dayMonth.format(date));
  return dayMonthYear.format(date);
}

/** "now", "5 minutes ago" within the hour, then the clock time (the day separator says
 *  which day). */
export function timeLabel(date, now = new Date()) {
  const seconds = (now - date) / 1000;
  if (seconds < 45) return relative.format(0, "second");
  if (seconds < 3600) return relative.format(-Math.max(1, Math.round(seconds / 60)), "minute");
  return clock.format(date);
}

/** The clock time alone, e.g. for the gutter of grouped messages. */
export function clockLabel(date) {
  return clock.format(date);
}

export function fullLabel(date) {
  return full.format(date);
}

// http and https only: anything else (javascript:, data:, …) stays plain text.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

function count(text, ch) {
  return text.split(ch).length - 1;
}

/** Drops trailing punctuation that belongs to the sentence, not to the link. */
function trimUrl(url) {
  let out = url;
  for (;;) {
    const last = out.at(-1);
    if (last && ".,;:!?*".includes(last)) out = out.slice(0, -1);
    else if (last === ")" && count(out, "(") < count(out, ")")) out = out.slice(0, -1);
    else if (last === "]" && count(out, "[") < count(out, "]")) out = out.slice(0, -1);
    else return out;
  }
}

function isWebUrl(text) {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

// `@name` where the character before cannot belong to a username (so `ann@example.com`
// is not a mention): the rule the server counts mentions by (domain::repo::mention).
const MENTION_PATTERN = /(?<![A-Za-z0-9._@-])@([A-Za-z0-9._-]{2,})/g;

/** The usernames (lower case) a text mentions, each once. */
export function mentionsIn(text) {
  const names = new Set();
  for (const match of (text ?? "").matchAll(MENTION_PATTERN)) {
    const name = match[1].toLowerCase();
    names.add(name);
    names.add(name.replace(/[._-]+$/, ""));
  }
  return names;
}

/** Text → text nodes, with every `@name` in a <span class="mention"> (also "me" when it
 *  names `me`). */
function appendMentions(fragment, text, me) {
  let done = 0;
  for (const match of text.matchAll(MENTION_PATTERN)) {
    // "thanks @bob." mentions bob: trailing punctuation is not part of the name.
    const name = match[1].replace(/[._-]+$/, "");
    if (name.length < 2) continue;
    if (match.index > done) fragment.append(document.createTextNode(text.slice(done, match.index)));
    const span = document.createElement("span");
    span.className = "mention";
    if (me && name.toLowerCase() === me) span.classList.add("me");
    span.textContent = `@${name}`;
    fragment.append(span);
    done = match.index + 1 + name.length;
  }
  if (done < text.length) fragment.append(document.createTextNode(text.slice(done)));
}

/** Plain text → a fragment of text nodes, <a> elements and mention <span>s. Never parses
 *  HTML. `me` (lower case) marks mentions of the reader. */
export function linkify(text, me = "") {
  const fragment = document.createDocumentFragment();
  let done = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const url = trimUrl(match[0]);
    if (!isWebUrl(url)) continue;
    if (match.index > done) appendMentions(fragment, text.slice(done, match.index), me);
    const a = document.createElement("a");
    a.setAttribute("href", url);
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    a.textContent = url;
    fragment.append(a);
    done = match.index + url.length;
  }
  if (done < text.length) appendMentions(fragment, text.slice(done), me);
  return fragment;
}
