// The JSON API, called with the console's session cookie (same origin, no token in JS).

/** Call the API; resolves to the JSON body, throws an Error with the server's message. */
export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content;
  if (method !== "GET" && csrf) init.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let payload = null;
  try { payload = await response.json(); } catch { /* not JSON */ }
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("your session ended; sign in again");
  }
  if (!response.ok) {
    const details = payload?.details ? `: ${payload.details.map((d) => `${d.where} ${d.problem}`).join("; ")}` : "";
    const error = new Error(`${payload?.error || `HTTP ${response.status}`}${details}`);
    error.status = response.status;
    throw error;
  }
  return payload;
}
