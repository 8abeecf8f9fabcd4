// Every user-visible string comes from the locale files: the page renders the
// translations into data-* attributes of #i18n (the CSP allows no inline script), and
// placeholders such as {name} are filled in here.

const strings = document.getElementById("i18n")?.dataset ?? {};

/** The page language, as the server chose it (`<html lang>`). */
export const lang = document.documentElement.lang || "en";

/** `key` is the camelCase form of the data attribute: data-retry-in → "retryIn". */
export function t(key, vars = {}) {
  let text = strings[key] ?? "";
  for (const [name, value] of Object.entries(vars)) {
    text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}
