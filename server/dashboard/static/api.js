// REST access with the bearer token, and images fetched with it (shown via blob URLs).

const KEY = "motionhub.token";

export const tokenStore = {
  get() {
    return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY) ?? "";
  },
  /** Keep the token for this tab only, or on this device when `remember` is set. */
  set(token, remember) {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    if (token) (remember ? localStorage : sessionStorage).setItem(KEY, token);
  },
  remembered() {
    return localStorage.getItem(KEY) !== null;
  },
};

/** Fired as "unauthorized" whenever the server refuses the token. */
export const authEvents = new EventTarget();

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : describeDetail(detail));
    this.status = status;
    this.detail = detail;
  }
}

function describeDetail(detail) {
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("\n");
  }
  return String(detail ?? "request failed");
}

function authHeaders() {
  const token = tokenStore.get();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function check(response) {
  if (response.ok) return response;
  let detail = response.statusText;
  try {
    detail = (await response.json()).detail ?? detail;
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401) authEvents.dispatchEvent(new Event("unauthorized"));
  throw new ApiError(response.status, detail);
}

/** Call the JSON API at a path relative to the page ("api/cameras"). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await check(
    await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    }),
  );
  return response.status === 204 ? null : response.json();
}

/** Fetch an image with the token and return a blob: URL (revoke it when replaced). */
export async function fetchImage(path, { signal, cache = "no-store" } = {}) {
  const response = await check(await fetch(path, { headers: authHeaders(), signal, cache }));
  return URL.createObjectURL(await response.blob());
}

/** A streaming fetch with the token (for MJPEG). */
export async function fetchStream(path, signal) {
  return check(await fetch(path, { headers: authHeaders(), signal, cache: "no-store" }));
}

/** At most `limit` image downloads at once, so tiles leave connections for the rest. */
export class Limiter {
  constructor(limit) {
    this.limit = limit;
    this.active = 0;
    this.waiting = [];
  }

  async run(task) {
    if (this.active >= this.limit) {
      await new Promise((resolve) => this.waiting.push(resolve));
    }
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.waiting.shift()?.();
    }
  }
}
