// "Approve with changes": how a recorded argument shows in a text input, and which inputs
// the approver changed. Kept apart from the DOM so it can be tested on its own.

/** A recorded argument as input text: text as it is, nothing as "", anything else as JSON. */
export function shown(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/**
 * Only the arguments whose input differs from the recorded value, with their new values.
 * An argument recorded as text stays text; any other is read as JSON when it parses (so a
 * number stays a number), else sent as typed, for the tool's validation to judge.
 */
export function changedArguments(recorded, texts) {
  const changes = {};
  for (const [key, text] of Object.entries(texts)) {
    const before = recorded[key];
    if (text === shown(before)) continue;
    if (typeof before === "string") {
      changes[key] = text;
      continue;
    }
    try {
      changes[key] = JSON.parse(text);
    } catch {
      changes[key] = text;
    }
  }
  return changes;
}

/** The changes in a line: ``version → 1.4.3, environment → staging``. */
export function changesText(changes) {
  return Object.entries(changes).map(([key, value]) => `${key} → ${shown(value)}`).join(", ");
}
