// One WebSocket to /ws for the whole tab, reconnecting on its own: exponential back-off
// with jitter (so a restarted server is not hit by every tab at the same instant), an
// immediate retry when the network comes back, and a stop when the session has ended.

const MIN_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;

/** The close code the gateway uses when the session ended (sign-out, revocation). */
export const SESSION_ENDED = 4001;

/**
 * Events (CustomEvent detail in brackets): "state" ({state, retryAt}), "frame" (frame),
 * "ended" (), where state is "connecting", "online" or "offline".
 */
export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.socket = null;
    this.state = "connecting";
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = null;
    this.failedInARow = 0;
    this.stopped = false;
  }

  start() {
    this.#open();
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
    // Leaving the page closes the socket: that is not "offline".
    window.addEventListener("pagehide", () => {
      this.stopped = true;
    });
  }

  get online() {
    return this.state === "online";
  }

  /** Sends a frame if the socket is open; false otherwise (the caller keeps it). */
  send(frame) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Called once the server greeted us: the connection works, so back-off starts over. */
  healthy() {
    this.attempt = 0;
    this.failedInARow = 0;
    this.#setState("online");
  }

  /** Skips the wait when offline (button, network back, tab visible again). */
  reconnectNow() {
    if (this.stopped || this.state !== "offline") return;
    clearTimeout(this.retryTimer);
    this.#open();
  }

  #setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryAt: this.retryAt } }));
  }

  #open() {
    this.retryAt = null;
    this.#setState("connecting");
    let opened = false;
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      opened = true;
    });
    socket.addEventListener("message", (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    });
    socket.addEventListener("close", (ev) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      if (ev.code === SESSION_ENDED) {
        this.stopped = true;
        this.dispatchEvent(new CustomEvent("ended"));
        return;
      }
      this.failedInARow = opened ? 0 : this.failedInARow + 1;
      this.#scheduleRetry();
    });
  }

  async #scheduleRetry() {
    // A handshake refused twice in a row may mean the session is gone (the browser does
    // not tell why an upgrade failed): ask the app, which redirects to /login if so.
    if (this.failedInARow >= 2 && (await this.#signedOut())) {
      this.stopped = true;
      this.dispatchEvent(new CustomEvent("ended"));
      return;
    }
    const ceiling = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    // "Equal jitter": at least half the ceiling, at most all of it.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = Date.now() + delay;
    this.#setState("offline");
    this.retryTimer = setTimeout(() => this.#open(), delay);
  }

  async #signedOut() {
    try {
      const res = await fetch("/", { method: "GET", redirect: "manual", cache: "no-store" });
      return res.type === "opaqueredirect";
    } catch {
      return false; // the network is down, not the session
    }
  }
}
