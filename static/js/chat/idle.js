// Whether the person at this tab is here: "away" once the tab has been hidden, or has
// had no input, for a few minutes; "online" again at the first input or when the tab is
// shown. The server combines every tab's state (docs/protocol.md, `presence`), so a
// hidden tab does not make someone away while another tab is in use.

/** How long without input, or hidden, before this tab counts as away. */
export const AWAY_AFTER_MS = 5 * 60_000;
/** How often the idle time is checked (input itself only stores a timestamp). */
const CHECK_EVERY_MS = 15_000;
const INPUT_EVENTS = ["keydown", "pointerdown", "pointermove", "wheel", "touchstart", "focus"];

/**
 * Calls `onChange("away" | "online")` whenever this tab's state changes, and returns
 * `{ state }` with the current one (to say again after a reconnect).
 */
export function watchActivity(onChange, awayAfterMs = AWAY_AFTER_MS) {
  const tracker = { state: "online" };
  let lastInput = Date.now();
  let hiddenSince = document.visibilityState === "hidden" ? Date.now() : null;

  const set = (state) => {
    if (tracker.state === state) return;
    tracker.state = state;
    onChange(state);
  };
  const check = () => {
    const now = Date.now();
    const hiddenLong = hiddenSince !== null && now - hiddenSince >= awayAfterMs;
    const idleLong = now - lastInput >= awayAfterMs;
    if (hiddenLong || idleLong) set("away");
  };
  const back = () => {
    lastInput = Date.now();
    if (document.visibilityState === "visible") set("online");
  };

  for (const type of INPUT_EVENTS) {
    window.addEventListener(type, back, { passive: true, capture: true });
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      hiddenSince = Date.now();
    } else {
      hiddenSince = null;
      back();
    }
  });
  setInterval(check, CHECK_EVERY_MS);
  return tracker;
}
